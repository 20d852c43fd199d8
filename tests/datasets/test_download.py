"""`divita download` against a local HTTP mirror on 127.0.0.1 serving a miniature Trailers12k release."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from builders.http_server import md5_of, serve_directory, tar_gz_directory, write_checksums
from divita.cli import main
from divita.datasets.download import MARKER_NAME, download_release, fetch_release
from divita.datasets.release import RELEASE_FILES
from divita.datasets.release_files import missing_release_files, read_checksums, require_data, resolve_names
from divita.errors import DivitaError

STEM_A = "trailers_i_shufflenet_fpc24"
STEM_B = "trailers_k_shufflenet_fps24_fpc24"
ARCH_A = f"{STEM_A}.zarr.tar.gz"
ARCH_B = f"{STEM_B}.zarr.tar.gz"
MTGC = "mtgc.csv"
MIDS = ("0001", "0002", "0003")


def _mini_store(path: Path, num_features: int, seed: int) -> dict[str, np.ndarray]:
    """A tiny zarr v2 group like the release stores: attr num_features, one (clips, features) float32 array per id."""
    import zarr

    rng = np.random.default_rng(seed)
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    group.attrs["num_features"] = num_features
    arrays = {}
    for i, mid in enumerate(MIDS):
        x = rng.standard_normal((2 + i, num_features)).astype(np.float32)
        a = group.create_array(mid, shape=x.shape, dtype="float32", chunks=x.shape)
        a[...] = x
        arrays[mid] = x
    return arrays


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """A mirror directory with mtgc.csv and two miniature archives, plus their md5s and the arrays inside."""
    root = tmp_path_factory.mktemp("mirror")
    build = tmp_path_factory.mktemp("build")
    (root / MTGC).write_text("mid,split0\n" + "".join(f"{m},train\n" for m in MIDS))
    arrays = {}
    for stem, nf, seed in ((STEM_A, 8, 0), (STEM_B, 4, 1)):
        arrays[stem] = _mini_store(build / f"{stem}.zarr", nf, seed)
        tar_gz_directory(build / f"{stem}.zarr", root / f"{stem}.zarr.tar.gz")
    sums = write_checksums(root, build / "md5sums.txt")
    return {"root": root, "sums": sums, "sums_file": build / "md5sums.txt", "arrays": arrays}


@pytest.fixture
def mirror(release):
    with serve_directory(release["root"]) as m:
        yield m


def _get(data_dir, mirror, release, **kw):
    kw.setdefault("only", [MTGC, ARCH_A])
    return fetch_release(data_dir, base_url=mirror.url, checksums=release["sums"], progress=False, backoff=0, **kw)


def _assert_store(store: Path, arrays: dict[str, np.ndarray]) -> None:
    from divita.features.store import store_num_features
    from divita.features.store_read import load_features

    assert store.is_dir()
    assert store_num_features(store) == next(iter(arrays.values())).shape[1]
    table = load_features(store, list(arrays))
    for i, (_mid, x) in enumerate(arrays.items()):
        np.testing.assert_array_equal(table.trailer(i), x)


def _leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.endswith(".part") or p.name.startswith(".divita-tmp"))


# --------------------------------------------------------------------------------------------- happy path


def test_full_download_extracts_verifies_and_records(tmp_path, mirror, release):
    d = tmp_path / "data"
    paths = download_release(
        d, only=[MTGC, ARCH_A, STEM_B + ".zarr"], base_url=mirror.url, checksums=release["sums"], progress=False
    )
    assert paths == [d / MTGC, d / f"{STEM_A}.zarr", d / f"{STEM_B}.zarr"]
    assert (d / MTGC).read_bytes() == (release["root"] / MTGC).read_bytes()
    _assert_store(d / f"{STEM_A}.zarr", release["arrays"][STEM_A])
    _assert_store(d / f"{STEM_B}.zarr", release["arrays"][STEM_B])
    assert not (d / ARCH_A).exists() and not (d / ARCH_B).exists()  # archives deleted by default
    assert _leftovers(d) == []
    marker = json.loads((d / MARKER_NAME).read_text())["files"]
    assert marker[ARCH_A] == {"md5": release["sums"][ARCH_A], "size": (release["root"] / ARCH_A).stat().st_size,
                              "extracted_to": f"{STEM_A}.zarr"}  # fmt: skip
    assert marker[MTGC]["md5"] == release["sums"][MTGC]
    assert all(r.range is None for r in mirror.gets())
    assert len(mirror.gets()) == 3


def test_progress_goes_to_stderr(tmp_path, mirror, release, capsys):
    download_release(tmp_path / "d", only=[MTGC], base_url=mirror.url, checksums=release["sums"], progress=True)
    out, err = capsys.readouterr()
    assert out == "" and f"{MTGC}: downloading {mirror.url}/{MTGC}?download=1" in err


def test_rerun_skips_verified_files_without_any_request(tmp_path, mirror, release):
    d = tmp_path / "data"
    _get(d, mirror, release)
    seen = len(mirror.requests)
    results = _get(d, mirror, release)
    assert len(mirror.requests) == seen  # no new GET, no HEAD
    assert [r.skipped for r in results] == [True, True]
    _assert_store(d / f"{STEM_A}.zarr", release["arrays"][STEM_A])


def test_keep_archives(tmp_path, mirror, release):
    d = tmp_path / "data"
    results = _get(d, mirror, release, only=[ARCH_A], keep_archives=True)
    assert results[0].extracted and results[0].archive_kept
    assert md5_of(d / ARCH_A) == release["sums"][ARCH_A]
    assert _get(d, mirror, release, only=[ARCH_A], keep_archives=True)[0].skipped
    # A later run without --keep-archives tidies the archive away, still without fetching anything.
    n = len(mirror.requests)
    assert _get(d, mirror, release, only=[ARCH_A])[0].skipped
    assert not (d / ARCH_A).exists() and len(mirror.requests) == n


def test_existing_unrecorded_file_is_hashed_not_fetched(tmp_path, mirror, release):
    d = tmp_path / "data"
    d.mkdir()
    (d / MTGC).write_bytes((release["root"] / MTGC).read_bytes())  # e.g. copied there by hand
    results = _get(d, mirror, release, only=[MTGC])
    assert mirror.gets() == [] and not results[0].downloaded
    (d / MARKER_NAME).unlink()
    (d / MTGC).write_text("wrong content\n")
    results = _get(d, mirror, release, only=[MTGC])
    assert results[0].downloaded and md5_of(d / MTGC) == release["sums"][MTGC]


# ------------------------------------------------------------------------------------------ interruptions


def test_transfer_cut_mid_file_resumes_with_range(tmp_path, mirror, release):
    d = tmp_path / "data"
    mirror.cut_after[ARCH_A] = 100
    results = _get(d, mirror, release, only=[ARCH_A], retries=0)
    assert [r.range for r in mirror.gets(ARCH_A)] == [None, "bytes=100-"]
    assert [r.status for r in mirror.gets(ARCH_A)] == [200, 206]
    assert results[0].resumed and results[0].extracted
    _assert_store(d / f"{STEM_A}.zarr", release["arrays"][STEM_A])


def test_rerun_after_kill_resumes_partial_file(tmp_path, mirror, release):
    """A run killed mid-transfer leaves DIR/<name>.part; the next run asks only for the rest."""
    d = tmp_path / "data"
    d.mkdir()
    data = (release["root"] / ARCH_A).read_bytes()
    n = len(data) // 3
    (d / f"{ARCH_A}.part").write_bytes(data[:n])
    results = _get(d, mirror, release, only=[ARCH_A])
    assert [r.range for r in mirror.gets()] == [f"bytes={n}-"]
    assert results[0].resumed and results[0].downloaded
    _assert_store(d / f"{STEM_A}.zarr", release["arrays"][STEM_A])
    assert _leftovers(d) == []


def test_interrupted_run_fails_cleanly_then_rerun_finishes(tmp_path, mirror, release, monkeypatch):
    d = tmp_path / "data"
    size = (release["root"] / ARCH_A).stat().st_size
    mirror.cut_after[ARCH_A] = 64  # the first GET stops after 64 bytes...

    def mirror_goes_down(_seconds):  # ...and by the first retry the mirror answers 503
        mirror.fail_status[ARCH_A] = 503

    import divita.datasets.transfer as transfer

    monkeypatch.setattr(transfer.time, "sleep", mirror_goes_down)
    with pytest.raises(DivitaError) as ei:
        _get(d, mirror, release, only=[ARCH_A], retries=1)
    monkeypatch.undo()
    msg = str(ei.value)
    assert "\n" not in msg and "HTTP 503" in msg and "rerun `divita download` to resume" in msg
    assert (d / f"{ARCH_A}.part").stat().st_size == 64 < size
    assert not (d / ARCH_A).exists() and not (d / f"{STEM_A}.zarr").exists()

    del mirror.fail_status[ARCH_A]
    results = _get(d, mirror, release, only=[ARCH_A])
    assert mirror.gets(ARCH_A)[-1].range == "bytes=64-" and mirror.gets(ARCH_A)[-1].status == 206
    assert results[0].resumed
    _assert_store(d / f"{STEM_A}.zarr", release["arrays"][STEM_A])


def test_killed_process_then_rerun_resumes(tmp_path, mirror, release):
    """SIGKILL a real `divita download` mid-transfer; the next run asks only for the missing bytes."""
    import time

    d = tmp_path / "data"
    n = (release["root"] / ARCH_A).stat().st_size // 2
    mirror.stall_after[ARCH_A] = n
    proc = subprocess.Popen(
        [str(_divita_exe()), "download", "--data-dir", str(d), "--base-url", mirror.url, "--only", STEM_A,
         "--checksums", str(release["sums_file"]), "--no-progress"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    part = d / f"{ARCH_A}.part"
    try:
        deadline = time.monotonic() + 20
        while not (part.exists() and part.stat().st_size == n) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert part.stat().st_size == n
    mirror.release_stalled()
    results = _get(d, mirror, release, only=[STEM_A])
    assert mirror.gets(ARCH_A)[-1].range == f"bytes={n}-" and results[0].resumed
    _assert_store(d / f"{STEM_A}.zarr", release["arrays"][STEM_A])
    assert _leftovers(d) == []


def test_a_second_download_into_the_same_directory_fails_at_once_naming_the_first(tmp_path, mirror, release, capsys):
    """Two downloads would append to the same .part file: while one holds DIR's lock another fails at once, in
    one line naming the holder; the lock goes with the holder's process, even a killed one."""
    d = tmp_path / "data"
    d.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from divita.datasets.download import _download_lock\n"
         "with _download_lock(Path(sys.argv[1])):\n    print('locked', flush=True); time.sleep(60)", str(d)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        argv = ["download", "--data-dir", str(d), "--base-url", mirror.url, "--checksums", str(release["sums_file"]),
                "--only", MTGC, "--no-progress"]  # fmt: skip
        assert main(argv) == 2
        out, err = capsys.readouterr()
        assert err.count("\n") == 1 and f"another `divita download` (pid {holder.pid})" in err and str(d) in err
        assert mirror.gets(MTGC) == [] and not (d / MTGC).exists()
    finally:
        holder.kill()
        holder.wait(timeout=10)
    assert main(argv) == 0  # the kernel dropped the killed holder's lock
    assert (d / MTGC).read_bytes() == (release["root"] / MTGC).read_bytes()


