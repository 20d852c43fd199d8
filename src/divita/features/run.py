"""The books of one extraction run, shared by the local and the Ray drivers (:class:`ExtractionRun`): the run's
stores, ``failures.csv``, each finished video's commit, and ``videos.csv`` / ``mtgc.csv`` at the end, all written
through one :class:`~divita.features.outputs.FeatureOutput`; :class:`ExtractSummary` is what a driver returns."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from divita.errors import DivitaError
from divita.features.engine import VideoResult
from divita.features.outputs import FailureLog, FeatureOutput
from divita.features.plan import ExtractionSettings


@dataclass
class ExtractSummary:
    out_dir: str
    stores: dict[str, str]  # backbone -> store path
    done: list[str] = field(default_factory=list)  # ids extracted in this run
    skipped: list[str] = field(default_factory=list)  # ids already complete
    failed: dict[str, str] = field(default_factory=dict)  # video path -> reason
    frames: int = 0
    seconds: float = 0.0
    labels: str | None = None

    @property
    def ok(self) -> bool:
        return not self.failed


def video_ids(videos: Sequence[Path]) -> tuple[list[tuple[str, Path]], dict[str, str]]:
    """(id, path) per video (id = file stem), and failures for ids already taken by an earlier input."""
    seen: dict[str, Path] = {}
    ok, dup = [], {}
    for p in videos:
        mid = p.stem
        if mid in seen:
            dup[str(p)] = f"duplicate video id {mid!r} (same file stem as {seen[mid]}); rename one of them"
            continue
        seen[mid] = p
        ok.append((mid, p))
    return ok, dup


class ExtractionRun:
    """What the local and the Ray drivers share: the run's stores, ``failures.csv``, each finished video's commit,
    and ``videos.csv`` / ``mtgc.csv`` at the end, all written through one :class:`FeatureOutput`. A driver calls
    :meth:`create_stores`, then :meth:`pending`, then :meth:`commit` or :meth:`fail` per video, then :meth:`finish`."""

    def __init__(self, settings: ExtractionSettings, output: FeatureOutput, log: Callable[[str], None]):
        self.settings, self.output, self.log = settings, output, log
        self.store_names: dict[str, str] = {}  # backbone -> store name inside the output
        self.summary = ExtractSummary(str(output), {})
        self.failures: FailureLog | None = None
        self.total = 0  # videos with a usable id
        self.stopped_by: OSError | None = None  # the fault of the output that ended the batch

    def create_stores(self, encoders: dict[str, dict], detector_params: dict) -> None:
        """Create (or check) one store per backbone; ``encoders``: backbone -> :func:`describe_encoder`."""
        for name in self.settings.names:
            d = encoders[name]
            store = self.settings.store_name(d["store_prefix"], name)
            self.output.create_store(store, d["num_features"], self.settings.extraction(d["settings"], detector_params))
            self.store_names[name] = store
        self.summary.stores = {n: self.output.store(s) for n, s in self.store_names.items()}

    def pending(self, videos: Sequence[Path]) -> list[tuple[str, Path, list[str]]]:
        """(id, path, backbones whose store lacks it) per video left to extract, in input order. Records duplicate
        ids as failures, and videos already in every store as skipped (clearing their old failure)."""
        ids, dups = video_ids(videos)
        self.total = len(ids)
        self.failures = self.output.failure_log()
        for v, reason in dups.items():
            self.failures.fail(v, reason)
            self.summary.failed[v] = reason
        have = {n: self.output.committed(s) for n, s in self.store_names.items()}
        jobs = []
        for mid, path in ids:
            todo = [n for n in self.settings.names if mid not in have[n]]
            if todo:
                jobs.append((mid, path, todo))
            else:
                self.summary.skipped.append(mid)
                self.failures.clear(str(path))
        return jobs

    def fail(self, path: str | os.PathLike, reason: str) -> None:
        """Record that the video at ``path`` could not be used."""
        self.summary.failed[str(path)] = reason
        self.log(f"divita extract: {path}: {reason}")
        try:
            self.failures.fail(str(path), reason)
        except OSError as e:
            raise self.stopped(e) from e

    def commit(self, mid: str, result: VideoResult, names: Sequence[str]) -> None:
        """Write ``shots/<id>.json``, then the arrays of backbones ``names`` (each atomically). A full disk or
        an unwritable output ends the batch: DivitaError saying how many videos were committed."""
        record = result.record()
        try:
            self.output.write_shots(mid, record)
            attrs = self.settings.array_attrs(record, result.path)
            self.output.commit(mid, {self.store_names[n]: (result.features[n], attrs) for n in names})
            self.summary.done.append(mid)
            self.summary.frames += result.num_frames
            self.failures.clear(result.path)
        except OSError as e:
            raise self.stopped(e) from e

    def stopped(self, e: OSError) -> Exception:
        """The error that ends the batch when ``e`` is a fault of the output (a full disk, a read-only or
        unwritable directory: every later video would fail the same way), else ``e`` itself."""
        from divita.fileio import is_output_fault, os_error_reason

        if not is_output_fault(e):
            return e
        self.stopped_by = e
        done, complete = len(self.summary.done), len(self.summary.done) + len(self.summary.skipped)
        return DivitaError(
            e.filename or str(self.output),
            f"{os_error_reason(e)}; extraction stopped with {done} video(s) committed in this run, "
            f"{complete} of {self.total} complete (a rerun with room finishes the job)",
        )

    def finish(self) -> None:
        """``videos.csv`` for the videos now complete in every store (also after an interrupted run; after a
        full disk stopped the batch, a failure to write it is left to the rerun)."""
        try:
            self.output.write_videos_csv(list(self.store_names.values()))
        except OSError:
            if self.stopped_by is None:
                raise

    def write_labels(self, labels: str | os.PathLike, seed: int) -> None:
        self.summary.labels = self.output.write_labels(labels, list(self.store_names.values()), seed, self.log)


__all__ = ["ExtractSummary", "ExtractionRun", "video_ids"]
