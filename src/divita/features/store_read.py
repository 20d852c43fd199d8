"""Reading feature stores: one trailer's array, checked (:func:`read_trailer`, every read's errors), many
concurrently (:func:`read_arrays`), or all of a list into one in-memory :class:`FeatureTable`
(:func:`load_features`).

Reads the published Trailers12k stores (zarr format 2) and the stores `divita extract` writes (zarr format 3)
alike. Training never reads zarr per item: :func:`load_features` reads every needed array once, concurrently,
into one contiguous matrix, and :mod:`divita.features.cache` keeps that matrix on disk, uncompressed, as one file
per store that a :class:`~divita.features.tables.FileFeatureTable` reads batch by batch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from divita.errors import DivitaError
from divita.features.store import open_store, store_num_features
from divita.features.store_checks import first_line, os_problem, shape_problem, truncated_blosc_chunk, values_problem
from divita.features.tables import FeatureTable

READ_CONCURRENCY = 32  # arrays a local store read has in flight at once (zarr's asynchronous API)


def read_trailer(store_path: str | os.PathLike, trailer_id: str, group=None) -> np.ndarray:
    """The (clips, features) float32 array of ``trailer_id`` in the store at ``store_path``: every read of a
    trailer's features goes through here. ``group``: the store already opened with :func:`open_store`.

    Raises ``DivitaError("<store>", "trailer <id>: <problem>")`` when the id is missing, its metadata
    (``.zarray``/``zarr.json``) is unreadable, a chunk is truncated or fails to decompress, the array is not
    (clips, num_features) with at least one clip, or it holds NaN/inf.
    """
    spath = str(store_path)
    group = open_store(spath) if group is None else group
    num_features = int(group.attrs["num_features"])

    def damaged(problem: str) -> DivitaError:
        return DivitaError(spath, f"trailer {trailer_id!r}: {problem}")

    try:
        arr = group[trailer_id]
    except KeyError:
        raise DivitaError(spath, f"trailer {trailer_id!r} listed in the labels is missing from the store") from None
    except Exception as e:  # zarr raises JSON, value and its own errors for a damaged .zarray / zarr.json
        meta = ".zarray" if getattr(getattr(group, "metadata", None), "zarr_format", 3) == 2 else "zarr.json"
        why = os_problem(e) if isinstance(e, OSError) else first_line(e)
        raise damaged(f"array metadata ({meta}) unreadable ({why})") from None
    problem = shape_problem(arr, num_features)
    if problem:
        raise damaged(problem)
    if "://" not in spath:
        problem = truncated_blosc_chunk(Path(spath) / trailer_id, arr)
        if problem:
            raise damaged(problem)
    try:
        x = np.asarray(arr[...], dtype=np.float32)
    except MemoryError:
        raise
    except OSError as e:
        raise damaged(f"chunk unreadable ({os_problem(e)})") from None
    except Exception as e:  # numcodecs: RuntimeError "error during blosc decompression", zstd; zarr: a short chunk
        raise damaged(f"damaged chunk ({first_line(e)})") from None
    problem = values_problem(x, arr)
    if problem:
        raise damaged(problem)
    return x


def _read_local_arrays(spath: str, mids: Sequence[str], num_features: int, bar=None) -> list[np.ndarray | None]:
    """The (clips, features) float32 arrays of ``mids`` in the local store at ``spath``, read concurrently through
    zarr's asynchronous API in one event loop (zarr's synchronous API runs every read on its one event-loop
    thread: reading from threads gains little, and each array costs ~1 ms of zarr's own work). An array that
    fails to read or fails a check is None: :func:`read_trailer` reads it again and says what is wrong."""
    import asyncio

    import zarr.api.asynchronous as zarr_async

    async def read_all() -> list[np.ndarray | None]:
        group = await zarr_async.open_group(spath, mode="r")
        limit = asyncio.Semaphore(READ_CONCURRENCY)

        async def one(mid: str) -> np.ndarray | None:
            async with limit:
                try:  # read_trailer's checks; any problem: read again, one by one, for its error
                    arr = await group.getitem(mid)
                    if shape_problem(arr, num_features) or truncated_blosc_chunk(Path(spath) / mid, arr):
                        return None
                    x = np.asarray(await arr.getitem(...), dtype=np.float32)
                except Exception:
                    return None
                finally:
                    if bar is not None:
                        bar.update(1)
            return None if values_problem(x, arr) else x

        return await asyncio.gather(*(one(mid) for mid in mids))

    # in a thread of its own: the caller's thread may already run an event loop (a server's)
    with ThreadPoolExecutor(1, thread_name_prefix="divita-read") as pool:
        return pool.submit(asyncio.run, read_all()).result()


def read_arrays(path: str | os.PathLike, mids: Sequence[str], threads: int = 8, bar=None) -> list[np.ndarray]:
    """The (clips, features) float32 arrays of ``mids`` in the store at ``path``, each checked as
    :func:`read_trailer` checks it (and its DivitaError when one fails). A local store's arrays are read
    concurrently in one event loop (:func:`_read_local_arrays`); a URL's in ``threads`` threads through
    :func:`read_trailer`, which also reads again any local array that failed there. ``bar``: a tqdm bar to advance."""
    group = open_store(path)
    spath = str(path)
    mids = list(mids)
    if "://" not in spath:
        arrays = _read_local_arrays(spath, mids, int(group.attrs["num_features"]), bar)
        return [a if a is not None else read_trailer(spath, mid, group) for mid, a in zip(mids, arrays)]

    def read(mid: str) -> np.ndarray:
        x = read_trailer(spath, mid, group)
        if bar is not None:
            bar.update(1)
        return x

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        return list(pool.map(read, mids))


def load_features(
    path: str | os.PathLike, mids: Sequence[str], threads: int = 8, progress: bool = False
) -> FeatureTable:
    """Read the arrays of ``mids`` from the store at ``path`` into one in-memory :class:`FeatureTable`.

    Raises DivitaError naming the store and the trailer when an id is missing, an array's shape
    disagrees with ``num_features``, it has no clips, or it holds NaN/inf.
    """
    spath = str(path)
    mids = list(mids)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(mids), desc=f"load {Path(spath).name}", unit="trailer", leave=False)
    try:
        arrays = read_arrays(path, mids, threads, bar)
    finally:
        if bar is not None:
            bar.close()
    lengths = np.array([a.shape[0] for a in arrays], dtype=np.int64)
    offsets = np.zeros(len(arrays), dtype=np.int64)
    if len(arrays) > 1:
        offsets[1:] = np.cumsum(lengths)[:-1]
    if arrays:
        features = np.concatenate(arrays, axis=0)
    else:
        features = np.zeros((0, store_num_features(path)), np.float32)
    return FeatureTable(mids, features, offsets, lengths, spath)
