"""`divita extract --ray` and `divita reproduce --ray` on a local Ray instance limited to 2 CPUs: the same
outputs as the local path, resumable across the two, surviving killed actors, stores at fsspec URLs."""

from __future__ import annotations

import csv
import importlib
import io
import json
import os
import signal
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import ray  # the optional extra `divita[ray]`; `make install` installs it for the tests

from builders import videos
from divita.cli import main
from divita.distributed.cluster import INSTALL_HINT, require_ray
from divita.distributed.extract import extract_ray
from divita.distributed.options import RayExtractStats
from divita.errors import DivitaError
from divita.features.extract import extract
from divita.features.store import open_store
from divita.features.store_read import load_features

pytestmark = [pytest.mark.ray, pytest.mark.timeout(240)]

BACKBONE = "shufflenet"
STORE = "trailers_i_shufflenet_fps24_fpc24.zarr"
MIDS = ["m0", "m1", "m2", "m3"]
COMMON = dict(
    weights="random", precision="float32", detector="content", batch_size=2, progress=False, log=lambda m: None
)


def _closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens at."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_address_nobody_answers_at_is_a_one_line_error_within_seconds(clips_dir, tiny_release, tmp_path, capsys):
    # first in this file: no Ray session exists yet (ray.init would otherwise retry for minutes)
    assert not ray.is_initialized()
    address = f"127.0.0.1:{_closed_port()}"
    t = time.monotonic()
    code = main(
        [
            "extract",
            str(clips_dir),
            "--backbone",
            BACKBONE,
            "--weights",
            "random",
            "--out",
            str(tmp_path / "o"),
            "--ray",
            address,
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and address in err[0] and "cannot reach a Ray cluster" in err[0], err
    code = main(
        [
            "reproduce",
            "--data-dir",
            str(tiny_release),
            "--out",
            str(tmp_path / "r"),
            "--rows",
            "ShuffleNet-2D",
            "--ray",
            f"ray://{address}",
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and f"ray://{address}" in err[0] and "connection refused" in err[0], err
    assert time.monotonic() - t < 60 and not ray.is_initialized()
    assert not (tmp_path / "o").exists()


@pytest.fixture(scope="module")
def ray_session():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=200 * 1024 * 1024)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def clips_dir(tmp_path_factory):
    """4 short 64x36 videos with two shots each (3 clips), and a broken file."""
    d = tmp_path_factory.mktemp("ray_videos")
    for i, mid in enumerate(MIDS):
        videos.cuts_video(d / f"{mid}.mp4", shots=(30 + 2 * i, 40), size=(64, 36), seed=20 + i)
    videos.write_text(d / "broken.mp4")
    return d


@pytest.fixture(scope="module")
def reference(clips_dir, tmp_path_factory):
    """A clean local extraction of the same videos with the same settings."""
    out = tmp_path_factory.mktemp("reference")
    s = extract([clips_dir], [BACKBONE], out, **COMMON)
    assert s.done == MIDS
    return out


def read_csv_rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def assert_same_store(ref_store, store, mids=MIDS):
    a, b = load_features(ref_store, mids), load_features(store, mids)
    assert a.lengths.tolist() == b.lengths.tolist()
    np.testing.assert_allclose(b.features, a.features, rtol=1e-5, atol=1e-5)
    ga, gb = open_store(ref_store), open_store(store)
    for mid in mids:
        x, y = dict(ga[mid].attrs), dict(gb[mid].attrs)
        for k in ("shots", "clips", "clip_seconds", "fps", "num_frames", "source"):
            assert x[k] == y[k], (mid, k)


def assert_same_outputs(ref: Path, out: Path, mids=MIDS):
    assert_same_store(ref / STORE, out / STORE, mids)
    for mid in mids:
        assert json.loads((out / "shots" / f"{mid}.json").read_text()) == json.loads(
            (ref / "shots" / f"{mid}.json").read_text()
        )
    assert (out / "videos.csv").read_bytes() == (ref / "videos.csv").read_bytes()
    fails = {Path(r["video"]).name: r["reason"] for r in read_csv_rows((out / "failures.csv").read_text())}
    assert fails == {Path(r["video"]).name: r["reason"] for r in read_csv_rows((ref / "failures.csv").read_text())}
    assert set(fails) == {"broken.mp4"}
    assert not (out / ".partial").exists()


def test_ray_extraction_equals_the_local_one_and_each_resumes_the_other(ray_session, clips_dir, reference, tmp_path):
    out = tmp_path / "out"
    first_two = sorted(clips_dir.glob("m*.mp4"))[:2]
    assert extract(first_two, [BACKBONE], out, **COMMON).done == ["m0", "m1"]  # a local run did part of the work
    stats = RayExtractStats()
    s = extract_ray([clips_dir], [BACKBONE], out, stats=stats, **COMMON)
    assert s.skipped == ["m0", "m1"] and s.done == ["m2", "m3"]
    assert (
        list(s.failed) == [str(clips_dir / "broken.mp4")]
        and "not a readable media file" in s.failed[str(clips_dir / "broken.mp4")]
    )
    assert stats.encoders == 1 and stats.retries == 0 and len(stats.video_wall) == 2
    assert_same_outputs(reference, out)
    again = extract([clips_dir], [BACKBONE], out, **COMMON)  # the local path resumes the Ray run's work
    assert again.done == [] and again.skipped == MIDS


def test_2d_and_3d_backbones_get_the_frames_the_local_path_gives_them(ray_session, clips_dir, tmp_path):
    one = [clips_dir / "m0.mp4"]  # 3 clips: two batches
    names = ["shufflenet", "r2plus1d"]  # 3 frames at 455x256 vs 16 frames at 228x128: two arrays per batch
    local = extract(one, names, tmp_path / "local", **COMMON)
    on_ray = extract_ray(one, names, tmp_path / "ray", **COMMON)
    assert local.done == on_ray.done == ["m0"]
    for store in ("trailers_i_shufflenet_fps24_fpc24.zarr", "trailers_k_r2plus1d_fps24_fpc24.zarr"):
        assert_same_store(tmp_path / "local" / store, tmp_path / "ray" / store, ["m0"])


def test_cli_extract_ray_writes_what_the_local_path_writes(ray_session, clips_dir, reference, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        [
            "extract",
            str(clips_dir),
            "--backbone",
            BACKBONE,
            "--weights",
            "random",
            "--precision",
            "float32",
            "--detector",
            "content",
            "--batch-size",
            "2",
            "--out",
            str(out),
            "--no-progress",
            "--ray",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1, err  # broken.mp4 failed, the rest is done (the local path's exit status)
    assert "extracted 4 video(s), skipped 0 already done, 1 failed" in err
    assert_same_outputs(reference, out)


def _kill_actor(actor, record: dict, permanent: bool) -> None:
    """Wait until the encoder actor is inside an encode call (not its first), then kill it."""
    deadline = time.time() + 90
    while time.time() < deadline:
        st = ray.get(actor.status.remote())
        if st["busy"] and st["calls"] >= 2:
            record.update(pid=st["pid"], video=st["busy"])
            if permanent:
                ray.kill(actor, no_restart=True)
            else:
                os.kill(st["pid"], signal.SIGKILL)
                try:
                    record["new_pid"] = ray.get(actor.status.remote(), timeout=90)["pid"]  # answered once restarted
                except Exception as e:  # noqa: BLE001 - recorded for the assertion message
                    record["restart_error"] = repr(e)
            return
        time.sleep(0.005)


def _kill_decode_worker(record: dict) -> None:
    """SIGKILL the first worker process seen executing a decode/shots task (Ray titles it ray::prepare_video)."""
    deadline = time.time() + 90
    while time.time() < deadline:
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmd = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if cmd.startswith(b"ray::prepare_video"):
                os.kill(int(proc.name), signal.SIGKILL)
                record["pid"] = int(proc.name)
                return
        time.sleep(0.005)


@pytest.mark.parametrize("how", ["actor-sigkill", "actor-killed-for-good", "decode-worker-sigkill"])
def test_a_worker_or_actor_killed_mid_video_costs_only_that_video(ray_session, clips_dir, reference, tmp_path, how):
    record: dict = {}
    threads = []
    events = []

    def on_event(kind, data):
        events.append((kind, data))
        if kind == "actors":
            if how.startswith("actor"):
                t = threading.Thread(
                    target=_kill_actor, args=(data[0], record, how == "actor-killed-for-good"), daemon=True
                )
            else:
                t = threading.Thread(target=_kill_decode_worker, args=(record,), daemon=True)
            t.start()
            threads.append(t)

    stats = RayExtractStats()
    out = tmp_path / "out"
    s = extract_ray([clips_dir], [BACKBONE], out, on_event=on_event, stats=stats, **COMMON)
    for t in threads:
        t.join(timeout=60)
    assert record.get("pid"), "nothing was caught mid-video to be killed"
    assert s.done == MIDS and set(s.failed) == {str(clips_dir / "broken.mp4")}
    retried = [d[0] for k, d in events if k == "retry"]
    if how == "actor-killed-for-good":
        # the videos whose batches were lost are resubmitted whole (to a fresh actor); nothing else is redone
        assert record["video"] in MIDS and retried and set(retried) <= set(MIDS) and stats.retries == len(retried) <= 2
    elif how == "actor-sigkill":
        # Ray restarts the actor (weights loaded again) and replays the unanswered call
        assert record.get("new_pid") not in (None, record["pid"]), record
        assert len(retried) <= 1
    else:
        assert not retried  # Ray reran the task on another worker; the driver saw nothing
    assert_same_outputs(reference, out)


def test_stores_at_an_fsspec_url_commit_zarr_json_last(ray_session, clips_dir, reference, tmp_path):
    import fsspec

    from divita.genres import GENRES

    url = f"memory://divita-{uuid.uuid4().hex[:8]}/run"
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "mid,"
        + ",".join(GENRES)
        + "\n"
        + "".join(
            f"{m}," + ",".join("1" if (i + g) % 3 == 0 else "0" for g in range(10)) + "\n"
            for i, m in enumerate(MIDS + ["absent"])
        )
    )
    s = extract_ray([clips_dir], [BACKBONE], url, labels=labels, **COMMON)
    assert s.done == MIDS and s.stores == {BACKBONE: f"{url}/{STORE}"} and s.labels == f"{url}/mtgc.csv"
    assert_same_store(reference / STORE, f"{url}/{STORE}")  # divita's reader opens the URL like a directory
    fs, root = fsspec.core.url_to_fs(url)
    assert fs.cat_file(f"{root}/videos.csv") == (reference / "videos.csv").read_bytes()
    assert [Path(r["video"]).name for r in read_csv_rows(fs.cat_file(f"{root}/failures.csv").decode())] == [
        "broken.mp4"
    ]
    assert json.loads(fs.cat_file(f"{root}/shots/m2.json")) == json.loads((reference / "shots" / "m2.json").read_text())
    mtgc = pd.read_csv(io.BytesIO(fs.cat_file(f"{root}/mtgc.csv")), dtype={"mid": str})
    assert sorted(mtgc["mid"]) == MIDS and {"split0", "split1", "split2"} <= set(mtgc.columns)
    # an upload cut off before its zarr.json (the completion marker) is not a committed array, and is redone
    fs.rm_file(f"{root}/{STORE}/m1/zarr.json")
    again = extract_ray([clips_dir], [BACKBONE], url, **COMMON)
    assert again.done == ["m1"] and again.skipped == ["m0", "m2", "m3"]
    assert_same_store(reference / STORE, f"{url}/{STORE}")
    fs.rm(root, recursive=True)


def test_reproduce_grid_on_ray_matches_the_local_grid_and_resumes(ray_session, tiny_release, tmp_path):
    from divita.evaluation.reproduce import reproduce
    from divita.training import TrainConfig

    rows = ["ShuffleNet-2D", "ShuffleNet-Fusion"]
    base = TrainConfig(
        data_dir=str(tiny_release), image_store="-", video_store=None, max_epochs=2, batch_size=16, threads=1
    )
    quiet = dict(rows=rows, splits=(0, 1), base=base, progress=False)
    reproduce(tiny_release, tmp_path / "local", log=lambda s: None, **quiet)
    logs: list[str] = []
    reproduce(tiny_release, tmp_path / "ray", log=logs.append, ray_address="local", ray_cpus_per_run=1, **quiet)
    assert "0 already finished, 4 to train" in logs[0] and len(logs) == 5
    for name in ("tst.csv", "val.csv", "tst_sklearn.csv", "selection.csv"):
        a = pd.read_csv(tmp_path / "local" / "transfer" / name)
        b = pd.read_csv(tmp_path / "ray" / "transfer" / name)
        pd.testing.assert_frame_equal(a, b, atol=0.011, check_exact=False)  # same seeds, one thread each: same runs
    run = tmp_path / "ray" / "transfer" / "runs" / "shufflenet-fusion" / "split1"
    assert sorted(p.name for p in run.iterdir()) == sorted(
        p.name for p in (tmp_path / "local" / "transfer" / "runs" / "shufflenet-fusion" / "split1").iterdir()
    )
    # resumable exactly like the local grid: only the unfinished run is trained again, by either path
    (run / "metrics.csv").unlink()
    logs.clear()
    reproduce(tiny_release, tmp_path / "ray", log=logs.append, ray_address="local", ray_cpus_per_run=1, **quiet)
    assert "3 already finished, 1 to train" in logs[0] and "ShuffleNet-Fusion split1" in logs[1]
    logs.clear()
    reproduce(tiny_release, tmp_path / "ray", log=logs.append, **quiet)
    assert "4 already finished, 0 to train" in logs[0]


def test_without_ray_the_flags_say_how_to_install_it(monkeypatch, clips_dir, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(DivitaError, match=r"pip install 'divita\[ray\]'"):
        require_ray()
    code = main(
        [
            "extract",
            str(clips_dir),
            "--backbone",
            BACKBONE,
            "--weights",
            "random",
            "--out",
            str(tmp_path / "o"),
            "--ray",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [f"divita extract: error: {INSTALL_HINT}"]
    assert not (tmp_path / "o").exists()
    code = main(
        ["reproduce", "--data-dir", str(tmp_path), "--out", str(tmp_path / "r"), "--ray", "auto", "--no-progress"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [f"divita reproduce: error: {INSTALL_HINT}"]


def test_an_output_url_without_ray_is_a_usage_error(clips_dir, capsys):
    code = main(["extract", str(clips_dir), "--backbone", BACKBONE, "--out", "memory://bucket/x"])
    assert code == 2 and "needs --ray" in capsys.readouterr().err


def test_settings_are_checked_like_the_local_path_before_ray_starts(clips_dir, tmp_path):
    bad = [dict(fpc=0), dict(fps=-1.0), dict(fpc=8, min_clip_frames=9), dict(batch_size=0), dict(precision="float8")]
    bad += [dict(threshold=1.5), dict(detector="nope")]
    for kw in bad:
        with pytest.raises(DivitaError) as local:
            extract([clips_dir], [BACKBONE], tmp_path / "local", progress=False, **kw)
        with pytest.raises(DivitaError) as on_ray:
            extract_ray([clips_dir], [BACKBONE], tmp_path / "ray", progress=False, **kw)
        assert on_ray.value.problem == local.value.problem, kw
    with pytest.raises(DivitaError, match="backbone listed twice: shufflenet, shufflenet"):
        extract_ray([clips_dir], [BACKBONE, BACKBONE], tmp_path / "ray")
    for kw, message in (
        (dict(encoder_cpus=-1), "encoder CPUs must not be negative, got -1"),
        (dict(in_flight=0), "videos in flight must be at least 1, got 0"),
        (dict(chunk_window=0), "unanswered batches per video must be at least 1, got 0"),
    ):
        with pytest.raises(DivitaError, match=message):
            extract_ray([clips_dir], [BACKBONE], tmp_path / "ray", **kw)
    from divita.backbones import load_encoder

    with pytest.raises(DivitaError, match="on Ray, backbones are given by name"):
        extract_ray([clips_dir], [load_encoder(BACKBONE, weights="random")], tmp_path / "ray")
    assert not (tmp_path / "local").exists() and not (tmp_path / "ray").exists()


def test_the_package_names_its_modules_objects():
    import divita.distributed
    from divita.distributed import cluster, grid, options, workers
    from divita.distributed import extract as ray_extract

    homes = {
        cluster: ["INSTALL_HINT", "require_ray", "connect", "disconnect", "check_reachable"],
        ray_extract: ["extract_ray"],
        options: ["RayExtractStats", "RayOptions"],
        workers: ["EncoderWorker", "frame_plan", "prepare_video"],
        grid: ["train_grid", "train_run", "write_run_files"],
    }
    for home, names in homes.items():  # the package's lazy names
        for name in names:
            assert getattr(divita.distributed, name) is getattr(home, name), name
    assert sorted(divita.distributed.__all__) == sorted(n for names in homes.values() for n in names)
    with pytest.raises(ImportError):
        importlib.import_module("divita.distributed.ray_backend")


def test_importing_the_distributed_modules_leaves_ray_unimported():
    import subprocess

    code = (
        "import sys, divita.distributed as d, divita.distributed.cluster, divita.distributed.extract, "
        "divita.distributed.grid, divita.features.outputs; d.extract_ray, d.train_grid, d.require_ray; "
        "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))"
    )
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and r.stdout.strip() == "[]", (r.stdout, r.stderr[-2000:])
