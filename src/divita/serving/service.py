"""What `divita serve` runs on: its configuration and the :class:`Service` (job table, workers, what the
checkpoint tells about itself), opened, started and closed by the app's lifespan.

    service = Service.open(ServeConfig(checkpoint="run/best.ckpt", data_dir="serve-data"))
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from divita.errors import DivitaError
from divita.serving.jobs import MAX_ATTEMPTS, JobStore
from divita.serving.metrics import log_job
from divita.serving.runners import CALIBRATION_SECONDS
from divita.serving.worker import WorkerPool
from divita.video.limits import VideoLimits

log = logging.getLogger("divita.serve")
DEFAULT_LIMITS = VideoLimits(max_duration=15 * 60.0, max_pixels=3840 * 2160, pixels_label="3840x2160")
JOB_TIME_FACTOR = 10.0  # a job may take this many times the time calibrated at start for its duration
MIN_JOB_SECONDS = 30.0  # ... and never less than this


@dataclass
class ServeConfig:
    """What `divita serve` was started with (see docs/serving.md for each option)."""

    checkpoint: str
    data_dir: str = "divita-serve"
    workers: int = 1
    max_upload_mb: float = 1024
    max_queue: int = 100
    token: str | None = None
    device: str = "cpu"
    runtime: str = "torch"  # what runs the networks (divita.backbones.runtime)
    weights: dict[str, str] = field(default_factory=dict)
    timeline: bool = True  # draw a done job's timeline picture when it is asked for
    limits: VideoLimits | None = field(default_factory=lambda: DEFAULT_LIMITS)
    max_job_seconds: float | None = None  # None: JOB_TIME_FACTOR x the time calibrated at start (process workers)
    isolation: str = "process"  # "process", "thread" (in the server's process) or "ray"
    worker_memory_mb: float | None = None
    worker_threads: int | None = None  # torch threads per worker process (None: torch's default)
    keep_uploads_s: float | None = 24 * 3600.0  # None: kept until deleted
    max_data_mb: float | None = None
    sweep_s: float = 60.0  # how often expired uploads are looked for
    ray_address: str | None = None
    cpus_per_worker: float = 1.0

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def max_data_bytes(self) -> int | None:
        return None if self.max_data_mb is None else int(self.max_data_mb * 1024 * 1024)


class Service:
    """The job table, the workers, the metrics and what the checkpoint tells about itself."""

    def __init__(
        self, config: ServeConfig, store: JobStore, runners: Sequence[Any], model_info: dict, rate: float | None = None
    ):
        from divita.serving.metrics import ServeMetrics

        self.config = config
        self.store = store
        self.metrics = ServeMetrics()
        self.seconds_per_second = rate  # calibrated prediction seconds per second of video (None: not measured)
        self.pool = WorkerPool(store, runners, config.limits, self.job_budget, self.metrics)
        self.drawing = threading.Lock()  # one timeline picture drawn at a time
        self.model_info = model_info
        self.started = False

    @classmethod
    def open(cls, config: ServeConfig, classifiers: Sequence[Any] | None = None) -> Service:
        """Open the data directory and recover it (jobs left running queued again, stray files deleted), then
        start ``config.workers`` workers of ``config.isolation`` (with ``classifiers`` given: one thread per
        classifier, in this process). Raises DivitaError on a bad option, checkpoint or data directory."""
        _check(config)
        store = JobStore(config.data_dir)
        runners: list[Any] = []
        try:
            counts = store.recover()
            runners, model_info, rate = _start_workers(config, classifiers)
        except BaseException:
            for r in runners:
                r.stop()
            store.close()
            raise
        if counts["requeued"] or counts["gave_up"]:
            log.warning(
                "divita serve: %d interrupted job(s) queued again, %d failed after %d starts",
                counts["requeued"],
                counts["gave_up"],
                MAX_ATTEMPTS,
            )
        return cls(config, store, runners, model_info, rate)

    @property
    def workers(self) -> int:
        return len(self.pool.runners)

    @property
    def isolation(self) -> str:
        """Where the workers run: "thread" (in this process), "process" or "ray"."""
        return self.config.isolation if getattr(self.pool.runners[0], "isolated", False) else "thread"

    def job_budget(self, job) -> float | None:
        """A job's time limit: ``--max-job-seconds``, else JOB_TIME_FACTOR x the calibrated time for its
        declared duration (the --max-duration limit when it declares none); None when neither is known."""
        if self.config.max_job_seconds is not None:
            return self.config.max_job_seconds
        if self.seconds_per_second is None:
            return None
        seconds = job.duration or (self.config.limits.max_duration if self.config.limits else None) or 3600.0
        expected = self.seconds_per_second * max(seconds, CALIBRATION_SECONDS)
        return max(MIN_JOB_SECONDS, JOB_TIME_FACTOR * expected)

    def sweep(self) -> list[str]:
        """Remove the uploads past ``--keep-uploads`` (recorded in their rows); returns the jobs touched."""
        if self.config.keep_uploads_s is None:
            return []
        removed = self.store.expire_uploads(self.config.keep_uploads_s)
        for job_id in removed:
            self.metrics.removed.inc()
            log_job("expired", job_id, removed="upload")
        return removed

    def start(self) -> None:
        if not self.started:
            self.pool.start()
            self.started = True

    def close(self) -> None:
        self.pool.stop()
        self.store.close()


def _check(config: ServeConfig) -> None:
    for name, value, ok in (
        ("--workers", config.workers, config.workers >= 1 or (config.isolation == "ray" and config.workers == 0)),
        ("--max-queue", config.max_queue, config.max_queue >= 1),
        ("--max-upload-mb", config.max_upload_mb, config.max_upload_mb > 0),
        ("--max-job-seconds", config.max_job_seconds, config.max_job_seconds is None or config.max_job_seconds > 0),
        ("--worker-memory-mb", config.worker_memory_mb, not config.worker_memory_mb or config.worker_memory_mb > 0),
        ("--keep-uploads", config.keep_uploads_s, config.keep_uploads_s is None or config.keep_uploads_s >= 0),
        ("--max-data-mb", config.max_data_mb, config.max_data_mb is None or config.max_data_mb > 0),
        ("--cpus-per-worker", config.cpus_per_worker, config.cpus_per_worker > 0),
    ):
        if not ok:
            raise DivitaError(None, f"{name} must be positive, got {value}")
    if config.isolation not in ("process", "thread", "ray"):
        raise DivitaError(None, f"unknown worker isolation {config.isolation!r}")
    if config.worker_memory_mb and config.isolation == "process":
        from divita.serving.runners import can_watch_memory

        if not can_watch_memory():
            raise DivitaError(None, "--worker-memory-mb needs /proc to read a worker's memory (Linux)")


def _start_workers(config: ServeConfig, classifiers: Sequence[Any] | None) -> tuple[list, dict, float | None]:
    """(runners started, the checkpoint's info, calibrated seconds per second of video or None)."""
    from divita.serving.runners import ProcessRunner, ThreadRunner, WorkerSpec

    if classifiers is not None or config.isolation == "thread":
        if classifiers is None:
            from divita.inference.predict import GenreClassifier

            classifiers = [
                GenreClassifier.from_checkpoint(
                    config.checkpoint, device=config.device, weights=config.weights, runtime=config.runtime
                )
                for _ in range(config.workers)
            ]
        return [ThreadRunner(c) for c in classifiers], checkpoint_info(classifiers[0], config.checkpoint), None
    spec = WorkerSpec(config.checkpoint, config.device, dict(config.weights), config.worker_memory_mb)
    spec.threads = config.worker_threads
    spec.runtime = config.runtime
    calibrate = config.max_job_seconds is None
    if config.isolation == "ray":
        from divita.serving.ray_workers import start_ray_runners

        return start_ray_runners(config, spec, calibrate)
    runners = [ProcessRunner(spec, calibrate=calibrate and i == 0) for i in range(config.workers)]
    started: list[Any] = []
    try:
        infos = []
        for r in runners:  # one at a time: N processes loading at once share the cores with the calibration
            infos.append(r.start())
            started.append(r)
    except BaseException:
        for r in started:
            r.stop()
        raise
    return runners, infos[0]["model_info"], infos[0].get("seconds_per_second")


def checkpoint_info(classifier: Any, path: str) -> dict:
    """Backbones, extraction and training metrics of the served checkpoint (for ``/healthz``)."""
    ckpt = classifier.checkpoint
    plan = classifier.plan
    return {
        "checkpoint": Path(path).name,
        "epoch": ckpt.get("epoch"),
        "selected_by": ckpt.get("selected_by"),
        "backbones": {m: s.get("name") for m, s in plan.backbones.items()},
        "extraction": {
            "fps": plan.fps,
            "fpc": plan.fpc,
            "detector": plan.detector.get("name"),
            "num_clips": classifier.num_clips,
        },
        "metrics": training_metrics(Path(path).with_name("metrics.csv"), ckpt.get("selected_by") or "loss"),
    }


def training_metrics(metrics_csv: Path, selection: str) -> dict | None:
    """``{"val": {"uap", "map", "wap", "sap"}, "tst": {...}}`` of the selected model (paper's AP convention)
    from the run's metrics.csv beside the checkpoint; None when there is none."""
    if not metrics_csv.is_file():
        return None
    import pandas as pd

    try:
        df = pd.read_csv(metrics_csv)
        rows = df[(df["selection"] == selection) & (df["convention"] == "paper")]
        out = {}
        for _, r in rows.iterrows():
            out[str(r["subset"])] = {k: _finite(r[k]) for k in ("uap", "map", "wap", "sap")}
        return out or None
    except (KeyError, ValueError, OSError, pd.errors.ParserError):
        return None


def _finite(x) -> float | None:
    x = float(x)
    return round(x, 4) if math.isfinite(x) else None


def version() -> str:
    """divita's version (shown by ``/healthz`` and the OpenAPI page)."""
    from divita import __version__

    return __version__
