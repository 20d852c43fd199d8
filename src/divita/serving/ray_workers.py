"""`divita serve --ray`: the workers as Ray actors on a cluster; the HTTP front and the job table stay in the
server's process. Each actor holds its own :class:`GenreClassifier` (one per GPU, or one per
``--cpus-per-worker`` CPUs); the checkpoint and each upload travel through Ray's object store, so that the
nodes need no shared disk. An actor that dies (killed, a native crash, its node lost) fails its call: the job
is queued again (or failed after ``MAX_ATTEMPTS`` starts) and a new actor is created in its place.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path

from divita.errors import DivitaError
from divita.serving.runners import Outcome, WorkerSpec, loaded_over_cap, over_memory_reason

log = logging.getLogger("divita.serve")
MEMORY_POLL_S = 0.25  # how often a busy actor is asked its resident memory (with --worker-memory-mb)


class WorkerActor:
    """The body of one actor (made a Ray actor class by :func:`start_ray_runners`)."""

    def __init__(self, spec: WorkerSpec, checkpoint: bytes, calibrate: bool):
        self.spec, self.checkpoint, self.calibrate = spec, checkpoint, calibrate
        self.dir = tempfile.mkdtemp(prefix="divita-serve-actor-")
        self.classifier = None

    def load(self) -> tuple[str, object]:
        """("ready", {"model_info", "pid", "node_id", "resident_mb", ["seconds_per_second"]}) or
        ("error", (where, problem))."""
        try:
            import ray

            from divita.inference.predict import GenreClassifier
            from divita.serving.runners import calibrate
            from divita.serving.service import checkpoint_info

            path = Path(self.dir) / Path(self.spec.checkpoint).name
            path.write_bytes(self.checkpoint)
            self.checkpoint = b""
            self.classifier = GenreClassifier.from_checkpoint(
                path, device=self.spec.device, weights=self.spec.weights, runtime=self.spec.runtime
            )
            info = {"model_info": checkpoint_info(self.classifier, str(path)), "pid": os.getpid()}
            info["node_id"] = ray.get_runtime_context().get_node_id()
            if self.calibrate:
                info["seconds_per_second"] = calibrate(self.classifier)
            info["resident_mb"] = self.resident_mb()
            return "ready", info
        except DivitaError as e:
            return "error", (self.spec.checkpoint if e.where else None, e.problem)
        except Exception as e:  # noqa: BLE001 - reported to the server as one line
            return "error", (None, f"the worker actor could not load the checkpoint ({type(e).__name__}: {e})")

    def resident_mb(self) -> float | None:
        """This actor's resident memory in MiB (answered while a prediction runs: the actor has two threads)."""
        from divita.serving.runners import resident_mb

        return resident_mb(os.getpid())

    def predict(self, data: bytes, suffix: str, limits) -> tuple[str, object]:
        """("done", result) or ("failed", reason) for one upload's bytes."""
        from divita.serving.runners import predict_outcome

        path = Path(self.dir) / f"upload{suffix}"
        path.write_bytes(data)
        try:
            outcome = predict_outcome(self.classifier, path, limits)
        finally:
            path.unlink(missing_ok=True)
        return ("done", outcome.result) if outcome.kind == "done" else ("failed", outcome.reason)


