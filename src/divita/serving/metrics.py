"""What `divita serve` tells a monitor: Prometheus metrics (``GET /metrics``) and one-line JSON logs.

Metrics (one registry per service, so that several services in one process do not mix):

    divita_jobs{status}                       jobs in the table by status (queued, running, done, failed)
    divita_queue_length                       jobs waiting
    divita_job_seconds                        histogram: a job's run time (claimed -> outcome)
    divita_time_to_result_seconds             histogram: upload accepted -> done or failed
    divita_refusals_total{reason}             refused requests by reason
    divita_worker_restarts_total              worker processes or actors started again after a death
    divita_uploads_removed_total              uploads removed by the retention sweep

Logs: logger ``divita.serve.access`` writes one JSON object per request, ``divita.serve.jobs`` one per job
event (``queued``, ``running``, ``done``, ``failed``, ``retried``, ``expired``).
"""

from __future__ import annotations

import json
import logging
import time

access_log = logging.getLogger("divita.serve.access")
job_log = logging.getLogger("divita.serve.jobs")
BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600, float("inf"))


def log_event(logger: logging.Logger, event: str, **fields) -> None:
    """One JSON line: ``{"ts": ..., "event": ..., **fields}`` (None values left out)."""
    if logger.isEnabledFor(logging.INFO):
        line = {"ts": round(time.time(), 3), "event": event, **{k: v for k, v in fields.items() if v is not None}}
        logger.info(json.dumps(line, separators=(",", ":")))


def log_job(event: str, job_id: str, **fields) -> None:
    """A job event line on ``divita.serve.jobs``."""
    log_event(job_log, event, id=job_id, **fields)


class ServeMetrics:
    """The service's Prometheus metrics; ``render(store)`` answers ``/metrics``."""

    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.jobs = Gauge("divita_jobs", "Jobs in the table by status", ["status"], registry=self.registry)
        self.queue = Gauge("divita_queue_length", "Jobs waiting for a worker", registry=self.registry)
        self.job_seconds = Histogram(
            "divita_job_seconds", "Run time of a job (claimed to outcome)", buckets=BUCKETS, registry=self.registry
        )
        self.time_to_result = Histogram(
            "divita_time_to_result_seconds",
            "Upload accepted to done or failed",
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.refusals = Counter("divita_refusals", "Refused requests by reason", ["reason"], registry=self.registry)
        self.restarts = Counter("divita_worker_restarts", "Workers started again after a death", registry=self.registry)
        self.removed = Counter(
            "divita_uploads_removed", "Uploads removed by the retention sweep", registry=self.registry
        )

    def job_ended(self, started: float | None, created: float | None) -> None:
        now = time.time()
        if started is not None:
            self.job_seconds.observe(max(0.0, now - started))
        if created is not None:
            self.time_to_result.observe(max(0.0, now - created))

    def render(self, counts: dict[str, int]) -> bytes:
        """The text exposition format, with the job gauges read from ``counts`` (status -> jobs)."""
        from prometheus_client import generate_latest

        for status, n in counts.items():
            self.jobs.labels(status).set(n)
        self.queue.set(counts.get("queued", 0))
        return generate_latest(self.registry)
