"""The checks of a trailer's array read from a feature store, each saying what is wrong (or None): its shape
(2-D, ``num_features`` columns, at least one clip), its values (all finite), and its blosc chunk files (a
truncated chunk, which blosc would otherwise decompress into garbage); and the wording of a read's errors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

BLOSC_HEADER_BYTES = 16  # version, versionlz, flags, typesize, nbytes, blocksize, cbytes (uint32 little-endian)
METADATA_FILES = {"zarr.json"}


def shape_problem(arr, num_features: int) -> str | None:
    """What is wrong with a store member's shape for a trailer's (clips, num_features) array, or None."""
    if not hasattr(arr, "shape") or len(arr.shape) != 2:
        return f"expected a 2-D array (clips, features), got {getattr(arr, 'shape', arr)!r}"
    if arr.shape[1] != num_features:
        return f"array has {arr.shape[1]} features but the store says num_features={num_features}"
    if arr.shape[0] == 0:
        return "array has no clips"
    return None


def values_problem(x: np.ndarray, arr) -> str | None:
    """What is wrong with the values ``x`` read from the array ``arr``, or None."""
    if x.shape != tuple(arr.shape):
        return f"read {x.shape} values for an array of shape {tuple(arr.shape)}"
    if not np.isfinite(x).all():
        return "features contain NaN or inf"
    return None


def first_line(e: BaseException) -> str:
    """``Type: the first line of the message`` (200 characters at most) of ``e``, for a one-line error."""
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0][:200]}" if text else type(e).__name__


def os_problem(e: OSError) -> str:
    """Why an OS call failed, in words (:func:`divita.fileio.os_error_reason`)."""
    from divita.fileio import os_error_reason

    return os_error_reason(e)


def truncated_blosc_chunk(array_dir: Path, arr) -> str | None:
    """What is wrong with a blosc chunk file of the array at ``array_dir`` whose size differs from the
    compressed size in its header, or None. (Blosc trusts that header: a truncated chunk decompresses into
    garbage or fails with an opaque "error during blosc decompression".) Arrays of other codecs: None."""
    compressors = getattr(arr, "compressors", ()) or ()
    if len(compressors) != 1 or type(compressors[0]).__name__ not in ("Blosc", "BloscCodec"):
        return None
    if getattr(arr, "shards", None):
        return None
    if not array_dir.is_dir():
        return None
    for f in sorted(array_dir.rglob("*")):
        if f.name in METADATA_FILES or f.name.startswith(".") or not f.is_file():
            continue  # chunk keys never start with a dot
        try:
            with open(f, "rb") as fh:
                head = fh.read(BLOSC_HEADER_BYTES)
                size = os.fstat(fh.fileno()).st_size
        except OSError as e:
            return f"chunk {f.relative_to(array_dir)} unreadable ({os_problem(e)})"
        if len(head) < BLOSC_HEADER_BYTES:
            return f"chunk {f.relative_to(array_dir)} is truncated ({size} bytes, shorter than its header)"
        cbytes = int.from_bytes(head[12:16], "little")
        if cbytes != size:
            return (
                f"chunk {f.relative_to(array_dir)} is truncated ({size} of {cbytes} bytes)"
                if size < cbytes
                else f"chunk {f.relative_to(array_dir)} has {size - cbytes} bytes after its compressed data"
            )
    return None
