"""The feature cache: each store's trailers as one uncompressed file on local disk, read batch by batch.

Training reads the same rows many times; decompressing zarr chunks for each run costs minutes on the release,
and holding every store in memory as float32 costs ~17 GB for the heaviest Table 6 rows. So each store is
copied once into a cache directory (``--cache-dir``; default ``$DIVITA_CACHE``, else ``DATA_DIR/.divita-cache``)::

    <cache dir>/<store name>-<hash of its path>/
        manifest-float32.json          format, store, dtype, num_features, the store's attributes, fingerprint,
                                       trailer ids and clip counts
        data-float32-<build id>.bin    (total clips, num_features) rows, trailer after trailer, row-major
        manifest-bfloat16.json, data-bfloat16-<build id>.bin   the same in bfloat16 (uint16 bit patterns)
        .lock                          held by the process building a cache of this store

A build reads the store through :func:`divita.features.store_read.read_arrays` (the same checks and errors as the
in-memory path), a slice of trailers at a time, writes the data file under a temporary name and renames it into
place (:func:`divita.fileio.atomic_write_bytes`), then writes the manifest the same way: the manifest is the
commit, so a killed build leaves no manifest naming its file and is never used; the next build removes its
leftovers. Rows are read back by :class:`divita.features.tables.FileFeatureTable`: a batch's gather copies only its
rows into the process, and the file's pages are page cache, which the kernel reclaims (and reads again) when
memory is short. A file that fits in half the memory available (``MemAvailable``, and the cgroup's limit) is
gathered from a memory map, in one vectorised call per batch; a larger one by one ``pread`` per window, which
fetches a dropped window in one request instead of page by page.

A cache is used only while its manifest's fingerprint matches the store: the size and modification time of
every file of the store's group metadata and of each cached trailer's array. A changed, added or removed
array, or new group attributes, rebuild it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from divita.errors import DivitaError

if TYPE_CHECKING:
    from divita.features.tables import FileFeatureTable

CACHE_FORMAT = "divita-feature-cache/1"
CACHE_ENV = "DIVITA_CACHE"  # the cache directory when --cache-dir is not given
CACHE_DIR_NAME = ".divita-cache"  # inside the data directory, when neither is given
CACHE_DTYPES = ("float32", "bfloat16")
NO_CACHE = "none"  # --cache-dir none: read the stores into memory instead
BUILD_CHUNK_BYTES = 64 << 20  # float32 rows read from the store per step of a build
SYNC_BYTES = 256 << 20  # a build flushes its data file to disk every this many bytes (bounded dirty page cache)
ITEMSIZE = {"float32": 4, "bfloat16": 2}
MAP_FRACTION = 0.5  # a cache file up to this share of the memory available is gathered from its memory map


def memory_available() -> int:
    """Bytes of memory this process may fill with page cache: the kernel's ``MemAvailable``, and no more than the
    memory limit of its cgroup (v1 or v2, the smallest along its path); a very large number where neither is known."""
    best = 1 << 62
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    best = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    try:
        entries = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return best
    for entry in entries:
        _, controllers, path = entry.split(":", 2)
        if "memory" in controllers.split(","):
            base, limit_file = Path("/sys/fs/cgroup/memory"), "memory.limit_in_bytes"
        elif controllers == "":
            base, limit_file = Path("/sys/fs/cgroup"), "memory.max"
        else:
            continue
        d = base / path.lstrip("/")
        while True:
            try:
                text = (d / limit_file).read_text().strip()
                if text != "max":
                    best = min(best, int(text))
            except (OSError, ValueError):
                pass
            if d == base or base not in d.parents:
                break
            d = d.parent
    return best


def cache_root(data_dir: str | os.PathLike, cache_dir: str | None) -> Path | None:
    """Where the caches live: ``cache_dir``, else ``$DIVITA_CACHE``, else ``data_dir/.divita-cache``;
    None when it is ``none`` (the stores are then read into memory)."""
    chosen = cache_dir or os.environ.get(CACHE_ENV) or str(Path(data_dir) / CACHE_DIR_NAME)
    if chosen.lower() == NO_CACHE:
        return None
    return Path(chosen).expanduser()


def store_key(store: str | os.PathLike) -> str:
    """A store's identity: its absolute path, or its URL."""
    s = str(store)
    return s if "://" in s else str(Path(s).resolve())


