"""Where a job's prediction runs: a :class:`Runner` takes one upload at a time and answers an :class:`Outcome`.

- :class:`ThreadRunner`: a :class:`GenreClassifier` in the server's own process (tests, benchmarks; no
  isolation: a native crash takes the server down, and a job cannot be stopped at its time limit).
- :class:`ProcessRunner`: a child process (multiprocessing, spawn) with its own classifier, optionally capped in
  resident memory (watched from here, killed past the cap). A crash, a kill or a job over its time or memory
  limit ends that child only; the supervisor (:class:`divita.serving.worker.WorkerPool`) starts another.
- ``divita.serving.ray_workers.RayRunner``: a Ray actor somewhere on a cluster.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any

from divita.errors import DivitaError

log = logging.getLogger("divita.serve")
MEMORY_POLL_S = 0.1  # how often a busy worker's resident memory is read against --worker-memory-mb
CALIBRATION_SECONDS = 4.0  # length of the clip timed at start-up to predict how long a job should take


@dataclass
class Outcome:
    """What running one job gave: ``kind`` is "done" (``result``), "failed" (``reason``: the job's fault),
    "died" (the worker died under it: retried), "timeout" (over its time limit: failed, not retried) or
    "over_memory" (the worker passed ``--worker-memory-mb`` and was killed: failed with ``reason``, not
    retried; the worker is started again)."""

    kind: str
    result: dict | None = None
    reason: str = ""


@dataclass
class WorkerSpec:
    """What a worker process or actor needs to load its classifier (picklable)."""

    checkpoint: str
    device: str = "cpu"
    weights: dict[str, str] = field(default_factory=dict)
    memory_mb: float | None = None  # resident memory cap in MiB (None: none), enforced by the runner
    threads: int | None = None  # torch threads in the worker (None: torch's default)
    runtime: str = "torch"  # what runs the networks (divita.backbones.runtime)


def failure_reason(error: BaseException) -> str:
    """One line for a job's ``error``: a DivitaError's problem (without the server's path), else the type and
    the first line of the message; an allocation that failed says so."""
    if isinstance(error, MemoryError) and not isinstance(error, DivitaError):
        return "the worker ran out of memory (MemoryError)"
    if isinstance(error, DivitaError):
        text = error.problem.splitlines()[0][:500] if error.problem else "failed"
    else:
        text = f"{type(error).__name__}: {error}".splitlines()[0][:500]
    lower = text.lower()
    if any(w in lower for w in ("cannot allocate memory", "out of memory", "failed to allocate", "not enough memory")):
        return f"the worker ran out of memory ({text[:200]})"
    return text


def predict_outcome(classifier: Any, path, limits) -> Outcome:
    """Run one prediction in this process and turn whatever it raises into a failed :class:`Outcome`."""
    try:
        return Outcome("done", classifier.predict(path, limits))
    except Exception as e:  # noqa: BLE001 - a bad or hostile upload: the job fails with the reason
        return Outcome("failed", reason=failure_reason(e))


def resident_mb(pid: int) -> float | None:
    """Resident memory (RSS) of process ``pid`` in MiB, from /proc/PID/statm; None when it cannot be read
    (gone, or no /proc)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


def can_watch_memory() -> bool:
    """Whether this system lets :func:`resident_mb` read a process's memory (Linux's /proc)."""
    return resident_mb(os.getpid()) is not None


def over_memory_reason(cap_mb: float, used_mb: float) -> str:
    """A job's ``error`` when its worker passed ``--worker-memory-mb``."""
    return f"the worker exceeded --worker-memory-mb {cap_mb:g} ({used_mb:.0f} MiB resident) and was stopped"


def loaded_over_cap(cap_mb: float | None, used_mb: float | None) -> DivitaError | None:
    """The error for a worker whose loaded classifier alone is over the cap (no job could run), else None."""
    if cap_mb and used_mb is not None and used_mb > cap_mb:
        return DivitaError(
            None, f"a loaded worker already takes {used_mb:.0f} MiB, over --worker-memory-mb {cap_mb:g}: raise it"
        )
    return None


def calibrate(classifier: Any) -> float:
    """Seconds of prediction per second of video, timed on a generated 640x360 24-fps clip of
    ``CALIBRATION_SECONDS`` (after one warm-up run on it)."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="divita-calibrate-") as tmp:
        clip = write_calibration_clip(Path(tmp) / "clip.mp4")
        classifier.predict(clip)
        t = time.perf_counter()
        classifier.predict(clip)
        return (time.perf_counter() - t) / CALIBRATION_SECONDS


def write_calibration_clip(path, seconds: float = CALIBRATION_SECONDS, size=(640, 360), fps: int = 24):
    """A clip of moving gradients with a cut every second (shots to detect, clips to encode)."""
    import av
    import numpy as np

    w, h = size
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, h, dtype=np.float32)[:, None]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for i in range(int(seconds * fps)):
            shot, t = divmod(i, fps)
            planes = [(x + 7 * t) % 256, (y + 5 * t) % 256, np.float32(60.0 * shot % 256)]
            img = np.stack([np.broadcast_to(c, (h, w)) for c in planes], -1)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img.astype(np.uint8)), format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


class ThreadRunner:
    """A classifier in the server's own process; runs jobs in the calling (supervisor) thread."""

    isolated = False

    def __init__(self, classifier: Any):
        self.classifier = classifier
        self.pid = None

    def start(self) -> dict:
        return {}

    def alive(self) -> bool:
        return True

    def run(self, path, limits, timeout: float | None) -> Outcome:
        return predict_outcome(self.classifier, path, limits)

    def stop(self) -> None:
        pass


class ProcessRunner:
    """One worker process (multiprocessing spawn) with its own classifier; ``start()`` waits until it has
    loaded it and answers ``{"model_info", "seconds_per_second"}`` (the latter with ``calibrate``)."""

    isolated = True

    def __init__(self, spec: WorkerSpec, calibrate: bool = False, start_timeout: float = 600.0):
        self.spec = spec
        self.calibrate = calibrate
        self.start_timeout = start_timeout
        self.proc = None
        self.conn = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> dict:
        """Start the process and wait for its classifier. Raises DivitaError when it cannot load it."""
        import multiprocessing as mp

        from divita.serving.worker_process import worker_main

        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=worker_main, args=(child, self.spec, self.calibrate), daemon=True)
        self.proc.start()
        child.close()
        deadline = time.monotonic() + self.start_timeout
        while not self.conn.poll(0.2):
            if not self.proc.is_alive():
                raise DivitaError(None, f"the worker process exited while loading ({_exit_reason(self.proc)})")
            if time.monotonic() > deadline:
                self.stop()
                raise DivitaError(None, f"the worker process did not load in {self.start_timeout:g} s")
        try:
            kind, payload = self.conn.recv()
        except (EOFError, OSError):
            self.proc.join(5)
            raise DivitaError(None, f"the worker process exited while loading ({_exit_reason(self.proc)})") from None
        if kind == "error":
            self.stop()
            raise DivitaError(payload[0], payload[1])
        error = loaded_over_cap(self.spec.memory_mb, resident_mb(self.proc.pid))
        if error is not None:
            self.stop()
            raise error
        return payload

    def alive(self) -> bool:
        return self.proc is not None and self.proc.is_alive()

    def run(self, path, limits, timeout: float | None) -> Outcome:
        """Send one job and wait for its outcome; a dead process is "died", one past ``timeout`` seconds is
        killed and "timeout", one whose resident memory passes ``spec.memory_mb`` is killed and "over_memory"."""
        try:
            self.conn.send(("job", str(path), limits))
        except (OSError, ValueError):
            return Outcome("died", reason=self._death())
        deadline = None if timeout is None else time.monotonic() + timeout
        cap = self.spec.memory_mb
        while True:
            if cap and (used := resident_mb(self.proc.pid) or 0.0) > cap:
                self.kill()
                return Outcome("over_memory", reason=over_memory_reason(cap, used))
            try:
                if self.conn.poll(MEMORY_POLL_S if cap else 0.2):
                    kind, payload = self.conn.recv()
                    return Outcome("done", payload) if kind == "done" else Outcome("failed", reason=payload)
            except (EOFError, OSError):
                return Outcome("died", reason=self._death())
            if not self.proc.is_alive():
                return Outcome("died", reason=self._death())
            if deadline is not None and time.monotonic() > deadline:
                self.kill()
                return Outcome("timeout")

    def _death(self) -> str:
        self.proc.join(5)
        return f"the worker process died running this job ({_exit_reason(self.proc)})"

    def kill(self) -> None:
        if self.proc is not None and self.proc.is_alive():
            self.proc.kill()
            self.proc.join(10)

    def stop(self) -> None:
        """Ask the process to exit; kill it when it has not within a few seconds (a job still running)."""
        if self.proc is None:
            return
        try:
            self.conn.send(("stop", None))
        except (OSError, ValueError):
            pass
        self.proc.join(3)
        self.kill()
        self.conn.close()


def _exit_reason(proc) -> str:
    code = proc.exitcode
    if code is None:
        return "still running"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = ": out of memory?" if -code == signal.SIGKILL else ""
        return f"killed by {name}{hint}"
    return f"exit status {code}"
