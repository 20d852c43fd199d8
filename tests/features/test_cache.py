"""The feature cache: results equal the in-memory path's, stale caches rebuild, killed builds are never used,
bfloat16 halves the file, an unwritable or full cache directory is a one-line error, and `reproduce` builds each
store's cache once per grid and reuses it the next time."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zarr

from builders.release import IMAGE_STORE, VIDEO_STORE, tiny_config
from divita.cli import main
from divita.errors import DivitaError
from divita.features import cache as cache_module
from divita.features.cache import CACHE_DIR_NAME, cache_root, open_cache, store_cache_dir
from divita.features.store_read import load_features
from divita.features.tables import FileFeatureTable, encode_rows
from divita.training import TrainConfig, train_model


def mids_of(release) -> list[str]:
    return pd.read_csv(release / "mtgc.csv", dtype={"mid": str})["mid"].tolist()


@pytest.fixture
def data(tiny_release, tmp_path):
    """A private copy of the tiny release (tests here change its stores)."""
    d = tmp_path / "data"
    shutil.copytree(tiny_release, d, ignore=shutil.ignore_patterns(CACHE_DIR_NAME))
    return d


def files_in(dir_: Path) -> list[str]:
    return sorted(p.name for p in dir_.iterdir())


# ---------------------------------------------------------------------------------------------- same results
def test_training_through_the_cache_gives_exactly_the_in_memory_results(tiny_release, tmp_path):
    memory = train_model(tiny_config(tiny_release, cache_dir="none"), tmp_path / "memory", progress=False)
    cfg = tiny_config(tiny_release, cache_dir=str(tmp_path / "cache"))
    cached = train_model(cfg, tmp_path / "cached", progress=False)
    pd.testing.assert_frame_equal(cached.metrics, memory.metrics, check_exact=True)
    for s in ("val", "tst"):
        a = np.load(tmp_path / "memory" / f"predictions_{s}.npz")
        b = np.load(tmp_path / "cached" / f"predictions_{s}.npz")
        np.testing.assert_array_equal(a["y_prob"], b["y_prob"])
    assert [h["train_loss"] for h in cached.history] == [h["train_loss"] for h in memory.history]
    dirs = sorted((tmp_path / "cache").iterdir())
    assert len(dirs) == 2 and all((d / "manifest-float32.json").is_file() for d in dirs)  # one cache per store
    hp = json.loads((tmp_path / "cached" / "hparams.json").read_text())
    assert hp["cache_dtype"] == "float32" and "cache_dir" not in hp  # where the cache is does not change results


def test_cached_windows_and_trailers_equal_the_in_memory_ones(tiny_release, tmp_path):
    import torch

    from divita.features.snippets import SnippetSet

    mids = mids_of(tiny_release)
    store = tiny_release / IMAGE_STORE
    memory = load_features(store, mids)
    cached, built = open_cache(store, mids, tmp_path, "float32")
    assert built and isinstance(cached, FileFeatureTable)
    assert cached.lengths.tolist() == memory.lengths.tolist() and cached.num_features == memory.num_features == 16
    for i in (0, 7, len(mids) - 1):
        np.testing.assert_array_equal(cached.trailer(i), memory.trailer(i))
    labels = np.zeros((len(mids), 10), np.float32)
    a = SnippetSet([memory], labels)
    assert (a.lengths < 30).any()  # some trailers are shorter than a window: padded
    assert cached.mapped  # a small file: gathered from its memory map; a large one is read window by window
    for table in (cached, replace(cached, mapped=False)):
        b = SnippetSet([table], labels)
        for x, y in zip(a.eval_batches(16), b.eval_batches(16), strict=True):
            assert x.xs[0].dtype == y.xs[0].dtype == torch.float32
            np.testing.assert_array_equal(x.xs[0].numpy(), y.xs[0].numpy())
            np.testing.assert_array_equal(x.masks[0].numpy(), y.masks[0].numpy())
        for x, y in zip(
            a.train_batches(8, np.random.default_rng(5)), b.train_batches(8, np.random.default_rng(5)), strict=True
        ):
            np.testing.assert_array_equal(x.xs[0].numpy(), y.xs[0].numpy())
            np.testing.assert_array_equal(x.masks[0].numpy(), y.masks[0].numpy())
    # a subset (one split's trailers, reordered) reads the same rows
    sub = [5, 2, 40]
    for i, j in enumerate(sub):
        np.testing.assert_array_equal(cached.subset(sub).trailer(i), memory.trailer(j))


# ---------------------------------------------------------------------------------------------- staleness
def test_a_changed_store_rebuilds_its_cache_and_an_unchanged_one_does_not(data, tmp_path):
    mids = mids_of(data)
    store = data / IMAGE_STORE
    root = tmp_path / "cache"
    _, built = open_cache(store, mids, root)
    assert built
    again, built = open_cache(store, mids, root)
    assert not built
    # a trailer's array rewritten with other values: rebuilt, and the new values are served
    g = zarr.open_group(str(store), mode="r+")
    new = np.full(g[mids[3]].shape, 7.5, np.float32)
    g[mids[3]][...] = new
    table, built = open_cache(store, mids, root)
    assert built
    np.testing.assert_array_equal(table.trailer(3), new)
    for table in (again, replace(again, mapped=False)):  # a table opened before keeps reading its own (old) file
        old = table.windows(np.array([3]), np.array([0]), 30)[0]
        assert not np.array_equal(table.trailer(3), new) and not (old[0, : len(new)] == 7.5).any()
    # a trailer nobody asked for, added to the store: still fresh
    g.create_array("tt_extra", shape=(4, 16), dtype="float32")[...] = 1.0
    assert not open_cache(store, mids, root)[1]
    # new group attributes: rebuilt; a subset of the cached trailers: served from the same cache
    g.attrs["note"] = "changed"
    assert open_cache(store, mids, root)[1]
    sub, built = open_cache(store, mids[:5], root)
    assert not built and sub.mids == mids[:5]
    # a trailer the cache lacks: rebuilt with it
    assert open_cache(store, [*mids, "tt_extra"], root)[1]
    # a cached trailer removed from the store: rebuilt, which fails as reading the store does
    shutil.rmtree(store / mids[0])
    with pytest.raises(DivitaError, match=f"trailer '{mids[0]}' listed in the labels is missing from the store"):
        open_cache(store, mids, root)
    d = store_cache_dir(root, store)
    data_file = json.loads((d / "manifest-float32.json").read_text())["data"]
    assert files_in(d) == sorted([".lock", "manifest-float32.json", data_file])  # the failed build left nothing behind


def test_a_cache_whose_data_file_is_truncated_or_missing_is_rebuilt(data, tmp_path):
    mids = mids_of(data)
    store = data / VIDEO_STORE
    open_cache(store, mids, tmp_path)
    d = store_cache_dir(tmp_path, store)
    data_file = d / json.loads((d / "manifest-float32.json").read_text())["data"]
    with open(data_file, "r+b") as f:
        f.truncate(1000)
    table, built = open_cache(store, mids, tmp_path)
    assert built
    np.testing.assert_array_equal(table.trailer(1), load_features(store, mids).trailer(1))
    (d / json.loads((d / "manifest-float32.json").read_text())["data"]).unlink()
    assert open_cache(store, mids, tmp_path)[1]


# ---------------------------------------------------------------------------------------------- killed build
SLOW_BUILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import divita.features.store_read as store_read
    from divita.features.cache import build_cache, open_cache, store_cache_dir, _locked

    store, root, mids = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
    original = store_read.read_arrays

    def slow(*args, **kwargs):
        time.sleep(0.15)
        return original(*args, **kwargs)

    store_read.read_arrays = slow
    d = store_cache_dir(root, store)
    d.mkdir(parents=True, exist_ok=True)
    with _locked(d):
        build_cache(store, mids, d, chunk_bytes=1)  # one trailer a step
""")