def store_cache_dir(root: str | os.PathLike, store: str | os.PathLike) -> Path:
    """The directory of one store's caches inside ``root``: the store's name and a hash of its path or URL."""
    key = store_key(store)
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", key.rstrip("/").rsplit("/", 1)[-1]) or "store"
    return Path(root) / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


# ------------------------------------------------------------------------------------------------ fingerprint
def _local_files(dir_: str, rel: str) -> Iterator[tuple[str, int, int]]:
    """(relative path, size, mtime ns) of every file below ``dir_``, sorted."""
    with os.scandir(dir_) as it:
        entries = sorted(it, key=lambda e: e.name)
    for e in entries:
        if e.is_dir(follow_symlinks=False):
            yield from _local_files(e.path, f"{rel}/{e.name}")
        else:
            st = e.stat()
            yield f"{rel}/{e.name}", st.st_size, st.st_mtime_ns


def _local_stamps(store: str, mids: Sequence[str]) -> Iterator[tuple[str, int, object]]:
    with os.scandir(store) as it:
        top = sorted((e for e in it if e.is_file()), key=lambda e: e.name)
    for e in top:  # the group's metadata: .zgroup/.zattrs/.zmetadata (format 2) or zarr.json (format 3)
        st = e.stat()
        yield e.name, st.st_size, st.st_mtime_ns
    for mid in mids:
        try:
            yield from _local_files(os.path.join(store, mid), mid)
        except (FileNotFoundError, NotADirectoryError):
            yield mid, -1, "missing"


def _url_stamps(store: str, mids: Sequence[str]) -> Iterator[tuple[str, int, object]]:
    import fsspec

    fs, root = fsspec.core.url_to_fs(store)
    root = root.rstrip("/")
    wanted = set(mids)
    by_mid: dict[str, list[tuple[str, int, object]]] = {}
    top = []
    for path, info in sorted(fs.find(root, detail=True, withdirs=False).items()):
        rel = path[len(root) :].lstrip("/")
        stamp = next(
            (
                str(info[k])
                for k in ("mtime", "LastModified", "last_modified", "ETag", "etag", "created", "md5")
                if info.get(k) is not None
            ),
            "",
        )
        entry = (rel, int(info.get("size") or 0), stamp)
        head = rel.split("/", 1)[0]
        if "/" not in rel:
            top.append(entry)
        elif head in wanted:
            by_mid.setdefault(head, []).append(entry)
    yield from top
    for mid in mids:
        yield from by_mid.get(mid, [(mid, -1, "missing")])


def _fingerprint(store: str | os.PathLike, mids: Sequence[str]) -> tuple[str, int]:
    """(digest, bytes of the arrays' files) of :func:`store_fingerprint`."""
    s = str(store)
    h = hashlib.sha256()
    total = 0
    for rel, size, stamp in _url_stamps(s, mids) if "://" in s else _local_stamps(s, mids):
        h.update(f"{rel}\0{size}\0{stamp}\n".encode())
        total += max(size, 0) if "/" in rel else 0
    return h.hexdigest(), total


def store_fingerprint(store: str | os.PathLike, mids: Sequence[str]) -> str:
    """A digest of the size and modification time of the store's top-level metadata files and of every file of
    the arrays of ``mids`` (a URL: what its filesystem lists). Changes whenever those arrays or attributes do."""
    return _fingerprint(store, mids)[0]


# ------------------------------------------------------------------------------------------------ reading
def _read_manifest(path: Path) -> dict | None:
    try:
        m = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return m if isinstance(m, dict) and m.get("format") == CACHE_FORMAT else None