def test_resume_survives_a_redirect(tmp_path, mirror, release):
    """Zenodo answers /record/... with a redirect; the Range header must follow it."""
    d = tmp_path / "data"
    d.mkdir()
    data = (release["root"] / ARCH_A).read_bytes()
    (d / f"{ARCH_A}.part").write_bytes(data[:70])
    mirror.redirects["/record/"] = "/records/"
    base = mirror.url.replace("/files", "/record/5716410/files")
    fetch_release(d, only=[ARCH_A], base_url=base, checksums=release["sums"], progress=False)
    assert [(r.range, r.status) for r in mirror.gets()] == [("bytes=70-", 302), ("bytes=70-", 206)]
    _assert_store(d / f"{STEM_A}.zarr", release["arrays"][STEM_A])


def test_server_ignoring_range_restarts_from_zero(tmp_path, mirror, release):
    d = tmp_path / "data"
    d.mkdir()
    data = (release["root"] / ARCH_A).read_bytes()
    (d / f"{ARCH_A}.part").write_bytes(data[:50])
    mirror.ignore_range = True
    results = _get(d, mirror, release, only=[ARCH_A])
    assert [(r.range, r.status) for r in mirror.gets()] == [("bytes=50-", 200)]
    assert not results[0].resumed
    _assert_store(d / f"{STEM_A}.zarr", release["arrays"][STEM_A])