def kill_mid_build(store: Path, root: Path, mids: list[str]) -> None:
    """Start a slow build in another process and SIGKILL it once its data file is partly written."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", SLOW_BUILD, str(store), str(root), ",".join(mids)], env=env)
    d = store_cache_dir(root, store)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            partial = [p for p in d.glob(".data-*") if p.stat().st_size > 0] if d.is_dir() else []
            if partial:
                time.sleep(0.3)  # a few more trailers
                break
            assert proc.poll() is None, "the build ended before it could be killed"
            time.sleep(0.05)
        else:
            pytest.fail("no partial data file appeared")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def test_a_killed_build_is_never_used(data, tmp_path):
    mids = mids_of(data)
    store = data / IMAGE_STORE
    root = tmp_path / "cache"
    d = store_cache_dir(root, store)
    kill_mid_build(store, root, mids)
    assert not (d / "manifest-float32.json").exists()  # nothing names the partial file
    assert any(p.name.startswith(".data-") for p in d.iterdir())
    table, built = open_cache(store, mids, root)
    assert built
    memory = load_features(store, mids)
    np.testing.assert_array_equal(np.concatenate([table.trailer(i) for i in range(len(mids))]), memory.features)
    assert not any(p.name.startswith(".") and p.name != ".lock" for p in d.iterdir())  # leftovers removed

    # a rebuild (the store changed) killed half-way: neither the stale cache nor the partial one is used
    g = zarr.open_group(str(store), mode="r+")
    g[mids[-1]][...] = np.full(g[mids[-1]].shape, -2.0, np.float32)
    kill_mid_build(store, root, mids)
    table, built = open_cache(store, mids, root)
    assert built
    np.testing.assert_array_equal(table.trailer(len(mids) - 1), np.full(g[mids[-1]].shape, -2.0, np.float32))


# ---------------------------------------------------------------------------------------------- bfloat16
def test_a_bfloat16_cache_is_half_the_size_and_holds_the_rounded_features(tiny_release, tmp_path):
    import torch

    mids = mids_of(tiny_release)
    store = tiny_release / IMAGE_STORE
    f32, _ = open_cache(store, mids, tmp_path, "float32")
    bf16, built = open_cache(store, mids, tmp_path, "bfloat16")
    assert built and bf16.dtype == "bfloat16" and bf16.features.dtype == np.uint16
    d = store_cache_dir(tmp_path, store)
    size = {
        m["dtype"]: (d / m["data"]).stat().st_size
        for m in (json.loads((d / f"manifest-{t}.json").read_text()) for t in ("float32", "bfloat16"))
    }
    assert size["bfloat16"] * 2 == size["float32"] > 0  # both dtypes side by side
    exact = load_features(store, mids)
    for i in (0, 11):
        want = torch.from_numpy(exact.trailer(i)).to(torch.bfloat16).float().numpy()
        got = bf16.trailer(i)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want)
        np.testing.assert_allclose(got, exact.trailer(i), rtol=2**-8)
        assert not np.array_equal(got, exact.trailer(i))
    np.testing.assert_array_equal(encode_rows(exact.features, "bfloat16"), np.asarray(bf16.features))
    x, valid = bf16.windows(np.array([0, 1]), np.array([0, 3]), 30)
    assert x.dtype == np.float32 and x.shape == (2, 30, 16) and (x[~valid] == 0).all()
    np.testing.assert_array_equal(replace(bf16, mapped=False).windows(np.array([0, 1]), np.array([0, 3]), 30)[0], x)


def test_bfloat16_results_are_the_same_from_the_cache_and_from_memory_and_recorded(tiny_release, tmp_path):
    kw = dict(max_epochs=2, video_store=None, precision="32")  # float32 compute: the features' rounding shows
    runs = {}
    for name, cache_dir, dtype in (
        ("memory", "none", "bfloat16"),
        ("cached", str(tmp_path / "cache"), "bfloat16"),
        ("f32", str(tmp_path / "cache"), "float32"),
    ):
        cfg = tiny_config(tiny_release, cache_dir=cache_dir, cache_dtype=dtype, **kw)
        runs[name] = train_model(cfg, tmp_path / name, progress=False)
    pd.testing.assert_frame_equal(runs["cached"].metrics, runs["memory"].metrics, check_exact=True)
    probs = {name: np.load(tmp_path / name / "predictions_tst.npz")["y_prob"] for name in runs}
    np.testing.assert_array_equal(probs["cached"], probs["memory"])
    assert not np.array_equal(probs["cached"], probs["f32"])  # rounding the features changes results: in the identity
    np.testing.assert_allclose(probs["cached"], probs["f32"], atol=0.02)
    assert json.loads((tmp_path / "cached" / "hparams.json").read_text())["cache_dtype"] == "bfloat16"


# ---------------------------------------------------------------------------------------------- bad cache directories
def train_cli(data, tmp_path, *extra):
    return main(
        [
            "train",
            "--data-dir",
            str(data),
            "--ix",
            IMAGE_STORE,
            "--vx",
            "none",
            "--split",
            "0",
            "--out",
            str(tmp_path / "run"),
            "--max-epochs",
            "1",
            "--threads",
            "1",
            "--no-progress",
            *extra,
        ]
    )


def test_an_unwritable_cache_directory_is_a_one_line_error_naming_it(tiny_release, tmp_path, capsys):
    (tmp_path / "a-file").write_text("")
    where = tmp_path / "a-file" / "cache"
    assert train_cli(tiny_release, tmp_path, "--cache-dir", str(where)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(tmp_path / "a-file") in err[0] and "cannot write the feature cache" in err[0], err
    assert "--cache-dir" in err[0] and not (tmp_path / "run" / "metrics.csv").exists()


@pytest.fixture
def tiny_disk(tmp_path):
    """A 64 KiB tmpfs (root may mount one), unmounted afterwards."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_a_full_cache_disk_is_a_one_line_error_and_leaves_no_partial_file(tiny_release, tmp_path, tiny_disk, capsys):
    # the store's files alone are more than the disk holds: said before anything is written
    env_cache = tiny_disk / "cache"
    os.environ[cache_module.CACHE_ENV] = str(env_cache)  # the environment's default, this time
    try:
        assert train_cli(tiny_release, tmp_path) == 2
    finally:
        del os.environ[cache_module.CACHE_ENV]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(env_cache) in err[0] and "not enough disk space for the feature cache" in err[0], err
    (d,) = env_cache.iterdir()
    assert files_in(d) == [".lock"]
    # a store that compresses well passes that check, and the disk fills while the rows are written
    store = tmp_path / "constant.zarr"
    g = zarr.open_group(str(store), mode="w", zarr_format=2)
    g.attrs["num_features"] = 64
    mids = [f"t{i}" for i in range(40)]
    for mid in mids:
        g.create_array(mid, shape=(30, 64), dtype="float32")[...] = 1.0  # 7.5 KiB each as rows, a few bytes stored
    with pytest.raises(DivitaError) as e:
        open_cache(store, mids, env_cache)
    assert str(env_cache) in str(e.value) and "no space left on device" in str(e.value) and "\n" not in str(e.value)
    d = store_cache_dir(env_cache, store)
    assert files_in(d) == [".lock"]  # the partial data file is gone
    # the same data with room to spare: built and trained
    assert train_cli(tiny_release, tmp_path, "--cache-dir", str(tmp_path / "roomy")) == 0
    assert open_cache(store, mids, tmp_path / "roomy")[0].trailer(39).sum() == 30 * 64