class RayRunner:
    """One worker actor; ``start()`` creates it and waits until it has loaded the classifier."""

    isolated = True

    def __init__(self, actor_class, spec: WorkerSpec, checkpoint_ref, options: dict, calibrate: bool = False):
        self.actor_class, self.spec, self.checkpoint_ref = actor_class, spec, checkpoint_ref
        self.options, self.calibrate = options, calibrate
        self.actor = None
        self.pid = None
        self.node_id = None  # the Ray node the actor runs on (hex)
        self.owns_session = False  # the last runner shuts down a Ray instance the server started

    def start(self, timeout: float = 600.0) -> dict:
        """Create the actor and wait for its classifier. Raises DivitaError when it cannot load it."""
        self.launch()
        return self.wait(timeout)

    def launch(self) -> None:
        """Create the actor and ask it to load (without waiting: several actors load side by side)."""
        self.actor = self.actor_class.options(**self.options).remote(self.spec, self.checkpoint_ref, self.calibrate)
        self._loading = self.actor.load.remote()

    def wait(self, timeout: float = 600.0) -> dict:
        """Wait for the classifier :meth:`launch` asked for. Raises DivitaError when it cannot load it."""
        import ray

        try:
            kind, payload = ray.get(self._loading, timeout=timeout)
        except ray.exceptions.GetTimeoutError:
            self.stop()
            raise DivitaError(
                None, f"the worker actor did not load in {timeout:g} s (are the resources free?)"
            ) from None
        except ray.exceptions.RayError as e:
            raise DivitaError(None, f"the worker actor died while loading ({type(e).__name__})") from None
        if kind == "error":
            self.stop()
            raise DivitaError(payload[0], payload[1])
        error = loaded_over_cap(self.spec.memory_mb, payload.get("resident_mb"))
        if error is not None:
            self.stop()
            raise error
        self.pid, self.node_id = payload.get("pid"), payload.get("node_id")
        return payload

    def alive(self) -> bool:
        return self.actor is not None

    def run(self, path, limits, timeout: float | None) -> Outcome:
        """Send one upload to the actor; a dead actor (or node) is "died", one past ``timeout`` seconds is
        killed and "timeout", one whose resident memory passes ``spec.memory_mb`` is killed and "over_memory"."""
        import ray

        from divita.distributed.cluster import ray_reason

        path = Path(path)
        ref = self.actor.predict.remote(ray.put(path.read_bytes()), path.suffix, limits)
        deadline = None if timeout is None else time.monotonic() + timeout
        cap = self.spec.memory_mb
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if cap:
                wait = MEMORY_POLL_S if wait is None else min(wait, MEMORY_POLL_S)
            ready, _ = ray.wait([ref], timeout=wait)
            if ready:
                break
            if deadline is not None and time.monotonic() >= deadline:
                self.kill()
                return Outcome("timeout")
            if cap and (used := self._resident_mb()) is not None and used > cap:
                self.kill()
                return Outcome("over_memory", reason=over_memory_reason(cap, used))
        try:
            kind, payload = ray.get(ref)
        except ray.exceptions.RayError as e:  # the actor or its node died
            self.actor = None
            return Outcome("died", reason=f"the worker actor died running this job ({ray_reason(e)})")
        return Outcome("done", payload) if kind == "done" else Outcome("failed", reason=payload)

    def _resident_mb(self) -> float | None:
        """The actor's resident memory, or None when it does not answer within seconds (dead, or busy)."""
        import ray

        try:
            return ray.get(self.actor.resident_mb.remote(), timeout=5)
        except (ray.exceptions.RayError, AttributeError):
            return None

    def kill(self) -> None:
        import ray

        if self.actor is not None:
            try:
                ray.kill(self.actor, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone, or the session is
                pass
            self.actor = None

    def stop(self) -> None:
        self.kill()

    def close(self) -> None:
        """Stop the actor for good; the runner that owns the Ray session shuts it down."""
        self.kill()
        if self.owns_session:
            from divita.distributed.cluster import disconnect

            self.owns_session = False
            disconnect(True)


def worker_count(ray, config) -> tuple[int, dict, str]:
    """(actors, their Ray resource options, their device): one per GPU of the cluster when the server's
    device is not cpu and the cluster has GPUs, else one per ``cpus_per_worker`` CPUs (``--workers`` wins)."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if gpus and config.device != "cpu":
        return config.workers or gpus, {"num_gpus": 1, "num_cpus": config.cpus_per_worker}, "cuda"
    cpus = resources.get("CPU", 1)
    return config.workers or max(1, int(cpus // config.cpus_per_worker)), {"num_cpus": config.cpus_per_worker}, "cpu"


def start_ray_runners(config, spec: WorkerSpec, calibrate: bool) -> tuple[list, dict, float | None]:
    """Connect to (or start) Ray at ``config.ray_address`` and start the worker actors; returns (runners,
    the checkpoint's info, calibrated seconds per second of video or None). Raises DivitaError."""
    from divita.distributed.cluster import connect, disconnect, require_ray
    from divita.serving.service import training_metrics

    ray = require_ray()
    checkpoint = Path(config.checkpoint)
    try:
        data = checkpoint.read_bytes()
    except OSError as e:
        raise DivitaError(checkpoint, f"cannot read the checkpoint ({e.strerror or e})") from None
    started_here = connect(None if config.ray_address in (None, "local") else config.ray_address)
    runners: list[RayRunner] = []
    try:
        count, options, device = worker_count(ray, config)
        spec.device = device if spec.device == "cpu" or device == "cpu" else spec.device
        actor_class = ray.remote(max_restarts=0, max_task_retries=0, max_concurrency=2)(WorkerActor)
        ref = ray.put(data)
        t = time.perf_counter()
        runners = [RayRunner(actor_class, spec, ref, options, calibrate and i == 0) for i in range(count)]
        for r in runners:
            r.launch()
        infos = [r.wait() for r in runners]
        log.info("divita serve: %d Ray worker actors ready in %.1f s", count, time.perf_counter() - t)
    except BaseException:
        for r in runners:
            r.kill()
        disconnect(started_here)
        raise
    runners[-1].owns_session = started_here
    info = dict(infos[0]["model_info"], checkpoint=checkpoint.name)
    info["metrics"] = training_metrics(checkpoint.with_name("metrics.csv"), info.get("selected_by") or "loss")
    return runners, info, infos[0].get("seconds_per_second")
