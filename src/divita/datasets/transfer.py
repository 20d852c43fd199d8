"""One release file over HTTP, resumable and verified: it streams into ``DIR/<name>.part``, a rerun (or a retry)
resumes it with a ``Range`` request, transient network errors are retried with backoff, and only a file whose
md5 matches is renamed to ``DIR/<name>`` (:func:`download_verified`)."""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from divita import __version__
from divita.datasets.release import ReleaseFile
from divita.errors import DivitaError
from divita.fileio import check_free_space, file_hexdigest, human_bytes

CHUNK_SIZE = 1 << 20
# Network failures worth retrying (the transfer resumes from the .part file).
_TRANSIENT = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError)


def file_md5(path: Path, desc: str | None = None, progress: bool = False) -> str:
    """The md5 (hex) of the file at ``path``; a progress bar named ``desc`` on stderr for a large file."""
    size = path.stat().st_size
    with progress_bar(size, 0, f"md5 {desc or path.name}", progress and size > 64 * CHUNK_SIZE) as bar:
        return file_hexdigest(path, "md5", bar.update, CHUNK_SIZE)


def progress_bar(total: int | None, initial: int, desc: str, enabled: bool):
    """A tqdm bar of bytes named ``desc`` on stderr, ``initial`` of ``total`` done (drawn only when ``enabled``)."""
    from tqdm import tqdm

    return tqdm(
        total=total, initial=initial, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
        disable=not enabled, file=sys.stderr, leave=False, dynamic_ncols=True,
    )  # fmt: skip


def file_url(base_url: str, name: str) -> str:
    """Where the release file ``name`` lies under ``base_url`` (Zenodo's form: ``?download=1``)."""
    return f"{base_url.rstrip('/')}/{urllib.parse.quote(name)}?download=1"


def check_base_url(base_url: str) -> None:
    """DivitaError naming ``base_url`` unless it is an http(s) URL with a host."""
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
            with open(part, mode) as out, progress_bar(total, offset, name, progress) as bar:
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


def download_verified(
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
            log(f"{f.name}: resuming at {human_bytes(part.stat().st_size)} from {url}")
        else:
            log(f"{f.name}: downloading {url}")
        try:
            resumed, actual = _transfer_once(url, part, f.name, progress, timeout, state)
        except _Transient as e:
            failures = 0 if e.progressed else failures + 1
            if failures > retries:
                have = part.stat().st_size if part.exists() else 0
                kept = f"; {human_bytes(have)} kept in {part.name}, rerun `divita download` to resume" if have else ""
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
