"""File helpers. Atomic writes: a temporary file in the same directory, flushed to disk, then renamed into
place, so a crash or a kill leaves either the old file or the new one, never half of one. File digests."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import IO, Callable


def atomic_write_bytes(path: str | os.PathLike, write: Callable[[IO[bytes]], object]) -> Path:
    """Call ``write(binary file)`` on a temporary sibling of ``path``, then rename it to ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, lambda f: f.write(text.encode("utf-8")))


def file_hexdigest(path: str | os.PathLike, algorithm: str = "md5", on_chunk: Callable[[int], object] | None = None,
                   chunk_size: int = 1 << 20) -> str:
    """Hex digest of a file's bytes, read in chunks; ``on_chunk(bytes read)`` after each (a progress bar)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            h.update(chunk)
            if on_chunk is not None:
                on_chunk(len(chunk))
    return h.hexdigest()
