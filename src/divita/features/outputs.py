"""Where an extraction writes: one interface, :class:`FeatureOutput`, for a directory and for an fsspec URL.

Every driver (local :func:`divita.features.extract.extract`, :func:`divita.distributed.extract.extract_ray`)
writes its files only through these methods, so both write the same bytes and either resumes the other:

- per backbone, a zarr v3 store ``<store>/`` (:meth:`~FeatureOutput.create_store`) holding one float32
  (clips, features) array per video id, committed atomically (:meth:`~FeatureOutput.commit`); an id is in a
  store exactly when its ``<store>/<id>/zarr.json`` exists (:meth:`~FeatureOutput.committed`);
- ``shots/<id>.json`` (:meth:`~FeatureOutput.write_shots`), ``failures.csv`` (video, reason;
  :meth:`~FeatureOutput.failure_log`), ``videos.csv`` (one row per video complete in every store;
  :meth:`~FeatureOutput.write_videos_csv`) and ``mtgc.csv`` (:meth:`~FeatureOutput.write_labels`).

:class:`LocalOutput` is a directory: arrays are staged under ``.partial`` and renamed into their store, text
files are written to a temporary sibling and renamed. :class:`FsspecOutput` is a URL (``s3://bucket/prefix``,
``gs://...``, ``memory://...``): object stores have no atomic rename, so an array is uploaded chunk first and
``zarr.json`` last, and each text file is one PUT (whole or absent). :func:`open_output` picks one.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from divita.errors import DivitaError
from divita.fileio import atomic_write_text

FAILURES_FILE = "failures.csv"
VIDEOS_FILE = "videos.csv"
SHOTS_DIR = "shots"
LABELS_FILE = "mtgc.csv"
VIDEOS_HEADER = ["id", "video", "fps", "num_frames", "shots", "clips", "duration_s"]


def is_url(path: str | os.PathLike) -> bool:
    """True for a URL an fsspec filesystem serves (``file://`` counts as a local path)."""
    s = str(path)
    return "://" in s and not s.startswith("file://")


def local_path(path: str | os.PathLike) -> Path:
    """A local path, with a ``file://`` prefix removed."""
    s = str(path)
    return Path(s[len("file://") :]) if s.startswith("file://") else Path(s)


def csv_text(header: Sequence[str], rows) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


class FeatureOutput(ABC):
    """One output location of an extraction. Subclasses supply storage (stores, arrays, whole text files);
    the files every run writes (shots, failures, videos.csv, mtgc.csv) are built here, once."""

    # -- storage ----------------------------------------------------------------------------------------

    @abstractmethod
    def prepare(self) -> None:
        """Create the location and remove what a killed run left half-written."""

    @abstractmethod
    def store(self, name: str) -> str:
        """Path or URL of the store ``name`` (as ``load_features`` opens it)."""

    @abstractmethod
    def create_store(self, name: str, num_features: int, extraction: dict) -> None:
        """Create the store ``name``, or check an existing one was made with the same settings (DivitaError)."""

    @abstractmethod
    def committed(self, name: str) -> set[str]:
        """Ids whose arrays are complete in the store ``name``."""

    @abstractmethod
    def commit(self, mid: str, arrays: dict[str, tuple[np.ndarray, dict]]) -> None:
        """Add (or replace) video ``mid`` in several stores: store name -> (float32 (clips, F), attrs). An array is
        either complete or absent, whatever happens to the writer."""

    @abstractmethod
    def location(self, rel: str) -> str | Path:
        """Where the file ``rel`` (relative to the output) lives."""

    @abstractmethod
    def read_text(self, rel: str) -> str:
        """The text of the file ``rel``; OSError (FileNotFoundError when absent) if it cannot be read."""

    @abstractmethod
    def write_text(self, rel: str, text: str) -> None:
        """Replace the file ``rel`` as a whole: a reader sees the old text or the new one, never part of it."""

    @abstractmethod
    def remove(self, rel: str) -> None:
        """Remove the file ``rel`` if it exists."""

    # -- the run's files --------------------------------------------------------------------------------

    def complete(self, names: Sequence[str]) -> set[str]:
        """Ids committed in every store of ``names``."""
        return set.intersection(*(self.committed(n) for n in names)) if names else set()

    def write_shots(self, mid: str, record: dict) -> None:
        """``shots/<id>.json``: a video's ``VideoResult.record()`` with its id first."""
        self.write_text(f"{SHOTS_DIR}/{mid}.json", json.dumps({"id": mid, **record}))

    def failure_log(self) -> FailureLog:
        return FailureLog(self)

    def write_videos_csv(self, names: Sequence[str]) -> None:
        """``videos.csv``: one row per video complete in every store of ``names`` (read from shots/<id>.json)."""
        self.write_videos(self.complete(names))

    def write_videos(self, complete: set[str]) -> None:
        """``videos.csv`` for the ids ``complete`` (those without a readable shots/<id>.json are left out)."""
        rows = []
        for mid in sorted(complete):
            try:
                r = json.loads(self.read_text(f"{SHOTS_DIR}/{mid}.json"))
            except (OSError, ValueError):
                continue
            rows.append(
                [
                    mid,
                    r.get("video", ""),
                    r.get("fps"),
                    r.get("num_frames"),
                    len(r.get("shots", [])),
                    len(r.get("clips", [])),
                    r.get("duration", ""),
                ]
            )
        self.write_text(VIDEOS_FILE, csv_text(VIDEOS_HEADER, rows))

    def write_labels(
        self, labels: str | os.PathLike, names: Sequence[str], seed: int = 0, log: Callable[[str], None] | None = None
    ) -> str:
        """``mtgc.csv`` from a labels CSV, keeping the trailers complete in every store of ``names``
        (:func:`labels_table`); returns where it was written."""
        self.write_text(LABELS_FILE, labels_table(labels, self.complete(names), seed=seed, log=log))
        return str(self.location(LABELS_FILE))


class LocalOutput(FeatureOutput):
    """An output directory on a disk the driver sees (local, or a shared filesystem), written with
    :mod:`divita.features.store`'s atomic commits and :func:`divita.fileio.atomic_write_text`."""

    def __init__(self, out: str | os.PathLike):
        self.out = local_path(out)

    def __str__(self) -> str:
        return str(self.out)

    def prepare(self) -> None:
        from divita.features.store import clean_partial

        self.out.mkdir(parents=True, exist_ok=True)
        clean_partial(self.out)
        (self.out / SHOTS_DIR).mkdir(exist_ok=True)

    def store(self, name: str) -> str:
        return str(self.out / name)

    def create_store(self, name: str, num_features: int, extraction: dict) -> None:
        from divita.features.store import create_store

        create_store(self.out / name, num_features, extraction)

    def committed(self, name: str) -> set[str]:
        from divita.features.store import committed_ids

        return committed_ids(self.out / name)

    def commit(self, mid: str, arrays: dict[str, tuple[np.ndarray, dict]]) -> None:
        from divita.features.store import commit_video_arrays

        commit_video_arrays(self.out, mid, {self.store(name): v for name, v in arrays.items()})

    def location(self, rel: str) -> Path:
        return self.out / rel

    def read_text(self, rel: str) -> str:
        return (self.out / rel).read_bytes().decode("utf-8")

    def write_text(self, rel: str, text: str) -> None:
        atomic_write_text(self.out / rel, text)

    def remove(self, rel: str) -> None:
        (self.out / rel).unlink(missing_ok=True)


class FsspecOutput(FeatureOutput):
    """An output "directory" at a URL: the same files and layout as :class:`LocalOutput`, written through fsspec.
    An array is uploaded chunk first and ``zarr.json`` last: the id counts as committed (here, for
    :func:`divita.features.store.load_features` and for zarr) exactly when its ``zarr.json`` exists."""

    def __init__(self, url: str, storage_options: dict | None = None):
        from fsspec.core import url_to_fs

        self.url = str(url).rstrip("/")
        self.storage_options = dict(storage_options or {})
        try:
            self.fs, self.root = url_to_fs(self.url, **self.storage_options)
        except (ImportError, ValueError) as e:
            raise DivitaError(self.url, f"no filesystem for this URL ({e})") from None
        self.root = self.root.rstrip("/")

    def __str__(self) -> str:
        return self.url

    def _path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def prepare(self) -> None:
        self.fs.makedirs(self.root, exist_ok=True)

    def store(self, name: str) -> str:
        return f"{self.url}/{name}"

    def create_store(self, name: str, num_features: int, extraction: dict) -> None:
        import zarr

        from divita.features.store import _settings_fingerprint, settings_difference

        meta = self._path(name, "zarr.json")
        if self.fs.exists(meta):
            where = self.store(name)
            try:
                attrs = json.loads(self.fs.cat_file(meta)).get("attributes", {})
            except (OSError, ValueError) as e:
                raise DivitaError(where, f"existing store metadata unreadable ({e})") from None
            if attrs.get("num_features") != int(num_features):
                raise DivitaError(
                    where,
                    f"existing store has num_features={attrs.get('num_features')}, "
                    f"this run makes {num_features}; use another --out",
                )
            a, b = _settings_fingerprint(attrs.get("extraction") or {}), _settings_fingerprint(extraction)
            if a != b:
                diff = settings_difference(a, b)
                raise DivitaError(
                    where, f"existing store was extracted with different settings ({diff}); use another --out"
                )
            return
        group = zarr.open_group(self.store(name), mode="a", zarr_format=3, storage_options=self.storage_options or None)
        group.attrs.update({"num_features": int(num_features), "extraction": extraction})

    def committed(self, name: str) -> set[str]:
        base = self._path(name)
        try:
            found = self.fs.glob(base + "/*/zarr.json")
        except FileNotFoundError:
            return set()
        ids = {str(p).rstrip("/").split("/")[-2] for p in found}
        return {i for i in ids if not i.startswith(".")}

    def commit(self, mid: str, arrays: dict[str, tuple[np.ndarray, dict]]) -> None:
        from divita.features.store import check_array_id, write_array

        check_array_id(mid)
        for name, (features, attrs) in arrays.items():
            with tempfile.TemporaryDirectory(prefix="divita-commit-") as tmp:
                staged = Path(tmp) / mid
                write_array(staged, features, attrs)  # the local path's array, byte for byte
                files = {
                    f.relative_to(staged).as_posix(): f.read_bytes() for f in sorted(staged.rglob("*")) if f.is_file()
                }
            array_dir = self._path(name, mid)
            if self.fs.exists(array_dir + "/zarr.json"):
                self.fs.rm_file(array_dir + "/zarr.json")  # uncommitted from here on
            if self.fs.exists(array_dir):
                self.fs.rm(array_dir, recursive=True)
            meta = files.pop("zarr.json")
            if files:
                self.fs.pipe({f"{array_dir}/{k}": v for k, v in files.items()})
            self.fs.pipe_file(array_dir + "/zarr.json", meta)  # the completion marker

    def location(self, rel: str) -> str:
        return f"{self.url}/{rel}"

    def read_text(self, rel: str) -> str:
        return self.fs.cat_file(self._path(rel)).decode()

    def write_text(self, rel: str, text: str) -> None:
        self.fs.pipe_file(self._path(rel), text.encode())  # one PUT: whole or absent on object stores

    def remove(self, rel: str) -> None:
        if self.fs.exists(self._path(rel)):
            self.fs.rm_file(self._path(rel))


def open_output(out: str | os.PathLike | FeatureOutput, storage_options: dict | None = None) -> FeatureOutput:
    """:class:`FsspecOutput` for URLs (other than file://), else :class:`LocalOutput`; an output passes through."""
    if isinstance(out, FeatureOutput):
        return out
    return FsspecOutput(str(out), storage_options) if is_url(out) else LocalOutput(out)


# ------------------------------------------------------------------------------------------ failures.csv


class FailureLog:
    """``failures.csv`` (video, reason) of an output, rewritten as a whole on every change and removed when empty.

    ``output``: a :class:`FeatureOutput`, or an output directory.
    """

    def __init__(self, output: FeatureOutput | str | os.PathLike):
        self.output = output if isinstance(output, FeatureOutput) else LocalOutput(output)
        self.path = self.output.location(FAILURES_FILE)
        self.rows: dict[str, str] = {}
        try:
            text = self.output.read_text(FAILURES_FILE)
        except FileNotFoundError:
            return
        for row in csv.DictReader(io.StringIO(text)):
            if row.get("video"):
                self.rows[row["video"]] = row.get("reason", "")

    def _save(self) -> None:
        if not self.rows:
            self.output.remove(FAILURES_FILE)
            return
        self.output.write_text(FAILURES_FILE, csv_text(["video", "reason"], self.rows.items()))

    def fail(self, video: str, reason: str) -> None:
        self.rows[video] = reason
        self._save()

    def clear(self, video: str) -> None:
        if self.rows.pop(video, None) is not None:
            self._save()


def write_videos_csv(out: str | os.PathLike, stores: dict[str, str]) -> None:
    """``OUT/videos.csv`` for the videos complete in every store at ``stores`` (backbone -> store path)."""
    from divita.features.store import committed_ids

    LocalOutput(out).write_videos(set.intersection(*(committed_ids(p) for p in stores.values())) if stores else set())


# ------------------------------------------------------------------------------------------ mtgc.csv


def make_splits(labels: np.ndarray, seed: int = 0, fractions=(0.7, 0.15, 0.15), num_splits: int = 3) -> np.ndarray:
    """(N, num_splits) subset codes (0 train, 1 validation, 2 test): random, stratified on each trailer's
    rarest genre (trailers sorted by it, then dealt in blocks of 20 as 14/3/3)."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    prevalence = labels.sum(0) + 1e-9
    rarest = np.where(labels.any(1), np.argmin(np.where(labels > 0, prevalence[None, :], np.inf), axis=1), -1)
    block = np.array([0] * round(20 * fractions[0]) + [1] * round(20 * fractions[1]) + [2] * round(20 * fractions[2]))
    out = np.zeros((n, num_splits), np.int64)
    for s in range(num_splits):
        order = rng.permutation(n)
        order = order[np.argsort(rarest[order], kind="stable")]
        codes = np.concatenate([rng.permutation(block) for _ in range(-(-n // len(block)))])[:n]
        out[order, s] = codes
        # tiny sets: make sure every subset is non-empty when possible
        for code in (1, 2, 0):
            if n >= 3 and not (out[:, s] == code).any():
                counts = np.bincount(out[:, s], minlength=3)
                donor = int(np.argmax(counts))
                i = rng.choice(np.flatnonzero(out[:, s] == donor))
                out[i, s] = code
    return out


def labels_table(
    labels_csv: str | os.PathLike, complete: set[str], seed: int = 0, log: Callable[[str], None] | None = None
) -> str:
    """The text of ``mtgc.csv`` in the release layout from a labels CSV (mid + the 10 genre columns, split0..2
    optional), keeping the trailers in ``complete``; splits are generated (:func:`make_splits`) when the CSV has
    none."""
    import pandas as pd

    from divita.datasets.labels import LABEL_COLUMNS, SPLIT_COLUMNS, read_labels_csv
    from divita.genres import GENRES

    log = log or (lambda s: print(s, file=sys.stderr))
    src = Path(labels_csv)
    df = read_labels_csv(src, "labels file not found")
    missing = [c for c in ("mid", *GENRES) if c not in df.columns]
    if missing:
        raise DivitaError(
            src, f"missing column(s) {', '.join(missing)} (needs mid and the 10 genre columns: {', '.join(GENRES)})"
        )
    has_splits = [c in df.columns for c in SPLIT_COLUMNS]
    if any(has_splits) and not all(has_splits):
        raise DivitaError(src, "has some but not all of split0, split1, split2")
    df["mid"] = df["mid"].astype(str).str.strip()
    if df["mid"].duplicated().any():
        raise DivitaError(src, f"duplicate mid {df['mid'][df['mid'].duplicated()].iloc[0]!r}")
    for g in GENRES:
        vals = pd.to_numeric(df[g], errors="coerce")
        if vals.isna().any() or not vals.isin([0, 1]).all():
            raise DivitaError(src, f"genre column {g!r} must hold 0/1")
        df[g] = vals.astype(np.int64)
    keep = df["mid"].isin(complete)
    dropped = df.loc[~keep, "mid"].tolist()
    if dropped:
        log(
            f"divita extract: {len(dropped)} labelled trailer(s) have no features (failed or not given) and are left "
            "out of mtgc.csv: " + ", ".join(dropped[:10]) + (" ..." if len(dropped) > 10 else "")
        )
    df = df.loc[keep].reset_index(drop=True)
    if len(df) == 0:
        raise DivitaError(src, "no labelled trailer has features in the output; mtgc.csv not written")
    if not all(has_splits):
        splits = make_splits(df[list(GENRES)].to_numpy(), seed=seed)
        for i, c in enumerate(SPLIT_COLUMNS):
            df[c] = splits[:, i]
    return df[list(LABEL_COLUMNS)].to_csv(index=False)


def write_labels(
    labels_csv: str | os.PathLike,
    out: str | os.PathLike,
    stores: dict[str, str],
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> Path:
    """``OUT/mtgc.csv`` (:func:`labels_table`) keeping the trailers present in every store at ``stores``
    (backbone -> store path); returns its path."""
    from divita.features.store import committed_ids

    complete = set.intersection(*(committed_ids(p) for p in stores.values()))
    path = local_path(out) / LABELS_FILE
    atomic_write_text(path, labels_table(labels_csv, complete, seed=seed, log=log))
    return path


__all__ = [
    "FAILURES_FILE",
    "FailureLog",
    "FeatureOutput",
    "FsspecOutput",
    "LABELS_FILE",
    "LocalOutput",
    "SHOTS_DIR",
    "VIDEOS_FILE",
    "is_url",
    "labels_table",
    "local_path",
    "make_splits",
    "open_output",
    "write_labels",
    "write_videos_csv",
]
