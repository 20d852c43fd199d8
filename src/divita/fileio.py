"""File helpers. Atomic writes: a temporary file in the same directory, flushed to disk, then renamed into
place, so a crash, a kill or a full disk leaves either the old file or the new one, never half of one (the
temporary file is removed on any error). Free-space checks before a write of known size. The faults of a
write (a full disk, a read-only or unwritable output) as short reasons. File digests."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import IO

from divita.errors import DivitaError

# errno -> the reason a user reads ("<path>: <reason>")
OS_ERROR_REASONS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large (over the file-size limit)",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOENT: "no such file or directory",
    errno.EISDIR: "is a directory",
    errno.ENOTDIR: "not a directory",
    errno.EIO: "input/output error",
    errno.ENAMETOOLONG: "file name too long",
}
# faults of the output: every later write to the same place fails the same way
OUTPUT_FAULTS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM})


def os_error_reason(e: OSError) -> str:
    """The short reason of an OSError: ``"no space left on device"``, ``"permission denied"``, ..."""
    if e.errno in OS_ERROR_REASONS:
        return OS_ERROR_REASONS[e.errno]
    return (e.strerror or str(e) or type(e).__name__).splitlines()[0]


def is_output_fault(e: BaseException) -> bool:
    """True for an OSError that every later write to the same output would meet too (full disk, quota,
    file-size limit, read-only file system, permission denied)."""
    return isinstance(e, OSError) and e.errno in OUTPUT_FAULTS


def os_error_in_chain(e: BaseException) -> OSError | None:
    """``e`` itself when it is an OSError with an errno, else the first such one among its causes and contexts:
    libraries that write through a Python file report its failure as their own error (``torch.save``:
    ``RuntimeError: ... unexpected pos``, raised while the file's ``OSError: [Errno 28]`` is handled)."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno is not None:
            return e
        e = e.__cause__ if e.__cause__ is not None else (None if e.__suppress_context__ else e.__context__)
    return None


def human_bytes(n: float) -> str:
    """``1536`` -> ``"1.5 KiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def check_free_space(directory: str | os.PathLike, needed: int, what: str) -> None:
    """DivitaError ``"<directory>: not enough disk space for <what>: needs X, Y free"`` when the file system
    of ``directory`` (or of its nearest existing parent) has fewer than ``needed`` bytes free."""
    d = Path(directory)
    while not d.exists() and d != d.parent:
        d = d.parent
    try:
        free = shutil.disk_usage(d).free
    except OSError:
        return  # cannot tell: the write itself will say
    if needed > free:
        raise DivitaError(
            directory, f"not enough disk space for {what}: needs {human_bytes(needed)}, {human_bytes(free)} free"
        )


def atomic_write_bytes(path: str | os.PathLike, write: Callable[[IO[bytes]], object]) -> Path:
    """Call ``write(binary file)`` on a temporary sibling of ``path``, then rename it to ``path``.

    On any error (also KeyboardInterrupt) the temporary file is removed and ``path`` is untouched. A failed
    write of the file system (a full disk, a read-only directory, ...) is raised as an OSError with its errno
    and ``filename=path``, also when the library that wrote reported it as an error of its own (``torch.save``).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except Exception as e:
        cause = os_error_in_chain(e)
        if cause is None and isinstance(e, RuntimeError) and _disk_full(path.parent):  # a library's write error
            cause = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        if cause is not None:
            raise OSError(cause.errno, cause.strerror, str(path)) from e
        raise
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, lambda f: f.write(text.encode("utf-8")))


def _disk_full(directory: Path) -> bool:
    try:
        return shutil.disk_usage(directory).free == 0
    except OSError:
        return False


def file_hexdigest(
    path: str | os.PathLike,
    algorithm: str = "md5",
    on_chunk: Callable[[int], object] | None = None,
    chunk_size: int = 1 << 20,
) -> str:
    """Hex digest of a file's bytes, read in chunks; ``on_chunk(bytes read)`` after each (a progress bar)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            h.update(chunk)
            if on_chunk is not None:
                on_chunk(len(chunk))
    return h.hexdigest()
