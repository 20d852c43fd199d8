"""Feature stores: one zarr group per backbone, one float32 array (clips, features) per trailer id.

Reads the published Trailers12k stores (zarr format 2) and the stores `divita extract` writes (zarr
format 3) alike. Training never reads zarr per item: :func:`load_features` reads every needed array once,
concurrently, into one contiguous matrix (a :class:`FeatureTable`), and :mod:`divita.features.cache` keeps
that matrix on disk, uncompressed, as one file per store that a :class:`FileFeatureTable` reads batch by batch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

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
        raise DivitaError(
            spath, f"store attribute 'num_features' is missing or not a positive integer: {num_features!r}"
        )
    return group


def store_num_features(path: str | os.PathLike) -> int:
    return int(open_store(path).attrs["num_features"])


def _shape_problem(arr, num_features: int) -> str | None:
    """What is wrong with a store member's shape for a trailer's (clips, num_features) array, or None."""
    if not hasattr(arr, "shape") or len(arr.shape) != 2:
        return f"expected a 2-D array (clips, features), got {getattr(arr, 'shape', arr)!r}"
    if arr.shape[1] != num_features:
        return f"array has {arr.shape[1]} features but the store says num_features={num_features}"
    if arr.shape[0] == 0:
        return "array has no clips"
    return None


def _values_problem(x: np.ndarray, arr) -> str | None:
    """What is wrong with the values ``x`` read from the array ``arr``, or None."""
    if x.shape != tuple(arr.shape):
        return f"read {x.shape} values for an array of shape {tuple(arr.shape)}"
    if not np.isfinite(x).all():
        return "features contain NaN or inf"
    return None


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
        why = _os_problem(e) if isinstance(e, OSError) else _first_line(e)
        raise damaged(f"array metadata ({meta}) unreadable ({why})") from None
    problem = _shape_problem(arr, num_features)
    if problem:
        raise damaged(problem)
    if "://" not in spath:
        problem = _truncated_blosc_chunk(Path(spath) / trailer_id, arr)
        if problem:
            raise damaged(problem)
    try:
        x = np.asarray(arr[...], dtype=np.float32)
    except MemoryError:
        raise
    except OSError as e:
        raise damaged(f"chunk unreadable ({_os_problem(e)})") from None
    except Exception as e:  # numcodecs: RuntimeError "error during blosc decompression", zstd; zarr: a short chunk
        raise damaged(f"damaged chunk ({_first_line(e)})") from None
    problem = _values_problem(x, arr)
    if problem:
        raise damaged(problem)
    return x


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0][:200]}" if text else type(e).__name__


def _os_problem(e: OSError) -> str:
    from divita.fileio import os_error_reason

    return os_error_reason(e)


BLOSC_HEADER_BYTES = 16  # version, versionlz, flags, typesize, nbytes, blocksize, cbytes (uint32 little-endian)
METADATA_FILES = {"zarr.json"}


def _truncated_blosc_chunk(array_dir: Path, arr) -> str | None:
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
            return f"chunk {f.relative_to(array_dir)} unreadable ({_os_problem(e)})"
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


READ_CONCURRENCY = 32  # arrays a local store read has in flight at once (zarr's asynchronous API)


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
                    if _shape_problem(arr, num_features) or _truncated_blosc_chunk(Path(spath) / mid, arr):
                        return None
                    x = np.asarray(await arr.getitem(...), dtype=np.float32)
                except Exception:
                    return None
                finally:
                    if bar is not None:
                        bar.update(1)
            return None if _values_problem(x, arr) else x

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


# ------------------------------------------------------------------------------------------------ writing
# Stores written by `divita extract` (zarr format 3). A trailer's array is written complete under a
# temporary directory outside the group, then renamed into the group in one step (os.replace), so a reader
# or a killed run never sees half an array: an id is in a store exactly when its array is complete. Zarr v3
# group metadata lists no children, so adding an array is just adding its directory.

PARTIAL_DIR = ".partial"  # OUT/.partial/<pid>-<random>/<store>/<id>: arrays being written
TRASH_DIR = ".trash"  # OUT/.trash/...: replaced arrays on their way out

# settings that must agree for features to be appended to an existing store
COMPATIBLE_KEYS = ("backbone", "fps", "fpc", "detector", "min_clip_frames")


def store_dir_name(prefix: str, backbone: str, fps: float, fpc: int) -> str:
    """Release-style store name: ``trailers_{prefix}_{backbone}_fps{fps:g}_fpc{fpc}.zarr``."""
    return f"trailers_{prefix}_{backbone}_fps{float(fps):g}_fpc{int(fpc)}.zarr"


def check_array_id(mid: str) -> None:
    """Ids become zarr node names: no path separators, not empty, not reserved."""
    if not mid or "/" in mid or "\\" in mid or mid.startswith("__") or set(mid) <= {"."} or mid.startswith("."):
        raise DivitaError(
            mid or "''",
            "not usable as a trailer id in a feature store (empty, hidden, reserved '__' prefix or a path separator)",
        )


def _settings_fingerprint(extraction: dict) -> dict:
    fp = {k: extraction.get(k) for k in COMPATIBLE_KEYS}
    backbone = extraction.get("backbone") or {}
    if isinstance(backbone, dict):
        fp["backbone"] = {
            k: backbone.get(k)
            for k in (
                "name",
                "weights",
                "weights_sha256",
                "frames_per_clip_2d",
                "clip_frames",
                "input_size",
                "resize_side",
            )
        }
    det = extraction.get("detector") or {}
    if isinstance(det, dict):
        from divita.shots.registry import detector_fingerprint

        fp["detector"] = detector_fingerprint(det)
    return fp


def create_store(path: str | os.PathLike, num_features: int, extraction: dict) -> None:
    """Create the zarr v3 group at ``path`` (attributes ``num_features`` and ``extraction``), or check that an
    existing one was written with the same settings (DivitaError otherwise)."""
    import json

    import zarr

    p = Path(path)
    meta = p / "zarr.json"
    if meta.is_file():
        try:
            attrs = json.loads(meta.read_text()).get("attributes", {})
        except (OSError, ValueError) as e:
            raise DivitaError(p, f"existing store metadata unreadable ({e})") from None
        if attrs.get("num_features") != int(num_features):
            raise DivitaError(
                p,
                f"existing store has num_features={attrs.get('num_features')}, this run makes {num_features}; "
                "use another --out",
            )
        old = attrs.get("extraction") or {}
        if isinstance(old, str):
            try:
                old = json.loads(old)
            except ValueError:
                old = {}
        a, b = _settings_fingerprint(old), _settings_fingerprint(extraction)
        if a != b:
            diff = ", ".join(k for k in a if a[k] != b.get(k))
            raise DivitaError(p, f"existing store was extracted with different settings ({diff}); use another --out")
        return
    p.parent.mkdir(parents=True, exist_ok=True)
    group = zarr.open_group(str(p), mode="a", zarr_format=3)
    group.attrs.update({"num_features": int(num_features), "extraction": extraction})


def committed_ids(path: str | os.PathLike) -> set[str]:
    """Ids whose arrays are complete in the store at ``path`` (a directory with its zarr.json)."""
    p = Path(path)
    if not p.is_dir():
        return set()
    return {d.name for d in p.iterdir() if d.is_dir() and not d.name.startswith(".") and (d / "zarr.json").is_file()}


def _partial_root(out_dir: Path) -> Path:
    import uuid

    root = out_dir / PARTIAL_DIR / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    root.mkdir(parents=True, exist_ok=True)
    return root


def write_array(path: str | os.PathLike, features: np.ndarray, attrs: dict) -> None:
    """Write one (clips, features) float32 array as a standalone zarr v3 array at ``path`` (one chunk)."""
    import zarr

    x = np.ascontiguousarray(features, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"features must be a non-empty 2-D array, got shape {x.shape}")
    arr = zarr.create_array(
        store=str(path), shape=x.shape, dtype="float32", chunks=x.shape, zarr_format=3, attributes=attrs, overwrite=True
    )
    arr[...] = x


def commit_video_arrays(out_dir: str | os.PathLike, mid: str, arrays: dict[str, tuple[np.ndarray, dict]]) -> None:
    """Atomically add (or replace) trailer ``mid`` in several stores.

    ``arrays`` maps a store path (a directory inside ``out_dir``, created with :func:`create_store`) to
    ``(features, attrs)``. Each array is written in full under ``out_dir/.partial`` and then renamed into its
    store; stores are committed one after the other, so after a crash a trailer is complete in some stores
    and absent from the others, never half-written. (One place to change for object stores and workers.)
    A failed write (a full disk, ...) leaves nothing staged behind and raises OSError naming ``<store>/<mid>``.
    """
    import shutil

    check_array_id(mid)
    out = Path(out_dir)
    root = _partial_root(out)
    final = out
    try:
        staged = []
        for store, (features, attrs) in arrays.items():
            final = Path(store) / mid
            tmp = root / Path(store).name / mid
            tmp.parent.mkdir(parents=True, exist_ok=True)
            write_array(tmp, features, attrs)
            staged.append((tmp, final))
        for tmp, final in staged:
            if final.exists():
                trash = out / TRASH_DIR / f"{root.name}-{final.parent.name}-{mid}"
                trash.parent.mkdir(parents=True, exist_ok=True)
                os.replace(final, trash)
                os.replace(tmp, final)
                shutil.rmtree(trash, ignore_errors=True)
            else:
                os.replace(tmp, final)
    except OSError as e:  # a full disk, a read-only output...: named by the array it was writing, not a staged file
        if e.errno is None:
            raise
        raise OSError(e.errno, e.strerror, str(final)) from e
    finally:
        shutil.rmtree(root, ignore_errors=True)
        for d in (out / PARTIAL_DIR, out / TRASH_DIR):
            try:
                d.rmdir()  # only when empty (no other writer)
            except OSError:
                pass


def clean_partial(out_dir: str | os.PathLike) -> int:
    """Remove leftovers of killed runs (partial arrays, trash) whose process is gone; returns how many."""
    import shutil

    out = Path(out_dir)
    removed = 0
    for name in (PARTIAL_DIR, TRASH_DIR):
        base = out / name
        if not base.is_dir():
            continue
        for d in base.iterdir():
            pid = d.name.split("-", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and _pid_alive(int(pid)):
                continue  # another live extract writes here
            shutil.rmtree(d, ignore_errors=True) if d.is_dir() else d.unlink(missing_ok=True)
            removed += 1
        try:
            base.rmdir()
        except OSError:
            pass
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