def test_overlong_partial_gets_416_and_restarts(tmp_path, mirror, release):
    d = tmp_path / "data"
    d.mkdir()
    size = (release["root"] / MTGC).stat().st_size
    (d / f"{MTGC}.part").write_bytes(b"x" * (size + 10))
    _get(d, mirror, release, only=[MTGC])
    assert [(r.range, r.status) for r in mirror.gets()] == [(f"bytes={size + 10}-", 416), (None, 200)]
    assert md5_of(d / MTGC) == release["sums"][MTGC]


def test_complete_partial_is_verified_after_416(tmp_path, mirror, release):
    """Killed after the last byte but before the rename: the 416 answer tells us to just check the md5."""
    d = tmp_path / "data"
    d.mkdir()
    (d / f"{MTGC}.part").write_bytes((release["root"] / MTGC).read_bytes())
    _get(d, mirror, release, only=[MTGC])
    assert [r.status for r in mirror.gets()] == [416]
    assert md5_of(d / MTGC) == release["sums"][MTGC] and _leftovers(d) == []


def test_corrupted_partial_is_redownloaded_from_scratch(tmp_path, mirror, release):
    d = tmp_path / "data"
    d.mkdir()
    (d / f"{ARCH_A}.part").write_bytes(b"\0" * 40)  # garbage prefix: the resumed file fails its md5
    _get(d, mirror, release, only=[ARCH_A])
    assert [r.range for r in mirror.gets()] == ["bytes=40-", None]
    _assert_store(d / f"{STEM_A}.zarr", release["arrays"][STEM_A])