# ---------------------------------------------------------------------------------------------- configuration
def test_a_file_gathered_from_its_memory_map_only_when_it_fits_in_half_the_memory_available(
    tiny_release, tmp_path, monkeypatch
):
    mids = mids_of(tiny_release)
    assert cache_module.memory_available() > 0
    table, _ = open_cache(tiny_release / IMAGE_STORE, mids, tmp_path)
    size = table.features.nbytes
    monkeypatch.setattr(cache_module, "memory_available", lambda: 2 * size)
    assert open_cache(tiny_release / IMAGE_STORE, mids, tmp_path)[0].mapped
    monkeypatch.setattr(cache_module, "memory_available", lambda: 2 * size - 1)  # less than twice the file
    assert not open_cache(tiny_release / IMAGE_STORE, mids, tmp_path)[0].mapped


def test_cache_options_defaults_and_identity(tiny_release, tmp_path, monkeypatch):
    from divita.cli import build_parser
    from divita.cli._train_options import train_config
    from divita.evaluation.reproduce import check_resumable

    monkeypatch.delenv(cache_module.CACHE_ENV, raising=False)
    assert cache_root(tiny_release, None) == tiny_release / CACHE_DIR_NAME
    assert cache_root(tiny_release, "none") is None and cache_root(tiny_release, "NONE") is None
    monkeypatch.setenv(cache_module.CACHE_ENV, str(tmp_path / "env"))
    assert cache_root(tiny_release, None) == tmp_path / "env"
    assert cache_root(tiny_release, str(tmp_path / "given")) == tmp_path / "given"  # the option beats the environment

    train = ["train", "--data-dir", "d", "--split", "0", "--out", "o", "--ix", "i", "--vx", "none"]
    for command in (train, ["reproduce", "--data-dir", "d"], ["demo"]):
        a = build_parser().parse_args(command)
        assert (a.cache_dir, a.cache_dtype) == (None, "float32")
        a = build_parser().parse_args([*command, "--cache-dir", "/c", "--cache-dtype", "bfloat16"])
        assert (a.cache_dir, a.cache_dtype) == ("/c", "bfloat16")
        cfg = train_config(a, data_dir="d", image_store="i", video_store=None, split=0)
        assert (cfg.cache_dir, cfg.cache_dtype) == ("/c", "bfloat16")
    with pytest.raises(SystemExit):
        build_parser().parse_args(
            [
                "train",
                "--data-dir",
                "d",
                "--split",
                "0",
                "--out",
                "o",
                "--ix",
                "i",
                "--vx",
                "v",
                "--cache-dtype",
                "float16",
            ]
        )
    with pytest.raises(DivitaError, match="cache_dtype must be one of"):
        tiny_config(tiny_release, cache_dtype="float16")

    cfg = tiny_config(tiny_release)
    assert cfg.identity()["cache_dtype"] == "float32" and "cache_dir" not in cfg.identity()
    assert replace(cfg, cache_dir="/x").identity() == cfg.identity()
    assert replace(cfg, cache_dtype="bfloat16").identity() != cfg.identity()
    # a finished run written before the cache existed records no cache_dtype: it was float32
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.csv").write_text("x\n")
    (run / "hparams.json").write_text(json.dumps({k: v for k, v in cfg.identity().items() if k != "cache_dtype"}))
    assert check_resumable(run, cfg)
    with pytest.raises(DivitaError, match="cache_dtype='float32' \\(asked 'bfloat16'\\)"):
        check_resumable(run, replace(cfg, cache_dtype="bfloat16"))


