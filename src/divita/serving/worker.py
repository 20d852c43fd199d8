"""The supervisor threads that run the jobs: one per worker (a :mod:`divita.serving.runners` runner: a thread's
classifier, a child process or a Ray actor). Each takes the oldest queued job, hands its upload to its runner
and records the outcome:

- done / failed: the result or the reason is written to the job's row;
- the worker died under the job (a native crash, SIGKILL, the OOM killer, a lost Ray node): the job is queued
  again, or failed once it has been started ``MAX_ATTEMPTS`` times, and the worker is started again;
- over its time limit (``--max-job-seconds``) or its memory cap (``--worker-memory-mb``): the worker is killed
  and started again, the job fails with the limit named (not retried: it would need as much again).

Inference never runs on the event loop, so the HTTP side keeps answering while a job runs. The timeline
picture is not drawn here but on its first request (:mod:`divita.serving.timeline`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from divita.serving.jobs import Job, JobStore
from divita.serving.metrics import log_job

log = logging.getLogger("divita.serve")
RESTART_BACKOFF_S = (1, 2, 5, 10, 30)  # pauses between failed starts of a worker


class WorkerPool:
    """One supervisor thread per runner. ``budget(job)``: the job's time limit in seconds (None: none);
    ``limits``: the :class:`divita.video.VideoLimits` every decode obeys; ``metrics``: a ServeMetrics."""

    def __init__(
        self,
        store: JobStore,
        runners: Sequence[Any],
        limits=None,
        budget: Callable[[Job], float | None] | None = None,
        metrics=None,
        poll_s: float = 1.0,
    ):
        self.store = store
        self.runners = list(runners)
        self.limits = limits
        self.budget = budget or (lambda job: None)
        self.metrics = metrics
        self.poll_s = poll_s
        self._wake = threading.Condition()
        self._pending = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.running: dict[str, str] = {}  # thread name -> job id it runs now
        self.restarts = 0

    def start(self) -> None:
        for i, runner in enumerate(self.runners):
            t = threading.Thread(target=self._loop, args=(runner,), name=f"divita-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def notify(self) -> None:
        """A job was queued: wake one idle worker now instead of at its next poll."""
        with self._wake:
            self._pending += 1
            self._wake.notify()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the threads to stop after their current job, then stop the runners; a job still running when
        ``timeout`` passes stays ``running`` in the table and is queued again at the next start."""
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        for t in self._threads:
            t.join(timeout)
        for runner in self.runners:
            try:
                getattr(runner, "close", runner.stop)()  # close: also what the runner owns (a Ray session)
            except Exception:  # noqa: BLE001 - stopping what may already be gone
                log.exception("stopping a worker")

    def _restart(self, runner: Any) -> None:
        """Start a dead runner again, pausing between failed starts, until it runs or the pool stops."""
        for attempt in range(10**9):
            if self._stop.is_set():
                return
            try:
                runner.stop()
                runner.start()
                self.restarts += 1
                if self.metrics is not None:
                    self.metrics.restarts.inc()
                log_job("worker_restarted", "-", pid=runner.pid)
                return
            except Exception as e:  # noqa: BLE001 - a worker that cannot start now may start later
                log.error("divita serve: a worker could not start again: %s", e)
                self._stop.wait(RESTART_BACKOFF_S[min(attempt, len(RESTART_BACKOFF_S) - 1)])

    def _loop(self, runner: Any) -> None:
        name = threading.current_thread().name
        while not self._stop.is_set():
            if not runner.alive():  # died while idle
                self._restart(runner)
                continue
            try:
                job = self.store.claim()
            except Exception:  # the table is gone (shutting down) or the disk failed: retry after a pause
                log.exception("cannot claim a job")
                self._stop.wait(self.poll_s)
                continue
            if job is None:
                with self._wake:
                    if self._pending == 0:
                        self._wake.wait(self.poll_s)
                    self._pending = max(0, self._pending - 1)
                continue
            self.running[name] = job.id
            try:
                self.run_job(runner, job)
            except Exception:  # recording the outcome failed (disk full?): the job stays running, queued again at start
                log.exception("job %s: cannot record its outcome", job.id)
            finally:
                self.running.pop(name, None)

    def run_job(self, runner: Any, job: Job) -> None:
        """Run one job on ``runner`` and record the outcome (raises only when the table cannot be written)."""
        upload = self.store.uploads / job.upload
        budget = self.budget(job)
        log_job("running", job.id, attempt=job.attempts, worker=runner.pid, max_seconds=budget)
        outcome = runner.run(upload, self.limits, budget)
        elapsed = round(time.time() - (job.started or time.time()), 3)
        ended = True
        if outcome.kind == "done":
            result = outcome.result
            result["video"] = job.filename  # the server's upload path means nothing to the client
            self.store.finish(job.id, result)
            log_job("done", job.id, seconds=elapsed)
        elif outcome.kind in ("failed", "over_memory"):
            self.store.fail(job.id, outcome.reason)
            log_job("failed", job.id, seconds=elapsed, error=outcome.reason)
        elif outcome.kind == "timeout":
            reason = f"stopped after {elapsed:.1f} s: over the time limit of {round(budget, 1):g} s (--max-job-seconds)"
            self.store.fail(job.id, reason)
            log_job("failed", job.id, seconds=elapsed, error=reason)
        else:  # died
            status = self.store.retry_or_fail(job.id, outcome.reason)
            ended = status == "failed"
            log_job("retried" if status == "queued" else "failed", job.id, seconds=elapsed, error=outcome.reason)
        if ended and self.metrics is not None:
            self.metrics.job_ended(job.started, job.created)
        if outcome.kind in ("timeout", "died", "over_memory"):
            self._restart(runner)