def test_kill_during_extraction_leaves_no_half_store(tmp_path, mirror, release, monkeypatch):
    import divita.datasets.unpack as unpack

    d = tmp_path / "data"
    real = unpack.safe_member_filter

    def dying_filter(archive, dest):
        check, count = real(archive, dest), [0]

        def f(member, path):
            count[0] += 1
            if count[0] == 3:
                raise KeyboardInterrupt  # like Ctrl-C in the middle of unpacking
            return check(member, path)

        return f

    monkeypatch.setattr(unpack, "safe_member_filter", dying_filter)
    with pytest.raises(KeyboardInterrupt):
        _get(d, mirror, release, only=[ARCH_A])
    assert not (d / f"{STEM_A}.zarr").exists()
    assert (d / ARCH_A).exists()  # verified archive kept for the rerun
    # A hard kill would also leave the temporary directory behind.
    (d / f".divita-tmp-{STEM_A}.zarr" / "junk").mkdir(parents=True)
    monkeypatch.setattr(unpack, "safe_member_filter", real)
    n = len(mirror.requests)
    results = _get(d, mirror, release, only=[ARCH_A])
    assert len(mirror.requests) == n  # archive already verified (marker): no download, no re-hash needed
    assert results[0].extracted and not results[0].downloaded
    _assert_store(d / f"{STEM_A}.zarr", release["arrays"][STEM_A])
    assert not any(p.name.startswith(".divita-") and p.is_dir() for p in d.iterdir())


# -------------------------------------------------------------------------------------------- bad content