def test_evaluate_reads_through_the_cache_with_the_checkpoints_dtype(tiny_release, tmp_path, capsys):
    cache = tmp_path / "cache"
    cfg = tiny_config(tiny_release, cache_dir=str(cache), cache_dtype="bfloat16", max_epochs=1)
    train_model(cfg, tmp_path / "run", progress=False)
    args = ["evaluate", "--checkpoint", str(tmp_path / "run" / "best.ckpt"), "--data-dir", str(tiny_release), "--json"]

    def scores(*extra) -> pd.DataFrame:
        assert main([*args, *extra]) == 0
        return pd.DataFrame(json.loads(capsys.readouterr().out.splitlines()[0]))  # NaN where a genre has no positive

    def manifests() -> list[str]:
        return sorted(p.name for p in cache.glob("*/manifest-*.json"))

    bf16 = scores("--cache-dir", str(cache))
    assert manifests() == ["manifest-bfloat16.json"] * 2  # read with the checkpoint's dtype: nothing else built
    pd.testing.assert_frame_equal(scores("--cache-dir", "none"), bf16)  # in memory, still the checkpoint's bfloat16
    scores("--cache-dir", str(cache), "--cache-dtype", "float32")
    assert manifests() == ["manifest-bfloat16.json"] * 2 + ["manifest-float32.json"] * 2  # both stores, both dtypes