def _open_if_fresh(dir_: Path, store: str, mids: Sequence[str], dtype: str) -> FileFeatureTable | None:
    """The cache of ``store`` in ``dir_`` over ``mids`` when it holds them all and matches the store, else None."""
    import numpy as np

    from divita.features.tables import STORAGE, FileFeatureTable, RowFile

    m = _read_manifest(dir_ / f"manifest-{dtype}.json")
    if m is None or m.get("dtype") != dtype or m.get("store") != store_key(store):
        return None
    cached = m["mids"]
    index = {mid: i for i, mid in enumerate(cached)}
    if any(mid not in index for mid in mids):
        return None
    if store_fingerprint(store, cached) != m.get("fingerprint"):
        return None
    path = dir_ / m["data"]
    num_features, rows = int(m["num_features"]), int(m["rows"])
    try:
        if path.stat().st_size != rows * num_features * ITEMSIZE[dtype]:
            return None
        if rows:
            features = np.memmap(path, dtype=STORAGE[dtype], mode="r", shape=(rows, num_features))
        else:
            features = np.zeros((0, num_features), dtype=STORAGE[dtype])
    except OSError:  # replaced by a newer build meanwhile
        return None
    all_lengths = np.asarray(m["lengths"], dtype=np.int64)
    all_offsets = np.zeros(len(all_lengths), dtype=np.int64)
    all_offsets[1:] = np.cumsum(all_lengths)[:-1]
    idx = np.array([index[mid] for mid in mids], dtype=np.int64)
    try:
        file = RowFile(path)
    except OSError:
        return None
    mapped = features.nbytes <= MAP_FRACTION * memory_available()
    table = FileFeatureTable(list(mids), features, all_offsets[idx], all_lengths[idx], str(store), dtype, file, mapped)
    table.store_attrs = m.get("store_attrs")  # None in caches built before it was kept
    return table


# ------------------------------------------------------------------------------------------------ building
def _write_error(path: Path, e: OSError) -> DivitaError:
    """A failed write of the cache as one line naming the path (``--cache-dir`` chooses another place)."""
    from divita.fileio import os_error_reason

    return DivitaError(
        e.filename or path,
        f"cannot write the feature cache: {os_error_reason(e)} (--cache-dir "
        f"or {CACHE_ENV} chooses another directory; --cache-dir none reads into "
        "memory)",
    )