def test_corrupted_file_on_mirror_is_rejected(tmp_path, mirror, release):
    d = tmp_path / "data"
    wrong = "0" * 32
    with pytest.raises(DivitaError) as ei:
        fetch_release(d, only=[ARCH_A], base_url=mirror.url, checksums={ARCH_A: wrong}, progress=False, backoff=0)
    msg = str(ei.value)
    assert "\n" not in msg
    assert ARCH_A in msg and wrong in msg and release["sums"][ARCH_A] in msg and "md5 mismatch" in msg
    assert len(mirror.gets()) == 2  # retried once from scratch
    assert not (d / ARCH_A).exists() and not (d / f"{ARCH_A}.part").exists()
    assert not (d / f"{STEM_A}.zarr").exists()
    assert not (d / MARKER_NAME).exists() or ARCH_A not in json.loads((d / MARKER_NAME).read_text())["files"]


def _evil_tar(path: Path, kind: str) -> None:
    top = f"{STEM_A}.zarr"
    with tarfile.open(path, "w:gz") as tf:

        def add(name, data=b"x", **attrs):
            ti = tarfile.TarInfo(name)
            for k, v in attrs.items():
                setattr(ti, k, v)
            ti.size = len(data) if ti.isreg() else 0
            tf.addfile(ti, io.BytesIO(data) if ti.isreg() else None)

        add(top, type=tarfile.DIRTYPE, mode=0o755)
        add(f"{top}/.zgroup", b'{"zarr_format": 2}')
        if kind == "dotdot":
            add(f"{top}/../../evil")
        elif kind == "dotdot_top":
            add("../evil")
        elif kind == "absolute":
            add(str(path.parent.parent / "evil"))
        elif kind == "symlink_out":
            add(f"{top}/link", type=tarfile.SYMTYPE, linkname="../../..")
            add(f"{top}/link/evil")
        elif kind == "symlink_abs":
            add(f"{top}/link", type=tarfile.SYMTYPE, linkname="/etc/passwd")
        elif kind == "hardlink_out":
            add(f"{top}/hl", type=tarfile.LNKTYPE, linkname="../evil")
        elif kind == "device":
            add(f"{top}/dev", type=tarfile.CHRTYPE, devmajor=1, devminor=3)
        elif kind == "fifo":
            add(f"{top}/fifo", type=tarfile.FIFOTYPE)


@pytest.mark.parametrize(
    "kind", ["dotdot", "dotdot_top", "absolute", "symlink_out", "symlink_abs", "hardlink_out", "device", "fifo"]
)
def test_malicious_tar_is_refused(tmp_path, kind):
    root = tmp_path / "mirror"
    root.mkdir()
    _evil_tar(root / ARCH_A, kind)
    d = tmp_path / "work" / "data"
    before = sorted(p for p in tmp_path.rglob("*"))
    with serve_directory(root) as m:
        with pytest.raises(DivitaError) as ei:
            fetch_release(d, only=[ARCH_A], base_url=m.url, checksums={ARCH_A: md5_of(root / ARCH_A)}, progress=False)
    msg = str(ei.value)
    assert "\n" not in msg and ARCH_A in msg and "refusing to extract member" in msg
    # Nothing written outside DIR, and no store (or half store) inside it.
    after = sorted(p for p in tmp_path.rglob("*") if d not in p.parents and p != d)
    assert after == sorted(before + [tmp_path / "work"])
    assert not (d / f"{STEM_A}.zarr").exists()
    assert not any(p.name.startswith(".divita-tmp") for p in d.iterdir())
    assert not Path("/etc/passwd").is_symlink()


def test_extraction_uses_the_data_filter(tmp_path):
    """Beyond our own checks, tarfile's "data" filter applies: e.g. setuid bits are dropped."""
    root = tmp_path / "mirror"
    root.mkdir()
    with tarfile.open(root / ARCH_A, "w:gz") as tf:
        for name, mode, data in ((f"{STEM_A}.zarr", 0o755, None), (f"{STEM_A}.zarr/.zgroup", 0o4777, b"{}")):
            ti = tarfile.TarInfo(name)
            ti.mode = mode
            if data is None:
                ti.type = tarfile.DIRTYPE
            else:
                ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    with serve_directory(root) as m:
        fetch_release(tmp_path / "d", only=[ARCH_A], base_url=m.url, checksums={ARCH_A: md5_of(root / ARCH_A)},
                      progress=False)  # fmt: skip
    mode = (tmp_path / "d" / f"{STEM_A}.zarr" / ".zgroup").stat().st_mode
    assert not mode & 0o6000 and not mode & 0o002


