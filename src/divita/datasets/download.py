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

:func:`require_data` is what training code calls to fail early, in one line, when the data is missing.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shlex
import shutil
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from divita import __version__
from divita.datasets.release import LABELS_FILE, RELEASE_FILES, ZENODO_BASE_URL, ReleaseFile
from divita.errors import DivitaError
from divita.fileio import atomic_write_text, check_free_space, file_hexdigest, human_bytes

MARKER_NAME = ".divita-verified.json"
LOCK_NAME = ".divita-download.lock"
CHUNK_SIZE = 1 << 20
_TMP_PREFIX = ".divita-tmp-"
_OLD_PREFIX = ".divita-old-"
# Network failures worth retrying (the transfer resumes from the .part file).
_TRANSIENT = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError)


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


# ----------------------------------------------------------------------------------------------- names


def _stem(f: ReleaseFile) -> str:
    return f.extracts_to[: -len(".zarr")] if f.extracts_to else f.name.rsplit(".", 1)[0]


def _valid_names() -> str:
    return ", ".join(_stem(f) for f in RELEASE_FILES.values())


def resolve_release_file(name: str) -> ReleaseFile:
    """The release file called ``name``: a file name (``x.zarr.tar.gz``), a store (``x.zarr``) or a stem (``x``)."""
    key = name.strip().rstrip("/")
    key = os.path.basename(key) if key else key
    for f in RELEASE_FILES.values():
        if key in (f.name, f.extracts_to, _stem(f)):
            return f
    raise DivitaError(name, f"not a Trailers12k release file (valid names: {_valid_names()})")


def resolve_names(only: Iterable[str] | None) -> list[ReleaseFile]:
    """The release files selected by ``only`` (all of them when None or empty), in release order, no repeats."""
    if not only:
        return list(RELEASE_FILES.values())
    wanted = {resolve_release_file(n).name for n in only}
    return [f for f in RELEASE_FILES.values() if f.name in wanted]


def _target(data_dir: Path, f: ReleaseFile) -> Path:
    """What DIR holds for ``f`` once it is ready: the file itself, or the directory the archive unpacks into."""
    return data_dir / (f.extracts_to or f.name)