# ---------------------------------------------------------------------------------------------- the grid
ROWS = ["ShuffleNet-2D", "ShuffleNet-Fusion"]


def count_builds(monkeypatch) -> list[str]:
    built: list[str] = []
    real = cache_module.build_cache

    def counting(store, *args, **kwargs):
        built.append(Path(str(store)).name)
        return real(store, *args, **kwargs)

    monkeypatch.setattr(cache_module, "build_cache", counting)
    return built


def test_reproduce_builds_each_stores_cache_once_and_a_second_reproduce_reuses_them(
    tiny_release, tmp_path, monkeypatch
):
    from divita.evaluation.reproduce import reproduce

    built = count_builds(monkeypatch)
    base = TrainConfig(
        data_dir=str(tiny_release),
        image_store="-",
        video_store=None,
        max_epochs=1,
        batch_size=16,
        threads=1,
        cache_dir=str(tmp_path / "cache"),
    )
    logs: list[str] = []
    reproduce(tiny_release, tmp_path / "first", rows=ROWS, splits=(0, 1), base=base, progress=False, log=logs.append)
    assert sorted(built) == sorted([IMAGE_STORE, VIDEO_STORE])  # 4 runs, 6 store reads, 2 builds
    assert "4 to train" in logs[0] and logs[1].startswith("features: 2 feature cache(s) built")
    assert len(logs) == 6 and all("loading" in line and "building" not in line for line in logs[2:])
    built.clear()
    logs.clear()
    reproduce(tiny_release, tmp_path / "second", rows=ROWS, splits=(0,), base=base, progress=False, log=logs.append)
    assert built == [] and len(logs) == 3 and not any("feature cache" in line for line in logs)
    a = pd.read_csv(tmp_path / "first" / "transfer" / "runs" / "shufflenet-fusion" / "split0" / "metrics.csv")
    b = pd.read_csv(tmp_path / "second" / "transfer" / "runs" / "shufflenet-fusion" / "split0" / "metrics.csv")
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.ray
@pytest.mark.timeout(240)
def test_reproduce_on_ray_reads_the_caches_the_driver_built(tiny_release, tmp_path):
    ray = pytest.importorskip("ray")
    from divita.evaluation.reproduce import reproduce

    base = TrainConfig(
        data_dir=str(tiny_release),
        image_store="-",
        video_store=None,
        max_epochs=1,
        batch_size=16,
        threads=1,
        cache_dir=str(tmp_path / "cache"),
    )
    quiet = dict(rows=ROWS[1:], splits=(0, 1), base=base, progress=False)
    logs: list[str] = []
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=100 * 1024 * 1024)
    try:
        reproduce(tiny_release, tmp_path / "ray", log=logs.append, ray_address="local", ray_cpus_per_run=1, **quiet)
    finally:
        ray.shutdown()
    assert logs[1].startswith("features: 2 feature cache(s) built")
    # the workers built none
    assert len(logs) == 4 and all("loading" in line and "building" not in line for line in logs[2:]), logs
    manifests = {p: p.read_text() for p in (tmp_path / "cache").glob("*/manifest-float32.json")}
    logs.clear()
    reproduce(tiny_release, tmp_path / "local", log=logs.append, **quiet)
    assert len(logs) == 3 and not any("feature cache" in line for line in logs)
    assert {p: p.read_text() for p in (tmp_path / "cache").glob("*/manifest-float32.json")} == manifests
    for name in ("tst.csv", "val.csv"):
        a, b = (pd.read_csv(tmp_path / out / "transfer" / name) for out in ("ray", "local"))
        pd.testing.assert_frame_equal(a, b, atol=0.011, check_exact=False)


