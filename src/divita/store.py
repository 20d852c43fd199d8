"""Feature stores: one zarr group per backbone, one float32 array (clips, features) per trailer id.

Reads the published Trailers12k stores (zarr format 2) and the stores `divita extract` writes (zarr
format 3) alike. Training never reads zarr per item: :func:`load_features` reads every needed array once,
in parallel, into one contiguous matrix (a :class:`FeatureTable`).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from divita.errors import DivitaError


@dataclass
class FeatureTable:
    """All clips of a list of trailers, concatenated.

    features: (total_clips, num_features) float32; trailer ``i`` owns rows
    ``offsets[i] : offsets[i] + lengths[i]``, in temporal order.
    """

    mids: list[str]
    features: np.ndarray
    offsets: np.ndarray  # (num_trailers,) int64
    lengths: np.ndarray  # (num_trailers,) int64
    source: str = ""

    @property
    def num_features(self) -> int:
        return int(self.features.shape[1])

    def __len__(self) -> int:
        return len(self.mids)

    def trailer(self, i: int) -> np.ndarray:
        """(clips, features) of trailer ``i``."""
        o = int(self.offsets[i])
        return self.features[o : o + int(self.lengths[i])]

    def subset(self, indices: Sequence[int]) -> "FeatureTable":
        """A table over ``indices`` that shares (does not copy) the feature matrix."""
        idx = np.asarray(indices, dtype=np.int64)
        return FeatureTable([self.mids[i] for i in idx], self.features, self.offsets[idx], self.lengths[idx], self.source)


def open_store(path: str | os.PathLike):
    """Open a feature store read-only; checks it is a zarr group with an integer ``num_features``."""
    import zarr

    spath = str(path)
    is_url = "://" in spath
    if not is_url and not Path(spath).is_dir():
        raise DivitaError(spath, "feature store not found (`divita download` fetches the release stores)")
    try:
        group = zarr.open_group(spath, mode="r")
    except Exception as e:  # zarr raises several types for "not a group"
        raise DivitaError(spath, f"not a readable zarr group ({type(e).__name__}: {e})") from None
    num_features = group.attrs.get("num_features")
    if not isinstance(num_features, int) or num_features <= 0:
        raise DivitaError(spath, f"store attribute 'num_features' is missing or not a positive integer: {num_features!r}")
    return group


def store_num_features(path: str | os.PathLike) -> int:
    return int(open_store(path).attrs["num_features"])


def load_features(path: str | os.PathLike, mids: Sequence[str], threads: int = 8, progress: bool = False) -> FeatureTable:
    """Read the arrays of ``mids`` from the store at ``path`` into one in-memory :class:`FeatureTable`.

    Raises DivitaError naming the store and the trailer when an id is missing, an array's shape
    disagrees with ``num_features``, it has no clips, or it holds NaN/inf.
    """
    group = open_store(path)
    spath = str(path)
    num_features = int(group.attrs["num_features"])
    mids = list(mids)

    def read(mid: str) -> np.ndarray:
        try:
            arr = group[mid]
        except KeyError:
            raise DivitaError(spath, f"trailer {mid!r} listed in the labels is missing from the store") from None
        if not hasattr(arr, "shape") or len(arr.shape) != 2:
            raise DivitaError(spath, f"trailer {mid!r}: expected a 2-D array (clips, features), got {getattr(arr, 'shape', arr)!r}")
        if arr.shape[1] != num_features:
            raise DivitaError(spath, f"trailer {mid!r}: array has {arr.shape[1]} features but the store says num_features={num_features}")
        if arr.shape[0] == 0:
            raise DivitaError(spath, f"trailer {mid!r}: array has no clips")
        x = np.asarray(arr[...], dtype=np.float32)
        if not np.isfinite(x).all():
            raise DivitaError(spath, f"trailer {mid!r}: features contain NaN or inf")
        return x

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        arrays = pool.map(read, mids)
        if progress:
            from tqdm import tqdm

            arrays = tqdm(arrays, total=len(mids), desc=f"load {Path(spath).name}", unit="trailer", leave=False)
        arrays = list(arrays)

    lengths = np.array([a.shape[0] for a in arrays], dtype=np.int64)
    offsets = np.zeros(len(arrays), dtype=np.int64)
    if len(arrays) > 1:
        offsets[1:] = np.cumsum(lengths)[:-1]
    features = np.concatenate(arrays, axis=0) if arrays else np.zeros((0, num_features), np.float32)
    return FeatureTable(mids, features, offsets, lengths, spath)