def test_archive_without_the_store_directory_is_refused(tmp_path):
    root = tmp_path / "mirror"
    (tmp_path / "other.zarr").mkdir()
    (tmp_path / "other.zarr" / ".zattrs").write_text("{}")
    root.mkdir()
    tar_gz_directory(tmp_path / "other.zarr", root / ARCH_A)
    with serve_directory(root) as m, pytest.raises(DivitaError, match=f"does not contain {STEM_A}.zarr/"):
        fetch_release(tmp_path / "d", only=[ARCH_A], base_url=m.url, checksums={ARCH_A: md5_of(root / ARCH_A)},
                      progress=False)  # fmt: skip


# ------------------------------------------------------------------------------------------ network errors


def test_missing_file_on_mirror_is_one_line_error_without_retries(tmp_path, mirror, release):
    with pytest.raises(DivitaError) as ei:
        fetch_release(tmp_path / "d", only=["trailers_i_swin_fpc24"], base_url=mirror.url, progress=False, backoff=0)
    assert "HTTP 404" in str(ei.value) and "\n" not in str(ei.value)
    assert len(mirror.gets()) == 1


def test_server_errors_are_retried_then_reported(tmp_path, mirror, release):
    mirror.fail_status[MTGC] = 503
    with pytest.raises(DivitaError, match=r"download failed after 3 attempts: HTTP 503"):
        _get(tmp_path / "d", mirror, release, only=[MTGC], retries=2)
    assert len(mirror.gets()) == 3


def test_connection_refused(tmp_path):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with pytest.raises(DivitaError, match="download failed after 2 attempts"):
        fetch_release(tmp_path / "d", only=[MTGC], base_url=f"http://127.0.0.1:{port}/x", progress=False,
                      retries=1, backoff=0)  # fmt: skip


@pytest.mark.parametrize("url", ["ftp://example.org/files", "zenodo.org/record/5716410/files", "http://"])
def test_bad_base_url(tmp_path, url):
    with pytest.raises(DivitaError, match="base URL must be"):
        fetch_release(tmp_path / "d", base_url=url, progress=False)
    assert not (tmp_path / "d").exists()


# ------------------------------------------------------------------------------------------------- names


def test_only_accepts_file_store_and_stem_names():
    assert [f.name for f in resolve_names([STEM_A])] == [ARCH_A]
    assert [f.name for f in resolve_names([f"{STEM_A}.zarr", ARCH_A, STEM_A])] == [ARCH_A]
    assert [f.name for f in resolve_names([ARCH_B, "mtgc.csv"])] == [MTGC, ARCH_A.replace(STEM_A, STEM_B)]
    assert len(resolve_names(None)) == len(RELEASE_FILES) == 7
    with pytest.raises(DivitaError) as ei:
        resolve_names(["trailers_x"])
    assert "trailers_x" in str(ei.value) and STEM_A in str(ei.value) and "mtgc" in str(ei.value)


def test_read_checksums(tmp_path):
    f = tmp_path / "sums"
    f.write_text(f"# comment\n{'a' * 32}  {MTGC}\n{'B' * 32} *./{ARCH_A}\n\n")
    assert read_checksums(f) == {MTGC: "a" * 32, ARCH_A: "b" * 32}
    f.write_text("nothex  mtgc.csv\n")
    with pytest.raises(DivitaError, match=r"sums:1: expected '<md5>  <file name>'"):
        read_checksums(f)
    f.write_text(f"{'a' * 32}  other.bin\n")
    with pytest.raises(DivitaError, match="not a Trailers12k release file"):
        read_checksums(f)
    with pytest.raises(DivitaError, match="checksum file not found"):
        read_checksums(tmp_path / "nope")


