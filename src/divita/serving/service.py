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
from divita.serving.worker import WorkerPool

log = logging.getLogger("divita.serve")


@dataclass
class ServeConfig:
    """What `divita serve` was started with."""

    checkpoint: str
    data_dir: str = "divita-serve"
    workers: int = 1
    max_upload_mb: float = 1024
    max_queue: int = 100
    token: str | None = None
    device: str = "cpu"
    weights: dict[str, str] = field(default_factory=dict)
    timeline: bool = True  # draw a done job's timeline picture when it is asked for

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


class Service:
    """The job table, the worker threads and what the checkpoint tells about itself."""

    def __init__(self, config: ServeConfig, store: JobStore, classifiers: Sequence[Any]):
        self.config = config
        self.store = store
        self.classifiers = list(classifiers)
        self.pool = WorkerPool(store, self.classifiers)
        self.drawing = threading.Lock()  # one timeline picture drawn at a time
        self.model_info = checkpoint_info(self.classifiers[0], config.checkpoint)
        self.started = False

    @classmethod
    def open(cls, config: ServeConfig, classifiers: Sequence[Any] | None = None) -> Service:
        """Load ``config.workers`` classifiers (unless given), open the data directory and recover it (jobs
        left running queued again, stray files deleted). Raises DivitaError on a bad checkpoint or data dir."""
        if config.workers < 1:
            raise DivitaError(None, f"--workers must be at least 1, got {config.workers}")
        if config.max_queue < 1:
            raise DivitaError(None, f"--max-queue must be at least 1, got {config.max_queue}")
        if not config.max_upload_mb > 0:
            raise DivitaError(None, f"--max-upload-mb must be positive, got {config.max_upload_mb}")
        if classifiers is None:
            from divita.inference.predict import GenreClassifier

            classifiers = [
                GenreClassifier.from_checkpoint(config.checkpoint, device=config.device, weights=config.weights)
                for _ in range(config.workers)
            ]
        store = JobStore(config.data_dir)
        try:
            counts = store.recover()
        except Exception:
            store.close()
            raise
        if counts["requeued"] or counts["gave_up"]:
            log.warning(
                "divita serve: %d interrupted job(s) queued again, %d failed after %d starts",
                counts["requeued"],
                counts["gave_up"],
                MAX_ATTEMPTS,
            )
        return cls(config, store, classifiers)

    def start(self) -> None:
        if not self.started:
            self.pool.start()
            self.started = True

    def close(self) -> None:
        self.pool.stop()
        self.store.close()


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
