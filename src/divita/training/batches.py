"""A run's data: each store read once into memory, the split's snippet sets, and the batches of an epoch."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from divita.datasets.labels import read_labels
from divita.errors import DivitaError
from divita.features.snippets import SnippetSet
from divita.features.store import FeatureTable, load_features, open_store
from divita.genres import GENRES
from divita.training.config import TrainConfig, resolve


class FeatureCache:
    """Loads each store once (all labelled trailers) and serves every split and run from memory."""

    def __init__(self, progress: bool = True):
        self.progress = progress
        self._tables: dict[tuple[str, tuple[str, ...]], FeatureTable] = {}

    def table(self, store: Path | str, mids: list[str]) -> FeatureTable:
        key = (str(Path(store).resolve()) if "://" not in str(store) else str(store), tuple(mids))
        if key not in self._tables:
            self._tables[key] = load_features(store, mids, progress=self.progress)
        return self._tables[key]


def load_split(cfg: TrainConfig, cache: FeatureCache | None = None) -> tuple[dict[str, SnippetSet], dict[str, dict]]:
    """SnippetSets for 'trn', 'val', 'tst' of ``cfg.split``, and per-modality store info."""
    cache = cache or FeatureCache()
    labels_path = resolve(cfg.data_dir, cfg.labels)
    if not Path(cfg.data_dir).is_dir():
        raise DivitaError(cfg.data_dir, "data directory not found (`divita download --data-dir DIR` fetches the release)")
    if not labels_path.is_file():
        raise DivitaError(labels_path, "labels file missing (`divita download` fetches mtgc.csv)")
    df = read_labels(labels_path)
    all_mids = df["mid"].tolist()
    info: dict[str, dict] = {}
    tables: dict[str, FeatureTable] = {}
    for modality, ref in cfg.stores.items():
        path = resolve(cfg.data_dir, ref)
        if "://" not in str(path) and not path.is_dir():
            raise DivitaError(path, "feature store missing (`divita download` fetches the release stores)")
        group = open_store(path)
        tables[modality] = cache.table(path, all_mids)
        info[modality] = {
            "store": ref,
            "num_features": int(group.attrs["num_features"]),
            "extraction": group.attrs.get("extraction"),
        }
    sets = {}
    for subset, code in (("trn", 0), ("val", 1), ("tst", 2)):
        idx = np.flatnonzero(df[f"split{cfg.split}"].to_numpy() == code)
        if len(idx) == 0:
            raise DivitaError(labels_path, f"split{cfg.split} has no {subset} trailers (empty split)")
        labels = df[list(GENRES)].to_numpy(np.float32)[idx]
        sets[subset] = SnippetSet([tables[m].subset(idx) for m in cfg.stores], labels, cfg.num_clips)
    return sets, info


class EpochBatches:
    """A re-iterable epoch of training batches (a new random window per trailer each epoch); the next
    batch is gathered in a background thread while the current one trains when ``prefetch`` (numpy's
    gather releases the GIL, and it fills the moments a step leaves a core idle)."""

    def __init__(self, snippets: SnippetSet, batch_size: int, seed: int, prefetch: bool = True):
        self.snippets, self.batch_size, self.prefetch = snippets, batch_size, prefetch
        self.rng = np.random.default_rng(seed)

    def __iter__(self):
        batches = self.snippets.train_batches(self.batch_size, self.rng)
        if not self.prefetch:
            yield from batches
            return
        with ThreadPoolExecutor(1, thread_name_prefix="divita-gather") as pool:
            ahead = pool.submit(next, batches, None)
            while (batch := ahead.result()) is not None:
                ahead = pool.submit(next, batches, None)
                yield batch

    def __len__(self) -> int:
        return -(-len(self.snippets) // self.batch_size)


class EvalBatches:
    """The validation windows in batches; the same every epoch, so kept after the first epoch when they
    take at most ``cache_bytes`` (the gather is then done once per run instead of once per epoch)."""

    def __init__(self, snippets: SnippetSet, batch_size: int, cache_bytes: int = 1 << 30):
        self.snippets, self.batch_size = snippets, batch_size
        width = sum(t.features.shape[1] for t in snippets.tables)
        self.keep = snippets.num_eval_windows() * snippets.num_clips * width * 4 <= cache_bytes
        self._batches: list | None = None

    def __iter__(self):
        if self._batches is None and self.keep:
            self._batches = list(self.snippets.eval_batches(self.batch_size))
        return iter(self._batches) if self._batches is not None else self.snippets.eval_batches(self.batch_size)

    def __len__(self) -> int:
        return -(-self.snippets.num_eval_windows() // self.batch_size)
