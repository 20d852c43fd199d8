"""Download, verify and unpack the Trailers12k release (Zenodo record 5716410).

:func:`download_release` fetches ``mtgc.csv`` and the six ``*.zarr.tar.gz`` feature archives into a data
directory, and is safe to kill and rerun at any point:

* each file streams into ``DIR/<name>.part``; a rerun resumes it with an HTTP ``Range`` request (a server
  that answers 200 instead of 206, or 416, or disagrees about the offset, makes it start over);
* transient network errors are retried with backoff, resuming where the transfer stopped;
* the md5 is checked before ``<name>.part`` is renamed to ``<name>``; a mismatch deletes the file, retries
  once from scratch, then raises :class:`DivitaError` naming the file and both checksums;
* archives are unpacked into a temporary directory inside DIR with tarfile's ``"data"`` filter plus an
  explicit check that every member (and every link target) stays inside it, and only a complete store is
  renamed to ``DIR/<stem>.zarr``; the archive is then deleted unless ``keep_archives`` (the release is ~40 GB);
* ``DIR/.divita-verified.json`` records what was verified (md5, size, extracted store), written
  atomically, so reruns skip finished files without re-hashing multi-GB archives;
* one download at a time per directory: ``DIR/.divita-download.lock`` is held (``flock``, released by the
  kernel when the process ends, however it ends); a second one fails at once, naming the holder's pid.

Modules: :mod:`.release_files` (names, paths in DIR, checksum files, :func:`~.release_files.require_data`),
:mod:`.transfer` (the resumable, verified HTTP transfer of one file), :mod:`.unpack` (safe, atomic unpacking);
this one drives them, with the marker and the lock.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from divita.datasets.release import RELEASE_FILES, ZENODO_BASE_URL
from divita.datasets.release_files import release_path, resolve_names, resolve_release_file
from divita.datasets.transfer import check_base_url, download_verified, file_md5, file_url
from divita.datasets.unpack import extract_store
from divita.errors import DivitaError
from divita.fileio import atomic_write_text

MARKER_NAME = ".divita-verified.json"
LOCK_NAME = ".divita-download.lock"


@dataclass
class DownloadResult:
    """What :func:`fetch_release` did for one release file."""

    name: str  # release file name, e.g. "trailers_i_swin_fpc24.zarr.tar.gz"
    path: Path  # what the data directory now holds for it: the file, or the extracted store directory
    downloaded: bool = False  # bytes were fetched in this run
    resumed: bool = False  # ... and the transfer continued a .part file left by an earlier run
    skipped: bool = False  # already verified by an earlier run; nothing fetched or unpacked
    extracted: bool = False  # the archive was unpacked in this run
    archive_kept: bool = False  # the verified archive is still on disk after extraction
    nbytes: int = 0  # size of the verified file


# ----------------------------------------------------------------------------------------------- marker


def _read_marker(data_dir: Path) -> dict[str, dict]:
    try:
        data = json.loads((data_dir / MARKER_NAME).read_text(encoding="utf-8"))
        files = data.get("files", {})
        return {k: v for k, v in files.items() if isinstance(v, dict)} if isinstance(files, dict) else {}
    except (OSError, ValueError, AttributeError):
        return {}  # absent or damaged: everything gets re-verified


def _write_marker(data_dir: Path, files: Mapping[str, dict]) -> None:
    path = data_dir / MARKER_NAME
    atomic_write_text(path, json.dumps({"format": 1, "files": dict(sorted(files.items()))}, indent=1))


# ------------------------------------------------------------------------------------------------ API


@contextmanager
def _download_lock(data_dir: Path):
    """Hold ``DIR/.divita-download.lock`` (an exclusive flock) for the duration; DivitaError if another process
    holds it (two downloads would append to the same ``.part`` files). No-op where flock does not exist."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    path = data_dir / LOCK_NAME
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "?"
            raise DivitaError(
                data_dir,
                f"another `divita download` (pid {holder}) is writing into this directory; "
                f"wait for it to finish (lock: {LOCK_NAME})",
            ) from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        yield


