import json

import numpy as np
import pandas as pd
import pytest

from builders.release import IMAGE_STORE, VIDEO_STORE, tiny_config
from divita.errors import DivitaError
from divita.genres import GENRES
from divita.training import TrainConfig, load_checkpoint, train_model


@pytest.fixture(scope="module")
def finished_run(tiny_release, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    return train_model(tiny_config(tiny_release), run_dir, progress=False)


def test_a_run_writes_checkpoint_hparams_history_and_val_test_metrics(finished_run):
    d = finished_run.run_dir
    for name in (
        "best.ckpt",
        "hparams.json",
        "history.csv",
        "metrics.csv",
        "predictions_val.npz",
        "predictions_tst.npz",
    ):
        assert (d / name).is_file(), name
    m = pd.read_csv(d / "metrics.csv")
    assert (
        set(m.subset) == {"val", "tst"}
        and set(m.convention) == {"paper", "sklearn"}
        and set(m.selection) == {"loss", "uap"}
    )
    assert set(GENRES) <= set(m.columns)
    vals = m[["uap", "map", "wap", "sap"]].to_numpy()
    assert ((vals >= 0) & (vals <= 1)).all()
    assert len(pd.read_csv(d / "history.csv")) == 3
    assert json.loads((d / "hparams.json").read_text())["features"]["image"]["num_features"] == 16


def test_training_is_seeded_and_repeatable(tiny_release, tmp_path, finished_run):
    again = train_model(tiny_config(tiny_release), tmp_path, progress=False)
    pd.testing.assert_frame_equal(again.metrics, finished_run.metrics)


def test_checkpoint_round_trip_and_thresholds(finished_run):
    model, ckpt = load_checkpoint(finished_run.run_dir / "best.ckpt", expect_features={"image": 16, "video": 12})
    assert ckpt["genres"] == list(GENRES) and len(ckpt["thresholds"]) == 10
    assert ckpt["features"]["video"]["store"] == VIDEO_STORE
    assert model.cfg.modalities == ["image", "video"]


def test_checkpoint_from_another_configuration_is_refused(finished_run):
    with pytest.raises(DivitaError, match="checkpoint from another configuration"):
        load_checkpoint(finished_run.run_dir / "best.ckpt", expect_features={"image": 1024, "video": 12})


def test_garbage_checkpoint_is_a_one_line_error(tmp_path):
    p = tmp_path / "x.ckpt"
    p.write_bytes(b"not a checkpoint")
    with pytest.raises(DivitaError, match="not a readable checkpoint"):
        load_checkpoint(p)


def test_the_model_learns_the_planted_signal(tiny_release, tmp_path):
    res = train_model(
        tiny_config(tiny_release, image_store=IMAGE_STORE, video_store=None, max_epochs=25, lr=3e-3),
        tmp_path,
        progress=False,
    )
    m = res.metrics
    tst = m[(m.subset == "tst") & (m.convention == "sklearn") & (m.selection == "loss")].iloc[0]
    labels = pd.read_csv(tiny_release / "mtgc.csv")
    prevalence = labels[list(GENRES)].to_numpy().mean()  # step AP of a random ranking
    assert tst["uap"] > prevalence + 0.15


def test_missing_inputs_name_the_file_and_the_fix(tiny_release, tmp_path):
    with pytest.raises(DivitaError, match="data directory not found"):
        train_model(tiny_config(tmp_path / "nowhere"), tmp_path / "r", progress=False)
    with pytest.raises(DivitaError, match="feature store missing .*divita download"):
        train_model(tiny_config(tiny_release, image_store="trailers_i_swin_fpc24.zarr"), tmp_path / "r", progress=False)


def test_thresholds_maximise_f1_and_sit_between_scores():
    from divita.training import tune_thresholds

    y = np.array([[1, 0], [0, 0], [1, 0], [0, 0]])
    p = np.array([[0.9, 0.3], [0.8, 0.2], [0.7, 0.6], [0.1, 0.1]])
    thr = tune_thresholds(y, p)
    assert thr[0] == pytest.approx(0.4)  # include the top 3 (F1 0.8), halfway to the next score
    assert thr[1] == 0.5  # no positive: the default


def test_history_records_each_epochs_own_training_loss(finished_run):
    h = pd.read_csv(finished_run.run_dir / "history.csv")
    assert h["train_loss"].notna().all() and (h["train_loss"] > 0).all()
    assert h["train_loss"].iloc[-1] < h["train_loss"].iloc[0]  # it learns, epoch by epoch


def test_training_reads_a_store_given_as_a_url(tiny_release, tmp_path):
    """Stores may live on any filesystem fsspec reaches (here fsspec's in-memory one)."""
    import zarr

    src = zarr.open_group(str(tiny_release / VIDEO_STORE), mode="r")
    url = "memory://divita-test/video.zarr"
    dst = zarr.open_group(url, mode="w", zarr_format=3)
    dst.attrs["num_features"] = src.attrs["num_features"]
    for mid in src.array_keys():
        dst.create_array(mid, shape=src[mid].shape, dtype="float32")[...] = src[mid][...]
    cfg = tiny_config(tiny_release, image_store=None, video_store=url, max_epochs=1)
    res = train_model(cfg, tmp_path, progress=False)
    assert json.loads((tmp_path / "hparams.json").read_text())["features"]["video"]["store"] == url
    assert len(res.metrics) == 8


def test_validation_windows_are_gathered_once_when_they_fit(tiny_release):
    import torch

    from divita.training import EvalBatches, load_split

    sets, _ = load_split(tiny_config(tiny_release))
    kept = EvalBatches(sets["val"], 4)
    first, second = list(kept), list(kept)
    assert len(first) == len(kept) and all(a is b for a, b in zip(first, second))
    streamed = EvalBatches(sets["val"], 4, cache_bytes=0)
    again = list(streamed)
    assert all(a is not b for a, b in zip(again, list(streamed)))
    for a, b in zip(first, again):
        assert all(torch.equal(x, y) for x, y in zip(a.xs, b.xs)) and torch.equal(a.trailer, b.trailer)


def test_prefetched_training_batches_are_the_batches_gathered_in_line(tiny_release):
    import torch

    from divita.training import EpochBatches, load_split

    sets, _ = load_split(tiny_config(tiny_release))
    ahead, in_line = EpochBatches(sets["trn"], 4, seed=3), EpochBatches(sets["trn"], 4, seed=3, prefetch=False)
    for _ in range(2):  # two epochs: new windows each, the same in both
        a, b = list(ahead), list(in_line)
        assert len(a) == len(b) == len(ahead)
        for x, y in zip(a, b):
            assert torch.equal(x.trailer, y.trailer) and all(torch.equal(u, v) for u, v in zip(x.xs, y.xs))
    partial = iter(ahead)
    next(partial)
    partial.close()  # a consumer that stops early leaves no thread behind
    import threading

    assert not any(t.name.startswith("divita-gather") and t.is_alive() for t in threading.enumerate())


def test_a_train_config_written_by_an_earlier_version_is_upgraded_to_todays_keys(tiny_release):
    from dataclasses import asdict

    from divita.training import upgrade_train_config

    new = tiny_config(tiny_release)
    # a checkpoint's train_config or an hparams.json written before the rename and before cache_dtype: ix/vx only
    before = {k: v for k, v in asdict(new).items() if k not in ("image_store", "video_store", "cache_dtype")} | {
        "ix": IMAGE_STORE,
        "vx": None,
    }
    frozen = dict(before)
    upgraded = upgrade_train_config(before)
    assert before == frozen  # not modified
    assert (upgraded["image_store"], upgraded["video_store"], upgraded["cache_dtype"]) == (IMAGE_STORE, None, "float32")
    assert upgraded["ix"] == IMAGE_STORE  # the earlier keys stay
    restored = TrainConfig.from_dict(upgraded)
    assert restored.image_store == IMAGE_STORE and restored.video_store is None and restored.max_epochs == 3
    # today's keys win over the earlier ones, and a today's dict passes through unchanged
    both = asdict(new) | {"ix": "stale.zarr"}
    assert upgrade_train_config(both)["image_store"] == new.image_store
    assert upgrade_train_config(asdict(new)) == asdict(new)
    with pytest.raises(TypeError):  # the earlier names are no keywords of TrainConfig
        TrainConfig(data_dir=".", ix=IMAGE_STORE)
    with pytest.raises(DivitaError, match="at least one of --image-store"):
        TrainConfig(data_dir=".", image_store=None, video_store=None)


def test_hparams_and_checkpoint_hold_the_new_store_keys_and_the_earlier_ones(finished_run):
    hp = json.loads((finished_run.run_dir / "hparams.json").read_text())
    assert hp["image_store"] == hp["ix"] == IMAGE_STORE and hp["video_store"] == hp["vx"] == VIDEO_STORE
    _, ckpt = load_checkpoint(finished_run.run_dir / "best.ckpt")
    tc = ckpt["train_config"]
    assert tc["image_store"] == tc["ix"] == IMAGE_STORE and tc["video_store"] == tc["vx"] == VIDEO_STORE
    assert TrainConfig.from_dict(tc) == TrainConfig.from_dict(hp | {"data_dir": tc["data_dir"], "threads": 1})


def parse(*argv):
    from divita.cli import build_parser

    return build_parser().parse_args(list(argv))


def test_cli_options_and_defaults_come_from_train_config():
    from dataclasses import fields

    from divita.cli._train_options import train_config

    train = ["train", "--data-dir", "d", "--split", "1", "--out", "o"]
    a = parse(*train, "--image-store", "i.zarr", "--video-store", "v.zarr")
    b = parse(*train, "--ix", "i.zarr", "--vx", "v.zarr")  # the earlier spellings, same destination
    assert (a.image_store, a.video_store) == (b.image_store, b.video_store) == ("i.zarr", "v.zarr")
    cfg = train_config(a, data_dir="d", image_store=a.image_store, video_store=a.video_store, split=a.split)
    assert cfg == TrainConfig(
        data_dir="d", image_store="i.zarr", video_store="v.zarr", split=1
    )  # every other field: its default
    assert cfg.labels == "mtgc.csv" and cfg.max_epochs == 100 and cfg.lr == 1e-4 and cfg.threads is None
    given = parse(
        *train,
        "--ix",
        "i.zarr",
        "--vx",
        "none",
        "--max-epochs",
        "7",
        "--threads",
        "3",
        "--precision",
        "32",
        "--aggregator",
        "gru",
        "--dropout",
        "0.5",
        "--labels",
        "other.csv",
    )
    cfg = train_config(given, data_dir="d", image_store="i.zarr", video_store=None, split=1)
    assert (cfg.max_epochs, cfg.threads, cfg.precision, cfg.aggregator, cfg.dropout, cfg.labels) == (
        7,
        3,
        "32",
        "gru",
        0.5,
        "other.csv",
    )
    with pytest.raises(SystemExit):
        parse(*train, "--ix", "i.zarr", "--vx", "none", "--aggregator", "lstm")  # choices from the model's registry
    # `divita demo` changes four defaults; every other one is TrainConfig's
    demo = train_config(parse("demo"), data_dir="d", image_store="i", video_store=None, split=0)
    default = TrainConfig(data_dir="d", image_store="i", video_store=None)
    expected = {"max_epochs": 20, "lr": 1e-3, "scheduler_patience": 5, "stop_patience": 8}
    for f in fields(TrainConfig):
        if f.name not in ("data_dir", "image_store", "video_store", "split"):
            assert getattr(demo, f.name) == expected.get(f.name, getattr(default, f.name)), f.name
    reproduce = parse("reproduce", "--data-dir", "d")
    assert reproduce.max_epochs == 100 and reproduce.lr == 1e-4 and not hasattr(reproduce, "labels")
    for command in (["reproduce", "--data-dir", "d"], ["demo"], [*train, "--ix", "i", "--vx", "none"]):
        assert parse(*command).protocol == "divita" and parse(*command, "--protocol", "paper").protocol == "paper"


def test_help_loads_neither_torch_nor_lightning():
    import subprocess
    import sys

    code = (
        "import sys\nfrom divita.cli import main\n"
        "for argv in (['--help'], ['train', '--help'], ['demo', '--help']):\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        "print([m for m in ('torch', 'lightning') if m in sys.modules], file=sys.stderr)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stderr.strip() == "[]", r.stderr
    assert "--image-store STORE, --ix STORE" in r.stdout and "--max-epochs" in r.stdout
