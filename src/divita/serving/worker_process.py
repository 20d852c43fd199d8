"""The body of one worker process (:class:`divita.serving.runners.ProcessRunner`): load the classifier, answer
``("ready", info)`` (or ``("error", (path, problem))``), then run the jobs the pipe brings, one at a time.

Messages in: ``("job", upload path, VideoLimits | None)``, ``("stop", None)``.
Messages out: ``("done", result dict)``, ``("failed", reason)``.
"""

from __future__ import annotations

import os
import signal


def worker_main(conn, spec, calibrate: bool) -> None:
    """Run in a fresh (spawned) process until the pipe closes or says stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the server, which stops its workers
    _die_with_parent()
    from divita.errors import DivitaError
    from divita.serving.runners import predict_outcome

    try:
        import torch

        if spec.threads:
            torch.set_num_threads(spec.threads)
        from divita.inference.predict import GenreClassifier
        from divita.serving.service import checkpoint_info

        classifier = GenreClassifier.from_checkpoint(
            spec.checkpoint, device=spec.device, weights=spec.weights, runtime=spec.runtime
        )
        info = {"model_info": checkpoint_info(classifier, spec.checkpoint), "pid": os.getpid()}
        if calibrate:
            from divita.serving.runners import calibrate as measure

            info["seconds_per_second"] = measure(classifier)
    except DivitaError as e:
        conn.send(("error", (e.where, e.problem)))
        return
    except Exception as e:  # noqa: BLE001 - reported to the server as one line
        conn.send(("error", (None, f"the worker could not load the checkpoint ({type(e).__name__}: {e})")))
        return
    conn.send(("ready", info))
    while True:
        try:
            kind, *payload = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if kind != "job":
            return
        path, limits = payload
        outcome = predict_outcome(classifier, path, limits)
        conn.send(("done", outcome.result) if outcome.kind == "done" else ("failed", outcome.reason))


def _die_with_parent() -> None:
    """On Linux, have the kernel kill this process when the server dies (even by SIGKILL), instead of letting it
    finish a job nobody will record."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the closed pipe ends it after its current job
        pass