def test_require_data_messages(tmp_path):
    d = tmp_path / "my data"
    with pytest.raises(DivitaError) as ei:
        require_data(d, [f"{STEM_A}.zarr"])
    assert str(ei.value) == (
        f"{d}: data directory not found; run `divita download --data-dir '{d}'` to fetch the Trailers12k release"
    )
    d.mkdir()
    with pytest.raises(DivitaError) as ei:
        require_data(d, [f"{STEM_A}.zarr"])
    assert str(ei.value) == (
        f"{d / MTGC}: missing (also missing: {STEM_A}.zarr); "
        f"run `divita download --data-dir '{d}' --only mtgc.csv {STEM_A}` to fetch them"
    )
    (d / MTGC).write_text("mid\n")
    assert missing_release_files(d, [MTGC, STEM_A, ARCH_B]) == [f"{STEM_A}.zarr", f"{STEM_B}.zarr"]
    with pytest.raises(DivitaError) as ei:
        require_data(d, [f"{STEM_A}.zarr"])
    assert str(ei.value) == (
        f"{d / (STEM_A + '.zarr')}: missing; run `divita download --data-dir '{d}' --only {STEM_A}` to fetch it"
    )
    (d / f"{STEM_A}.zarr").mkdir()
    require_data(d, [f"{STEM_A}.zarr"])


# --------------------------------------------------------------------------------------------------- CLI


def test_cli_end_to_end(tmp_path, mirror, release, capsys):
    d = tmp_path / "data"
    argv = ["download", "--data-dir", str(d), "--base-url", mirror.url, "--checksums", str(release["sums_file"]),
            "--only", MTGC, STEM_A, "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert f"{ARCH_A}: downloaded, md5 ok, extracted (archive deleted) -> {d / (STEM_A + '.zarr')}" in out
    assert out.strip().endswith(f"2 files in {d}: 2 downloaded, 0 skipped, 1 extracted")
    _assert_store(d / f"{STEM_A}.zarr", release["arrays"][STEM_A])

    assert main(argv) == 0
    out, _ = capsys.readouterr()
    assert f"{MTGC}: already verified, skipped" in out and "0 downloaded, 2 skipped, 0 extracted" in out

    assert main(["download", "--data-dir", str(d), "--base-url", mirror.url, "--only", "nope", "--no-progress"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith("divita download: error: nope: not a Trailers12k release file (valid names: mtgc, ")

    # Without --checksums the published md5s apply, which the miniature files do not match.
    assert main(["download", "--data-dir", str(tmp_path / "d2"), "--base-url", mirror.url, "--only", MTGC,
                 "--no-progress"]) == 2  # fmt: skip
    _, err = capsys.readouterr()
    assert err.count("\n") == 1 and "md5 mismatch: expected d730579950345b2c0f9c4a9779bd9d44" in err


def _divita_exe() -> Path:
    exe = Path(sys.executable).parent / "divita"
    if not exe.exists():
        pytest.skip("the divita console script is not installed next to this python")
    return exe


@pytest.mark.parametrize("case", ["unknown_name", "missing_on_mirror", "bad_scheme", "missing_checksums"])
def test_console_script_errors_are_one_line(tmp_path, mirror, case):
    args = {
        "unknown_name": ["--base-url", mirror.url, "--only", "bogus"],
        "missing_on_mirror": ["--base-url", mirror.url, "--only", "trailers_i_swin_fpc24"],
        "bad_scheme": ["--base-url", "ftp://127.0.0.1/files"],
        "missing_checksums": ["--base-url", mirror.url, "--checksums", str(tmp_path / "none.md5")],
    }[case]
    proc = subprocess.run(
        [str(_divita_exe()), "download", "--data-dir", str(tmp_path / "d"), "--no-progress", *args],
        capture_output=True, text=True, timeout=60, env={**os.environ, "DIVITA_DEBUG": ""},
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("divita download: error: ")
    assert "Traceback" not in proc.stderr