@contextmanager
def _locked(dir_: Path) -> Iterator[None]:
    """One builder per store cache directory at a time (processes on this machine, or sharing the filesystem)."""
    import fcntl

    try:
        fd = os.open(dir_ / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise _write_error(dir_ / ".lock", e) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _remove_unreferenced(dir_: Path) -> None:
    """Delete what no manifest names: leftovers of killed builds and replaced data files (under the lock)."""
    keep = {".lock"}
    for dtype in CACHE_DTYPES:
        m = _read_manifest(dir_ / f"manifest-{dtype}.json")
        keep.add(f"manifest-{dtype}.json")
        if m is not None:
            keep.add(str(m.get("data")))
    for p in dir_.iterdir():
        if p.name not in keep and p.is_file():
            p.unlink(missing_ok=True)


def build_cache(
    store: str | os.PathLike,
    mids: Sequence[str],
    dir_: Path,
    dtype: str = "float32",
    progress: bool = False,
    threads: int = 8,
    chunk_bytes: int = BUILD_CHUNK_BYTES,
) -> None:
    """Write the cache of ``mids`` of ``store`` into ``dir_`` (call under :func:`_locked`): the data file under a
    temporary name, renamed into place when complete, then the manifest that names it."""
    from divita.features.store import open_store
    from divita.features.store_read import read_arrays
    from divita.features.tables import encode_rows
    from divita.fileio import atomic_write_bytes, atomic_write_text, check_free_space

    t0 = time.perf_counter()
    mids = list(mids)
    fingerprint, stored_bytes = _fingerprint(store, mids)  # before reading: a store changed meanwhile rebuilds later
    store_attrs = dict(open_store(store).attrs)  # kept in the manifest: a cached run need not open (import) zarr
    num_features = int(store_attrs["num_features"])
    # the store's files, usually compressed, are a lower bound of the float32 rows: a disk short of even that fails now
    check_free_space(dir_, stored_bytes * ITEMSIZE[dtype] // 4, f"the feature cache of {Path(str(store)).name}")
    try:
        _remove_unreferenced(dir_)
    except OSError as e:
        raise _write_error(dir_, e) from None
    name = f"data-{dtype}-{uuid.uuid4().hex[:12]}.bin"
    per_step = max(1, chunk_bytes // (num_features * 4 * 100))  # trailers per step, at ~100 clips a trailer
    lengths: list[int] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(mids), desc=f"cache {Path(str(store)).name} ({dtype})", unit="trailer", leave=False)

    def write(f) -> None:
        unsynced = 0
        for i in range(0, len(mids), per_step):
            try:
                arrays = read_arrays(store, mids[i : i + per_step], threads=threads, bar=bar)
            except OSError as e:  # reading, not writing: name the store
                raise DivitaError(store, f"cannot read the store ({e.strerror or e})") from None
            for x in arrays:  # each trailer's rows as they are: no copy of the slice into one matrix first
                rows = encode_rows(x, dtype)
                f.write(memoryview(rows).cast("B"))
                lengths.append(int(x.shape[0]))
                unsynced += rows.nbytes
            if unsynced >= SYNC_BYTES:  # keep the dirty pages of a large build bounded
                f.flush()
                os.fdatasync(f.fileno())
                unsynced = 0

    data = dir_ / name
    try:
        atomic_write_bytes(data, write)
        manifest = {
            "format": CACHE_FORMAT,
            "store": store_key(store),
            "dtype": dtype,
            "num_features": num_features,
            "store_attrs": store_attrs,
            "trailers": len(mids),
            "rows": int(sum(lengths)),
            "data": name,
            "fingerprint": fingerprint,
            "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "build_seconds": round(time.perf_counter() - t0, 3),
            "mids": mids,
            "lengths": lengths,
        }
        atomic_write_text(dir_ / f"manifest-{dtype}.json", json.dumps(manifest))
        _remove_unreferenced(dir_)  # the data file this one replaces
    except OSError as e:
        current = _read_manifest(dir_ / f"manifest-{dtype}.json")
        if current is None or current.get("data") != name:  # renamed into place, but no manifest names it
            data.unlink(missing_ok=True)
        raise _write_error(data, e) from None
    finally:
        if bar is not None:
            bar.close()


def open_cache(
    store: str | os.PathLike,
    mids: Sequence[str],
    root: str | os.PathLike,
    dtype: str = "float32",
    progress: bool = False,
    threads: int = 8,
) -> tuple[FileFeatureTable, bool]:
    """The cached rows of ``mids`` of ``store`` (a :class:`FileFeatureTable`, in the order of ``mids``), building
    the cache under ``root`` first when it is missing, stale or lacks a trailer. Returns (table, whether it was built).

    Raises DivitaError naming the cache path when it cannot be written (unwritable directory, full disk), and the
    store's own errors (missing trailer, wrong shape, NaN) as :func:`~divita.features.store_read.load_features` does."""
    if dtype not in CACHE_DTYPES:
        raise DivitaError(None, f"cache dtype must be one of {', '.join(CACHE_DTYPES)}, got {dtype!r}")
    mids = list(mids)
    dir_ = store_cache_dir(root, store)
    try:
        dir_.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _write_error(Path(e.filename or dir_), e) from None
    table = _open_if_fresh(dir_, store, mids, dtype)
    if table is not None:
        return table, False
    with _locked(dir_):
        table = _open_if_fresh(dir_, store, mids, dtype)  # another process may have built it while we waited
        if table is not None:
            return table, False
        build_cache(store, mids, dir_, dtype, progress=progress, threads=threads)
    table = _open_if_fresh(dir_, store, mids, dtype)
    if table is None:
        raise DivitaError(dir_, "the feature cache just built does not match its store (is the store being written?)")
    return table, True


__all__ = [
    "CACHE_DIR_NAME",
    "CACHE_DTYPES",
    "CACHE_ENV",
    "CACHE_FORMAT",
    "NO_CACHE",
    "build_cache",
    "cache_root",
    "open_cache",
    "store_cache_dir",
    "store_fingerprint",
    "store_key",
]
