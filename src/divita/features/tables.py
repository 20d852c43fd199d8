"""Feature tables: the clips of many trailers as rows of one matrix, in memory (:class:`FeatureTable`, what
:func:`divita.features.store_read.load_features` returns) or in the feature cache's uncompressed file
(:class:`FileFeatureTable`, :mod:`divita.features.cache`), read batch by batch as windows of consecutive clips.

Rows are held as float32, or as bfloat16 kept as uint16 bit patterns (:func:`encode_rows`, :func:`decode_rows`);
a table always gives float32.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from divita.errors import DivitaError

FEATURE_DTYPES = ("float32", "bfloat16")  # how a table holds its rows; bfloat16 as uint16 bit patterns
STORAGE = {"float32": np.float32, "bfloat16": np.uint16}


def encode_rows(x: np.ndarray, dtype: str) -> np.ndarray:
    """(n, F) float32 -> the rows as held in ``dtype``: float32 as they are, bfloat16 rounded to nearest even
    and kept as uint16 bit patterns (numpy has no bfloat16)."""
    if dtype == "float32":
        return np.ascontiguousarray(x, dtype=np.float32)
    if dtype != "bfloat16":
        raise ValueError(f"feature dtype must be one of {FEATURE_DTYPES}, got {dtype!r}")
    import torch

    bf16 = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(torch.bfloat16)
    return bf16.view(torch.int16).numpy().view(np.uint16)


def decode_rows(x: np.ndarray, dtype: str) -> np.ndarray:
    """Rows held in ``dtype`` (any shape) -> float32 (a bfloat16 value is its bits in a float32's high half)."""
    if dtype == "float32":
        return x
    bits = x.astype(np.uint32)
    bits <<= 16
    return bits.view(np.float32)


@dataclass
class FeatureTable:
    """All clips of a list of trailers, concatenated.

    features: (total_clips, num_features) rows in ``dtype`` (float32, or bfloat16 held as uint16 bit patterns:
    read them through :meth:`trailer` and :meth:`windows`, which give float32); trailer ``i`` owns rows
    ``offsets[i] : offsets[i] + lengths[i]``, in temporal order.
    """

    mids: list[str]
    features: np.ndarray
    offsets: np.ndarray  # (num_trailers,) int64
    lengths: np.ndarray  # (num_trailers,) int64
    source: str = ""
    dtype: str = "float32"

    @property
    def num_features(self) -> int:
        """F, the features of a clip."""
        return int(self.features.shape[1])

    def __len__(self) -> int:
        return len(self.mids)

    def trailer(self, i: int) -> np.ndarray:
        """(clips, features) float32 of trailer ``i``."""
        o = int(self.offsets[i])
        return decode_rows(self.features[o : o + int(self.lengths[i])], self.dtype)

    def subset(self, indices: Sequence[int]) -> FeatureTable:
        """A table over ``indices`` that shares (does not copy) the feature rows."""
        idx = np.asarray(indices, dtype=np.int64)
        return replace(self, mids=[self.mids[i] for i in idx], offsets=self.offsets[idx], lengths=self.lengths[idx])

    def windows(self, trailer: np.ndarray, starts: np.ndarray, num_clips: int) -> tuple[np.ndarray, np.ndarray]:
        """Windows of ``num_clips`` consecutive clips: trailer (B,) indices, starts (B,) first clips ->
        features (B, num_clips, F) float32, zero past a trailer's end, and valid (B, num_clips) bool, True = a real
        clip."""
        s = np.arange(num_clips)
        lengths = self.lengths[trailer]  # (B,)
        idx = starts[:, None] + s[None, :]  # (B, S)
        valid = idx < lengths[:, None]
        rows = self.offsets[trailer][:, None] + np.minimum(idx, lengths[:, None] - 1)
        x = self.features[rows.reshape(-1)].reshape(len(trailer), num_clips, -1)
        x[~valid] = 0
        return np.ascontiguousarray(decode_rows(x, self.dtype), dtype=np.float32), valid


class RowFile:
    """A feature cache file opened read-only, shared by a table's subsets (closed when the last of them goes). Open
    from the start: a table keeps reading the file it opened even after a newer build replaced it."""

    def __init__(self, path: str | os.PathLike):
        self.path = str(path)
        self.fd = os.open(self.path, os.O_RDONLY)

    def __del__(self):
        fd, self.fd = getattr(self, "fd", -1), -1
        if fd >= 0:
            os.close(fd)


@dataclass
class FileFeatureTable(FeatureTable):
    """A :class:`FeatureTable` whose rows lie in an uncompressed file (the feature cache; ``features`` is a
    read-only memory map of it). Only a batch's rows are ever copied into the process; the file's pages are page
    cache, which the kernel drops and reads again when memory is short.

    ``mapped``: gather a batch from the memory map in one vectorised call, as in memory (for a file that fits in
    the memory available). Else each window is read with one ``pread`` into the batch, which needs no page-table
    entries and reads a window in one request when its pages have been dropped (a file larger than memory)."""

    file: RowFile | None = None
    mapped: bool = True
    store_attrs: dict | None = None  # the store group's attributes when the cache kept them (num_features, extraction)

    @property
    def path(self) -> str:
        """The cache file's path ("" without one)."""
        return self.file.path if self.file is not None else ""

    def windows(self, trailer: np.ndarray, starts: np.ndarray, num_clips: int) -> tuple[np.ndarray, np.ndarray]:
        if self.mapped or self.file is None:
            return super().windows(trailer, starts, num_clips)
        b, f = len(trailer), self.num_features
        row_bytes = f * self.features.dtype.itemsize
        counts = np.clip(self.lengths[trailer] - starts, 0, num_clips)  # (B,) real clips per window
        first = self.offsets[trailer] + starts
        out = np.zeros((b, num_clips, f), dtype=self.features.dtype)
        fd = self.file.fd
        for i in range(b):
            n = int(counts[i])
            if n:
                view = out[i, :n]
                got = os.preadv(fd, [view], int(first[i]) * row_bytes)
                if got != view.nbytes:
                    raise DivitaError(
                        self.file.path,
                        f"feature cache file ends early (read {got} of {view.nbytes} "
                        f"bytes at row {int(first[i])}); delete it to have it rebuilt",
                    )
        valid = np.arange(num_clips)[None, :] < counts[:, None]
        return decode_rows(out, self.dtype), valid
