"""A run's data: each store read once (through the on-disk feature cache, or into memory), the split's snippet
sets, and the batches of an epoch."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from divita.datasets.labels import read_labels
from divita.errors import DivitaError
from divita.features.cache import cache_root, open_cache, store_key
from divita.features.snippets import SnippetSet
from divita.features.store import open_store
from divita.features.store_read import load_features
from divita.features.tables import FeatureTable, encode_rows
from divita.genres import GENRES
from divita.training.config import TrainConfig, resolve


class FeatureCache:
    """Opens each store once (all labelled trailers) and serves every split and run of this process from it.

    ``table(store, mids, root, dtype)``: with a cache directory ``root``, the store's on-disk cache (built there
    first when missing or stale; see :mod:`divita.features.cache`), which costs no memory per store; with
    ``root=None``, the store read into memory (``dtype`` bfloat16 keeps it as bfloat16). ``builds`` counts the
    caches this process built and ``seconds`` the time spent opening, building or reading stores."""

    def __init__(self, progress: bool = True):
        self.progress = progress
        self._tables: dict[tuple, FeatureTable] = {}
        self.builds = 0
        self.seconds = 0.0

    def table(
        self, store: Path | str, mids: list[str], root: Path | str | None = None, dtype: str = "float32"
    ) -> FeatureTable:
        key = (store_key(store), tuple(mids), None if root is None else str(Path(root).resolve()), dtype)
        if key not in self._tables:
            t = time.perf_counter()
            if root is None:
                table = load_features(store, mids, progress=self.progress)
                if dtype != "float32":
                    table.features, table.dtype = encode_rows(table.features, dtype), dtype
            else:
                table, built = open_cache(store, mids, root, dtype, progress=self.progress)
                self.builds += built
            self._tables[key] = table
            self.seconds += time.perf_counter() - t
        return self._tables[key]

    def keep_only(self, stores: list[Path | str]) -> None:
        """Forget the tables of every other store (a long-lived worker that moves on to other stores)."""
        keep = {store_key(s) for s in stores}
        self._tables = {k: v for k, v in self._tables.items() if k[0] in keep}


def read_split_labels(cfg: TrainConfig):
    """The labels of ``cfg``'s data directory (a DataFrame, checked) and their path."""
    labels_path = resolve(cfg.data_dir, cfg.labels)
    if not Path(cfg.data_dir).is_dir():
        raise DivitaError(
            cfg.data_dir, "data directory not found (`divita download --data-dir DIR` fetches the release)"
        )
    if not labels_path.is_file():
        raise DivitaError(labels_path, "labels file missing (`divita download` fetches mtgc.csv)")
    return read_labels(labels_path), labels_path


def store_table(cfg: TrainConfig, ref: str, mids: list[str], cache: FeatureCache) -> FeatureTable:
    """The rows of ``mids`` in the store ``ref`` of ``cfg``, as ``cfg.cache_dir`` and ``cfg.cache_dtype`` say."""
    path = resolve(cfg.data_dir, ref)
    if "://" not in str(path) and not path.is_dir():
        raise DivitaError(path, "feature store missing (`divita download` fetches the release stores)")
    return cache.table(path, mids, cache_root(cfg.data_dir, cfg.cache_dir), cfg.cache_dtype)


def prepare_stores(cfg: TrainConfig, stores: list[str], cache: FeatureCache) -> None:
    """Open every store of ``stores`` for all labelled trailers of ``cfg``'s data, building the caches that are
    missing or stale (a grid does this once before its runs)."""
    df, _ = read_split_labels(cfg)
    mids = df["mid"].tolist()
    for ref in stores:
        store_table(cfg, ref, mids, cache)


def load_split(cfg: TrainConfig, cache: FeatureCache | None = None) -> tuple[dict[str, SnippetSet], dict[str, dict]]:
    """SnippetSets for 'trn', 'val', 'tst' of ``cfg.split``, and per-modality store info."""
    cache = cache or FeatureCache()
    df, labels_path = read_split_labels(cfg)
    all_mids = df["mid"].tolist()
    info: dict[str, dict] = {}
    tables: dict[str, FeatureTable] = {}
    for modality, ref in cfg.stores.items():
        path = resolve(cfg.data_dir, ref)
        if "://" not in str(path) and not path.is_dir():
            raise DivitaError(path, "feature store missing (`divita download` fetches the release stores)")
        tables[modality] = store_table(cfg, ref, all_mids, cache)
        attrs = getattr(tables[modality], "store_attrs", None)
        if attrs is None:
            attrs = open_store(path).attrs
        info[modality] = {
            "store": ref,
            "num_features": int(attrs["num_features"]),
            "extraction": attrs.get("extraction"),
        }
    sets = {}
    for subset, code in (("trn", 0), ("val", 1), ("tst", 2)):
        idx = np.flatnonzero(df[f"split{cfg.split}"].to_numpy() == code)
        if len(idx) == 0:
            raise DivitaError(labels_path, f"split{cfg.split} has no {subset} trailers (empty split)")
        labels = df[list(GENRES)].to_numpy(np.float32)[idx]
        sets[subset] = SnippetSet([tables[m].subset(idx) for m in cfg.stores], labels, cfg.num_clips)
    return sets, info


def gathered_ahead(batches):
    """``batches`` (an iterator), each next one gathered in a background thread while the current one is used
    (numpy's gathers and the feature cache's reads release the GIL, and fill the moments a step leaves a core
    idle). A consumer that stops early leaves no thread behind."""
    with ThreadPoolExecutor(1, thread_name_prefix="divita-gather") as pool:
        ahead = pool.submit(next, batches, None)
        while (batch := ahead.result()) is not None:
            ahead = pool.submit(next, batches, None)
            yield batch


class EpochBatches:
    """A re-iterable epoch of training batches (a new random window per trailer each epoch); the next
    batch is gathered in a background thread while the current one trains when ``prefetch``."""

    def __init__(self, snippets: SnippetSet, batch_size: int, seed: int, prefetch: bool = True):
        self.snippets, self.batch_size, self.prefetch = snippets, batch_size, prefetch
        self.rng = np.random.default_rng(seed)

    def __iter__(self):
        batches = self.snippets.train_batches(self.batch_size, self.rng)
        yield from gathered_ahead(batches) if self.prefetch else batches

    def __len__(self) -> int:
        return -(-len(self.snippets) // self.batch_size)


class EvalBatches:
    """The validation windows in batches; the same every epoch, so kept after the first epoch when they
    take at most ``cache_bytes`` (the gather is then done once per run instead of once per epoch). The bound is
    small so that a run's memory does not grow with the data: larger validation sets are gathered again each
    epoch (from the page cache, for the feature cache's files), in a background thread when ``prefetch``."""

    def __init__(self, snippets: SnippetSet, batch_size: int, cache_bytes: int = 256 << 20, prefetch: bool = True):
        self.snippets, self.batch_size, self.prefetch = snippets, batch_size, prefetch
        width = sum(t.num_features for t in snippets.tables)
        self.keep = snippets.num_eval_windows() * snippets.num_clips * width * 4 <= cache_bytes
        self._batches: list | None = None

    def __iter__(self):
        if self._batches is not None:
            return iter(self._batches)
        return self._gather()

    def _gather(self):
        batches = self.snippets.eval_batches(self.batch_size)
        kept = [] if self.keep else None
        for batch in gathered_ahead(batches) if self.prefetch else batches:
            if kept is not None:
                kept.append(batch)
            yield batch
        if kept is not None:  # a complete pass only
            self._batches = kept

    def __len__(self) -> int:
        return -(-self.snippets.num_eval_windows() // self.batch_size)
