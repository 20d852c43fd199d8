"""The threads that run the jobs: each takes the oldest queued job, runs its own :class:`GenreClassifier` on
the upload and records the result (or the reason it failed). Inference never runs on the event loop, so the
HTTP side keeps answering while a job runs. The timeline picture is not drawn here but on its first request
(:mod:`divita.serving.timeline`), so that a result is ready as soon as the prediction is."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from typing import Any

from divita.errors import DivitaError
from divita.serving.jobs import Job, JobStore

log = logging.getLogger("divita.serve")


def failure_reason(error: BaseException) -> str:
    """One line for a job's ``error``: a DivitaError's problem (without the server's path), else the type and
    the first line of the message."""
    if isinstance(error, DivitaError):
        return error.problem.splitlines()[0][:500] if error.problem else "failed"
    return f"{type(error).__name__}: {error}".splitlines()[0][:500]


class WorkerPool:
    """``len(classifiers)`` threads, one classifier each (a classifier is not shared between threads)."""

    def __init__(self, store: JobStore, classifiers: Sequence[Any], poll_s: float = 1.0):
        self.store = store
        self.classifiers = list(classifiers)
        self.poll_s = poll_s
        self._wake = threading.Condition()
        self._pending = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.running: dict[str, str] = {}  # thread name -> job id it runs now

    def start(self) -> None:
        for i, clf in enumerate(self.classifiers):
            t = threading.Thread(target=self._loop, args=(clf,), name=f"divita-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def notify(self) -> None:
        """A job was queued: wake one idle worker now instead of at its next poll."""
        with self._wake:
            self._pending += 1
            self._wake.notify()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the threads to stop after their current job; a job still running when ``timeout`` passes stays
        ``running`` in the table and is queued again at the next start."""
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        for t in self._threads:
            t.join(timeout)

    def _loop(self, classifier: Any) -> None:
        name = threading.current_thread().name
        while not self._stop.is_set():
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
                self.run_job(classifier, job)
            except Exception:  # recording the outcome failed (disk full?): the job stays running, queued again at start
                log.exception("job %s: cannot record its outcome", job.id)
            finally:
                self.running.pop(name, None)

    def run_job(self, classifier: Any, job: Job) -> None:
        """Predict one job's upload and record the outcome (raises only when the table cannot be written)."""
        upload = self.store.uploads / job.upload
        try:
            result = classifier.predict(upload)
        except Exception as e:  # a bad or hostile upload: the job fails with the reason, the service goes on
            if os.environ.get("DIVITA_DEBUG"):
                log.exception("job %s failed", job.id)
            self.store.fail(job.id, failure_reason(e))
            return
        result["video"] = job.filename  # the server's upload path means nothing to the client
        self.store.finish(job.id, result)