def test_validation_batches_gathered_ahead_equal_those_gathered_in_line(tiny_release):
    import threading

    import torch

    from divita.training import EvalBatches, load_split

    sets, _ = load_split(tiny_config(tiny_release, cache_dir="none"))
    in_line = list(EvalBatches(sets["val"], 4, cache_bytes=0, prefetch=False))
    streamed = EvalBatches(sets["val"], 4, cache_bytes=0)
    kept = EvalBatches(sets["val"], 4)
    partial = iter(kept)
    next(partial)
    partial.close()  # stopped early: nothing kept, no thread left
    assert kept._batches is None
    for batches in (list(streamed), list(kept), list(kept)):
        assert len(batches) == len(in_line)
        for a, b in zip(batches, in_line, strict=True):
            assert torch.equal(a.trailer, b.trailer) and all(torch.equal(x, y) for x, y in zip(a.xs, b.xs, strict=True))
    assert kept._batches is not None and all(a is b for a, b in zip(list(kept), kept._batches, strict=True))
    assert not any(t.name.startswith("divita-gather") and t.is_alive() for t in threading.enumerate())


def test_memory_available_is_bounded_by_the_memory_cgroup(tmp_path):
    """In a memory cgroup limited to 768 MiB (root may create one below its own; v1 or v2), the cache counts on
    no more than that."""
    own = dict(line.split(":", 2)[1:] for line in Path("/proc/self/cgroup").read_text().splitlines())
    v1 = next((p for c, p in own.items() if "memory" in c.split(",")), None)
    name = f"divita-test-{os.getpid()}"
    if v1 is not None and Path("/sys/fs/cgroup/memory").is_dir():
        cg, limit_file = Path("/sys/fs/cgroup/memory") / v1.lstrip("/") / name, "memory.limit_in_bytes"
    else:
        cg, limit_file = Path("/sys/fs/cgroup") / own.get("", "/").lstrip("/") / name, "memory.max"
    try:
        cg.mkdir()
        (cg / limit_file).write_text(str(768 << 20))
    except OSError as e:
        pytest.skip(f"cannot create a memory cgroup here: {e}")
    try:
        code = "from divita.features.cache import memory_available; print(memory_available())"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        r = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            preexec_fn=lambda: (cg / "cgroup.procs").write_text(str(os.getpid())),
        )
        assert r.returncode == 0, r.stderr
        assert int(r.stdout) == 768 << 20
    finally:
        for _ in range(50):
            try:
                cg.rmdir()
                break
            except OSError:
                time.sleep(0.1)


def test_the_manifest_keeps_the_stores_attributes_and_a_cache_without_them_still_opens(data, tmp_path):
    """A cached run takes num_features and the extraction record from the manifest (no zarr); a cache built before
    the manifest kept them opens the store for them instead, with the same result."""
    from divita.training import FeatureCache, load_split

    group = zarr.open_group(str(data / IMAGE_STORE), mode="r+")
    group.attrs["extraction"] = {"backbone": {"name": "shufflenet"}, "fps": 24}
    cfg = tiny_config(data, cache_dir=str(tmp_path / "cache"))
    _, info = load_split(cfg, FeatureCache(progress=False))
    manifest_path = store_cache_dir(tmp_path / "cache", data / IMAGE_STORE) / "manifest-float32.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["store_attrs"] == dict(zarr.open_group(str(data / IMAGE_STORE), mode="r").attrs)
    assert info["image"]["extraction"] == {"backbone": {"name": "shufflenet"}, "fps": 24}
    assert info["image"]["num_features"] == manifest["num_features"]

    del manifest["store_attrs"]  # as written before
    manifest_path.write_text(json.dumps(manifest))
    cache = FeatureCache(progress=False)
    _, info_again = load_split(cfg, cache)
    assert cache.builds == 0 and info_again == info