def read_checksums(path: str | os.PathLike) -> dict[str, str]:
    """Read ``md5sum``-style lines (``<md5>  <name>`` or ``<md5> *<name>``) into ``{release file name: md5}``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DivitaError(p, "checksum file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DivitaError(p, f"cannot read checksum file: {e}") from None
    out: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(maxsplit=1)
        md5 = parts[0].lower()
        if len(parts) != 2 or len(md5) != 32 or any(c not in "0123456789abcdef" for c in md5):
            raise DivitaError(f"{p}:{lineno}", f"expected '<md5>  <file name>' (md5sum format), got {line!r}")
        name = parts[1].lstrip("*").strip()
        out[resolve_release_file(name).name] = md5
    return out


# ------------------------------------------------------------------------------------ missing-data checks


def missing_release_files(data_dir: str | os.PathLike, names: Iterable[str]) -> list[str]:
    """Which of ``names`` (release files, stores or stems) DIR lacks, as on-disk names (``mtgc.csv``, ``x.zarr``)."""
    d = Path(data_dir)
    missing: list[str] = []
    for n in names:
        f = resolve_release_file(n)
        t = _target(d, f)
        ok = t.is_dir() if f.is_archive else t.is_file()
        if not ok and t.name not in missing:
            missing.append(t.name)
    return missing


def require_data(data_dir: str | os.PathLike, stores: Iterable[str]) -> None:
    """Raise a one-line :class:`DivitaError` unless DIR holds ``mtgc.csv`` and every store in ``stores``.

    ``stores`` are store directory names as in :data:`divita.datasets.release.TABLE6` (``trailers_i_swin_fpc24.zarr``);
    stems and archive names are accepted too. The message names the first missing path and the
    ``divita download`` command that fetches what is missing.
    """
    d = Path(data_dir)
    q = shlex.quote(str(d))
    if not d.is_dir():
        raise DivitaError(
            d, f"data directory not found; run `divita download --data-dir {q}` to fetch the Trailers12k release"
        )
    missing = missing_release_files(d, [LABELS_FILE, *stores])
    if not missing:
        return
    only = " ".join(_stem(resolve_release_file(m)) if m.endswith(".zarr") else m for m in missing)
    more = f" (also missing: {', '.join(missing[1:])})" if len(missing) > 1 else ""
    them = "them" if len(missing) > 1 else "it"
    raise DivitaError(
        d / missing[0], f"missing{more}; run `divita download --data-dir {q} --only {only}` to fetch {them}"
    )


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


def _file_md5(path: Path, desc: str | None = None, progress: bool = False) -> str:
    size = path.stat().st_size
    with _bar(size, 0, f"md5 {desc or path.name}", progress and size > 64 * CHUNK_SIZE) as bar:
        return file_hexdigest(path, "md5", bar.update, CHUNK_SIZE)


def _bar(total: int | None, initial: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(
        total=total, initial=initial, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
        disable=not enabled, file=sys.stderr, leave=False, dynamic_ncols=True,
    )  # fmt: skip


# --------------------------------------------------------------------------------------------- download


def _file_url(base_url: str, name: str) -> str:
    return f"{base_url.rstrip('/')}/{urllib.parse.quote(name)}?download=1"


def _check_base_url(base_url: str) -> None:
    u = urllib.parse.urlsplit(base_url)
    if u.scheme not in ("http", "https") or not u.netloc:
        raise DivitaError(
            base_url, "base URL must be an http:// or https:// URL of a directory holding the release files"
        )


def _parse_content_range(value: str | None) -> tuple[int, int | None] | None:
    """``"bytes 100-199/1000"`` -> (100, 1000); ``"bytes 100-199/*"`` -> (100, None); None if unparsable."""
    if not value or not value.startswith("bytes "):
        return None
    try:
        span, _, total = value[6:].partition("/")
        start = int(span.split("-", 1)[0])
        return start, (int(total) if total.strip() not in ("", "*") else None)
    except ValueError:
        return None


class _Transient(Exception):
    """A transfer that stopped early for a reason a retry (resuming) may fix."""

    def __init__(self, reason: str, progressed: bool):
        super().__init__(reason)
        self.progressed = progressed


def _reason(e: BaseException) -> str:
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}"
    if isinstance(e, urllib.error.URLError):
        return str(e.reason)
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def _transfer_once(url: str, part: Path, name: str, progress: bool, timeout: float, state: dict) -> tuple[bool, str]:
    """One HTTP request that appends to (or restarts) ``part``. Returns (resumed, md5 of the complete part).

    ``state`` carries the md5 of the bytes already in ``part`` from one attempt to the next, so that resuming
    within a run does not re-read them. Raises :class:`_Transient` when the transfer should be retried,
    :class:`DivitaError` when it cannot work.
    """
    offset = part.stat().st_size if part.exists() else 0
    if offset and state.get("size") == offset:
        hasher = state["hasher"].copy()
    else:
        # Hash the bytes we already have before asking for the rest, so the connection never idles.
        hasher = hashlib.md5()
        if offset:
            with open(part, "rb") as fh:
                while chunk := fh.read(CHUNK_SIZE):
                    hasher.update(chunk)
    headers = {"User-Agent": f"divita/{__version__}", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 416 and offset:
            # Nothing left to send from `offset`: the part may already be complete (killed before the rename),
            # or longer than the file. Let the caller check its md5; a mismatch restarts from zero.
            return True, hasher.hexdigest()
        if e.code in (408, 425, 429) or e.code >= 500:
            raise _Transient(_reason(e), False) from None
        raise DivitaError(url, f"{_reason(e)} (is the base URL a mirror of Zenodo record 5716410?)") from None
    except _TRANSIENT as e:
        raise _Transient(_reason(e), False) from None
    except ValueError as e:  # malformed URL
        raise DivitaError(url, str(e)) from None

    with resp:
        status = resp.status
        length = resp.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        resumed = False
        if offset and status == 206:
            cr = _parse_content_range(resp.headers.get("Content-Range"))
            if cr is None or cr[0] != offset:
                # The server sent a different range than we asked for: start over next time.
                part.unlink(missing_ok=True)
                raise _Transient(
                    f"server answered Range bytes={offset}- with {resp.headers.get('Content-Range')!r}", True
                )
            total = cr[1] if cr[1] is not None else (offset + length if length is not None else None)
            mode, resumed = "ab", True
        elif status in (200, 206):  # 200: fresh start (also when a server ignores our Range)
            if status == 206:
                cr = _parse_content_range(resp.headers.get("Content-Range"))
                total = cr[1] if cr else None
            else:
                total = length
            offset, hasher, mode = 0, hashlib.md5(), "wb"
        else:
            raise _Transient(f"unexpected HTTP status {status}", False)

        if total is not None:
            check_free_space(part.parent, total - offset, name)

        written = offset
        try:
            with open(part, mode) as out, _bar(total, offset, name, progress) as bar:
                while True:
                    try:
                        chunk = resp.read1(CHUNK_SIZE)  # what has arrived, up to a chunk: smooth bar, prompt writes
                    except _TRANSIENT as e:
                        raise _Transient(_reason(e), written > offset) from None
                    if not chunk:
                        break
                    out.write(chunk)
                    out.flush()  # what we received is on disk for a resume even if the process is killed
                    hasher.update(chunk)
                    written += len(chunk)
                    state["size"], state["hasher"] = written, hasher
                    bar.update(len(chunk))
        except OSError as e:
            if isinstance(e, _TRANSIENT):
                raise _Transient(_reason(e), written > offset) from None
            raise DivitaError(part, f"cannot write: {e.strerror or e}") from None
        if total is not None and written > total:
            part.unlink(missing_ok=True)
            raise _Transient(f"server sent {written} bytes, more than the {total} it announced", False)
        if total is not None and written < total:
            raise _Transient(f"connection closed after {written} of {total} bytes", written > offset)
        return resumed, hasher.hexdigest()


def _download_verified(
    url: str,
    data_dir: Path,
    f: ReleaseFile,
    md5: str,
    progress: bool,
    timeout: float,
    retries: int,
    backoff: float,
    log: Callable[[str], None],
) -> tuple[Path, bool]:
    """Fetch ``f`` into ``DIR/<name>.part``, verify its md5 and rename it to ``DIR/<name>``. Returns (path, resumed)."""
    part = data_dir / f"{f.name}.part"
    final = data_dir / f.name
    mismatches = 0
    failures = 0  # consecutive attempts that made no progress
    resumed_any = False
    state: dict = {}  # md5 of what `part` holds, carried between attempts
    while True:
        if part.exists():
            log(f"{f.name}: resuming at {_human(part.stat().st_size)} from {url}")
        else:
            log(f"{f.name}: downloading {url}")
        try:
            resumed, actual = _transfer_once(url, part, f.name, progress, timeout, state)
        except _Transient as e:
            failures = 0 if e.progressed else failures + 1
            if failures > retries:
                have = part.stat().st_size if part.exists() else 0
                kept = f"; {_human(have)} kept in {part.name}, rerun `divita download` to resume" if have else ""
                raise DivitaError(
                    url, f"download failed after {retries + 1} attempt{'s' if retries else ''}: {e}{kept}"
                ) from None
            wait = backoff * 2 ** max(failures - 1, 0)
            log(f"{f.name}: {e}; retrying in {wait:.0f} s")
            time.sleep(min(wait, 60.0))
            continue
        resumed_any = resumed_any or resumed
        if actual == md5:
            os.replace(part, final)
            return final, resumed_any
        part.unlink(missing_ok=True)
        mismatches += 1
        if mismatches > 1:
            raise DivitaError(
                f.name,
                f"md5 mismatch: expected {md5}, got {actual} (downloaded twice from {url}; the file was deleted)",
            )
        log(f"{f.name}: md5 mismatch (expected {md5}, got {actual}); downloading again from scratch")


# ---------------------------------------------------------------------------------------------- extract


def _inside(root: str, path: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _safe_member_filter(archive: Path, dest: str) -> Callable[[tarfile.TarInfo, str], tarfile.TarInfo]:
    """A tarfile extraction filter: our explicit checks, then the stdlib ``data`` filter."""
    root = os.path.realpath(dest)
    data_filter = getattr(tarfile, "data_filter", None)  # Python >= 3.11.4

    def refuse(member: tarfile.TarInfo, why: str):
        raise DivitaError(archive, f"refusing to extract member {member.name!r}: {why}")

    def check(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo:
        name = member.name
        if name.startswith(("/", "\\")) or os.path.isabs(name) or (len(name) > 1 and name[1] == ":"):
            refuse(member, "absolute path")
        if ".." in name.replace("\\", "/").split("/"):
            refuse(member, "'..' in path")
        target = os.path.normpath(os.path.join(root, name))
        if not _inside(root, target) or not _inside(root, os.path.realpath(target)):
            refuse(member, "would be written outside the destination")
        if member.issym() or member.islnk():
            link = member.linkname
            if os.path.isabs(link) or link.startswith(("/", "\\")):
                refuse(member, f"link to absolute path {link!r}")
            base = os.path.dirname(target) if member.issym() else root
            link_target = os.path.normpath(os.path.join(base, link))
            if not _inside(root, link_target) or not _inside(root, os.path.realpath(link_target)):
                refuse(member, f"link {link!r} points outside the destination")
        elif not (member.isfile() or member.isdir()):
            refuse(member, "device, fifo or other special file")
        if data_filter is not None:
            try:
                member = data_filter(member, path)
            except tarfile.FilterError as e:
                refuse(member, str(e))
        return member

    return check


def _looks_like_store(d: Path) -> bool:
    return (d / ".zgroup").is_file() or (d / "zarr.json").is_file()


def _extract(archive: Path, data_dir: Path, f: ReleaseFile, log: Callable[[str], None]) -> Path:
    """Unpack ``archive`` safely and atomically into ``DIR/<stem>.zarr``; returns that directory."""
    assert f.extracts_to
    store = data_dir / f.extracts_to
    tmp = data_dir / f"{_TMP_PREFIX}{f.extracts_to}"
    old = data_dir / f"{_OLD_PREFIX}{f.extracts_to}"
    for leftover in (tmp, old):  # from a run killed mid-extraction
        if leftover.exists():
            shutil.rmtree(leftover)
    tmp.mkdir()
    log(f"{f.name}: extracting to {store}")
    try:
        try:
            with tarfile.open(archive, "r:gz") as tf:
                tf.extractall(tmp, filter=_safe_member_filter(archive, str(tmp)))
        except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
            raise DivitaError(archive, f"cannot extract ({type(e).__name__}: {e})") from None
        unpacked = tmp / f.extracts_to
        if not unpacked.is_dir():
            # Tolerate an archive whose members sit at the top level rather than under <stem>.zarr/.
            if _looks_like_store(tmp):
                unpacked = tmp
            else:
                top = sorted(p.name for p in tmp.iterdir())[:5]
                raise DivitaError(archive, f"archive does not contain {f.extracts_to}/ (top-level entries: {top})")
        if store.is_symlink() or store.is_file():
            store.unlink()
        elif store.exists():
            # An unverified store from an earlier run (killed after the rename, before the marker update).
            os.replace(store, old)
        os.replace(unpacked, store)
    finally:
        for leftover in (tmp, old):
            if leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)
    return store


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
    _check_base_url(base_url)
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
            res = DownloadResult(f.name, _target(d, f))

            if f.is_archive:
                store = _target(d, f)
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
                    if _file_md5(final, f.name, progress) == md5:
                        have_verified = True
                    else:
                        log(f"{f.name}: existing file has the wrong md5; downloading it again")
                        final.unlink()
            if not have_verified:
                if marker.pop(f.name, None) is not None:
                    _write_marker(d, marker)  # the old record does not describe what we are about to fetch
                _, res.resumed = _download_verified(
                    _file_url(base_url, f.name), d, f, md5, progress, timeout, retries, backoff, log
                )
                res.downloaded = True
            res.nbytes = final.stat().st_size
            marker[f.name] = {"md5": md5, "size": res.nbytes, "extracted_to": None}
            _write_marker(d, marker)

            if f.is_archive:
                _extract(final, d, f, log)
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


_human = human_bytes  # its earlier home