def fetch_release(
    data_dir: str | os.PathLike,
    only: Iterable[str] | None = None,
    base_url: str = ZENODO_BASE_URL,
    checksums: Mapping[str, str] | None = None,
    progress: bool = True,
    timeout: float = 60,
    retries: int = 3,
    keep_archives: bool = False,
    backoff: float = 1.0,
    log: Callable[[str], None] | None = None,
) -> list[DownloadResult]:
    """Like :func:`download_release`, returning what was done for each file."""
    check_base_url(base_url)
    files = resolve_names(only)
    expected = {f.name: f.md5 for f in RELEASE_FILES.values()}
    for name, md5 in (checksums or {}).items():
        expected[resolve_release_file(name).name] = md5.lower()
    if log is None:
        log = (lambda msg: print(msg, file=sys.stderr, flush=True)) if progress else (lambda msg: None)

    d = Path(data_dir)
    if d.exists() and not d.is_dir():
        raise DivitaError(d, "not a directory")
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DivitaError(d, f"cannot create data directory: {e.strerror or e}") from None

    with _download_lock(d):
        marker = _read_marker(d)
        results: list[DownloadResult] = []
        for f in files:
            md5 = expected[f.name]
            rec = marker.get(f.name, {})
            rec_ok = rec.get("md5") == md5
            final = d / f.name
            res = DownloadResult(f.name, release_path(d, f))

            if f.is_archive:
                store = release_path(d, f)
                if rec_ok and rec.get("extracted_to") == f.extracts_to and store.is_dir():
                    res.skipped, res.nbytes = True, int(rec.get("size", 0))
                    if final.exists() and not keep_archives:
                        final.unlink()  # killed after the marker update, before the archive was deleted
                    res.archive_kept = final.exists()
                    results.append(res)
                    continue
            elif rec_ok and final.is_file() and final.stat().st_size == rec.get("size"):
                res.skipped, res.nbytes = True, final.stat().st_size
                results.append(res)
                continue

            # Need a verified copy of the file itself.
            have_verified = False
            if final.is_file():
                if rec_ok and final.stat().st_size == rec.get("size"):
                    have_verified = True  # verified by an earlier run, killed before extraction finished
                else:
                    log(f"{f.name}: checking md5 of the existing file")
                    if file_md5(final, f.name, progress) == md5:
                        have_verified = True
                    else:
                        log(f"{f.name}: existing file has the wrong md5; downloading it again")
                        final.unlink()
            if not have_verified:
                if marker.pop(f.name, None) is not None:
                    _write_marker(d, marker)  # the old record does not describe what we are about to fetch
                _, res.resumed = download_verified(
                    file_url(base_url, f.name), d, f, md5, progress, timeout, retries, backoff, log
                )
                res.downloaded = True
            res.nbytes = final.stat().st_size
            marker[f.name] = {"md5": md5, "size": res.nbytes, "extracted_to": None}
            _write_marker(d, marker)

            if f.is_archive:
                extract_store(final, d, f, log)
                res.extracted = True
                marker[f.name] = {"md5": md5, "size": res.nbytes, "extracted_to": f.extracts_to}
                _write_marker(d, marker)
                if not keep_archives:
                    final.unlink()
                res.archive_kept = keep_archives
            results.append(res)
        return results


def download_release(
    data_dir: str | os.PathLike,
    only: Iterable[str] | None = None,
    base_url: str = ZENODO_BASE_URL,
    checksums: Mapping[str, str] | None = None,
    progress: bool = True,
    timeout: float = 60,
    retries: int = 3,
    keep_archives: bool = False,
    backoff: float = 1.0,
) -> list[Path]:
    """Download, verify and unpack the Trailers12k release into ``data_dir``; returns the ready paths.

    Args:
        only: release files to fetch (default all): file names (``mtgc.csv``, ``x.zarr.tar.gz``), store names
            (``x.zarr``) or stems (``x``). Unknown names raise :class:`DivitaError` listing the valid ones.
        base_url: a directory URL holding the release files; file ``NAME`` is fetched from
            ``{base_url}/NAME?download=1``. Default: Zenodo record 5716410.
        checksums: ``{file name: md5}`` overriding the published md5s (for mirrors holding other content).
        progress: show progress bars and status lines on stderr.
        timeout: socket timeout in seconds for each request.
        retries: how many consecutive failed attempts (no bytes received) to retry, with exponential backoff.
        keep_archives: keep each ``*.zarr.tar.gz`` after it was unpacked (default: delete it).
        backoff: seconds before the first retry (doubling after each further failure).

    Returns:
        For each selected file, the path it is ready at: ``DIR/mtgc.csv`` or the store ``DIR/<stem>.zarr``.
    """
    results = fetch_release(data_dir, only, base_url, checksums, progress, timeout, retries, keep_archives, backoff)
    return [r.path for r in results]
