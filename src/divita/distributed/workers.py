"""The two halves of ``divita extract --ray`` that run on the workers (see :mod:`divita.distributed.extract`).

- **prepare** tasks (:func:`prepare_video`; CPU, optionally a GPU share for TransNetV2) decode a video, detect its
  shots and cut its clips by running :func:`~divita.features.engine.process_video` itself with stand-in encoders
  that, instead of computing features, ship each batch of clip frames (uint8, only the frame positions and the
  decode size each backbone reads, ``batch_size`` clips per chunk) to an encoder actor as soon as the clips are
  certain, with at most ``chunk_window`` chunks unanswered;
- **encoder actors** (:class:`EncoderWorker`, made by :func:`encoder_actor`, pooled by :class:`ActorPool`) load
  every backbone once for their lifetime and turn chunks into features.

Importing this module needs no Ray.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from divita.distributed.cluster import require_ray
from divita.distributed.options import CHUNK_WINDOW
from divita.errors import DivitaError
from divita.features.plan import ExtractionSettings

# ------------------------------------------------------------------------------------------ encoder actors


class EncoderWorker:
    """The body of an encoder actor: every backbone of the run, loaded once for the actor's lifetime."""

    def __init__(self, settings: ExtractionSettings, device: str, threads: int | None = None):
        """Load every backbone of ``settings`` (by name, with its weights, precision, 2D frames) on ``device``;
        a failure is kept and reported by :meth:`describe`."""
        import torch

        if threads:
            torch.set_num_threads(int(threads))
        self.error: tuple[str | None, str] | None = None
        self.encoders: dict[str, Any] = {}
        self.calls = 0
        self.busy: str | None = None
        self.started = time.time()
        try:
            from divita.features.engine import load_encoders

            s = settings
            loaded = load_encoders(list(s.backbones), s.weights, device, s.precision, s.frames_per_clip_2d, s.runtime)
            self.encoders = {e.spec.name: e for e in loaded}
        except DivitaError as e:  # reported by describe(): a usage error, not a reason to restart
            self.error = (e.where, e.problem)
        except Exception as e:
            self.error = (None, f"cannot load the backbones: {type(e).__name__}: {e}".splitlines()[0])

    def describe(self) -> dict:
        """What the driver needs to mirror the encoders (sizes, frame positions) and record them in stores:
        backbone -> :func:`divita.features.engine.describe_encoder`, plus :meth:`status`."""
        from divita.features.engine import describe_encoder

        if self.error:
            return {"error": self.error}
        return {"encoders": {name: describe_encoder(e) for name, e in self.encoders.items()}, **self.status()}

    def encode(self, arrays: dict[str, np.ndarray], names: dict[str, str], video: str = "") -> dict[str, np.ndarray]:
        """``arrays``: frame key -> uint8 (B, T', H, W, 3); ``names``: backbone -> its frame key.
        Returns backbone -> float32 (B, num_features)."""
        self.busy = video or "?"
        self.calls += 1
        try:
            out = {}
            for name, key in names.items():
                x = arrays[key]
                if not x.flags.writeable:  # zero-copy from the object store: torch wants writable memory
                    x = np.array(x)
                y = self.encoders[name].encode(x)
                y = y.detach().cpu().numpy() if hasattr(y, "detach") else np.asarray(y)
                out[name] = np.asarray(y, dtype=np.float32).reshape(len(x), -1)
            return out
        finally:
            self.busy = None

    def status(self) -> dict:
        """pid, calls so far, the video being encoded (None when idle); answered even while encoding."""
        return {
            "pid": os.getpid(),
            "calls": self.calls,
            "busy": self.busy,
            "uptime": time.time() - self.started,
            "devices": sorted({str(getattr(e, "device", "cpu")) for e in self.encoders.values()}),
        }


_ENCODER_ACTOR: list = []


def encoder_actor():
    """The Ray actor class of :class:`EncoderWorker` (made on first use: importing this module needs no Ray);
    ``status`` runs in its own concurrency group, so it is answered while ``encode`` runs."""
    if not _ENCODER_ACTOR:
        ray = require_ray()

        @ray.remote(concurrency_groups={"control": 1})
        class EncoderActor(EncoderWorker):
            @ray.method(concurrency_group="control")
            def status(self) -> dict:
                return EncoderWorker.status(self)

        _ENCODER_ACTOR.append(EncoderActor)
    return _ENCODER_ACTOR[0]


# ------------------------------------------------------------------------------------------ prepare tasks


def _frame_key(desc: dict) -> tuple:
    """Encoders that read the same frames (decode size and positions in the clip) share one shipped array."""
    n = desc["clip_frames"] if desc["kind"] == "3d" else desc["frames_per_clip_2d"]
    return (desc["kind"] == "3d", int(desc["min_side"]), n)


def frame_plan(encoders: dict[str, dict], names: Sequence[str]) -> tuple[list[dict], dict[str, str]]:
    """(stand-in encoder descriptions, backbone -> frame key) for the backbones ``names``."""
    keys: dict[tuple, str] = {}
    captures: list[dict] = []
    mapping: dict[str, str] = {}
    for name in names:
        d = encoders[name]
        k = _frame_key(d)
        if k not in keys:
            keys[k] = f"frames{len(keys)}"
            captures.append(
                {
                    "key": keys[k],
                    "kind": d["kind"],
                    "min_side": d["min_side"],
                    "clip_frames": d["clip_frames"],
                    "frames_per_clip_2d": d["frames_per_clip_2d"],
                }
            )
        mapping[name] = keys[k]
    return captures, mapping


class _FrameTap:
    """Stands in for an encoder inside :func:`~divita.features.engine.process_video`: same name-space attributes
    (kind, decode side, frames per clip), so process_video gathers exactly the frames the real encoder
    would get; ``encode`` hands them to the batch collector and returns each clip's sequence number as
    its 'feature', from which the final (sorted) clip order is read back."""

    def __init__(self, desc: dict, collector: _Batches, index: int):
        self.spec = SimpleNamespace(name=desc["key"], kind=desc["kind"])
        self.min_side = desc["min_side"]
        self.clip_frames = desc["clip_frames"]
        self.frames_per_clip_2d = desc["frames_per_clip_2d"]
        self.collector, self.index = collector, index

    def encode(self, clips: np.ndarray) -> np.ndarray:
        return self.collector.add(self.index, self.spec.name, clips)


class _Batches:
    """Collects one batch's frames from every tap, sends the batch to the encoder actor, and keeps at most
    ``window`` batches unanswered (back-pressure on the decoder when the encoders fall behind)."""

    def __init__(self, actor, names: dict[str, str], taps: int, window: int, video: str):
        import ray

        self.ray, self.actor, self.names, self.taps = ray, actor, names, taps
        self.window, self.video = max(1, window), video
        self.arrays: dict[str, np.ndarray] = {}
        self.seq = 0
        self.pending: list[tuple[int, Any]] = []
        self.results: dict[int, dict[str, np.ndarray]] = {}
        self.batches = 0
        self.wait_s = 0.0

    def add(self, index: int, key: str, clips: np.ndarray) -> np.ndarray:
        n = len(clips)
        ids = np.arange(self.seq, self.seq + n, dtype=np.float32)[:, None]
        self.arrays[key] = np.ascontiguousarray(clips)
        if index == self.taps - 1:  # the batch is complete: every tap has its frames
            ref = self.actor.encode.remote(self.arrays, self.names, self.video)
            self.pending.append((self.batches, ref))
            self.batches += 1
            self.arrays = {}
            self.seq += n
            while len(self.pending) > self.window:
                self._collect(1)
        return ids

    def _collect(self, num: int) -> None:
        t0 = time.perf_counter()
        refs = [r for _, r in self.pending]
        ready, _ = self.ray.wait(refs, num_returns=min(num, len(refs)))
        ready_set = set(ready)
        keep = []
        for i, r in self.pending:
            if r in ready_set:
                self.results[i] = self.ray.get(r)  # a dead actor's error surfaces here, early
            else:
                keep.append((i, r))
        self.pending = keep
        self.wait_s += time.perf_counter() - t0

    def finish(self) -> list[dict[str, np.ndarray]]:
        if self.pending:
            self._collect(len(self.pending))
        return [self.results[i] for i in range(self.batches)]


def prepare_video(
    path: str,
    actor,
    captures: list[dict],
    names: dict[str, str],
    detector,
    settings: ExtractionSettings,
    decode_threads: int,
    window: int = CHUNK_WINDOW,
    threads: int | None = None,
) -> dict:
    """One video on a CPU worker: decode, shots, clips (the local code, with the fps, clip rules and batching of
    ``settings``), clip frames streamed to ``actor``.

    Returns {"error": reason} for a video that cannot be used, else its shots, clips, info and features
    (backbone -> (clips, F) float32, in clip order). Ray failures (the actor died for good...) propagate.
    """
    import ray

    from divita.features.engine import process_video
    from divita.video import VideoError

    t0 = time.perf_counter()
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    batches = _Batches(actor, names, len(captures), window, Path(path).stem)
    taps = [_FrameTap(c, batches, i) for i, c in enumerate(captures)]
    try:
        result = process_video(
            path,
            taps,
            detector,
            fps=settings.fps,
            fpc=settings.fpc,
            min_clip_frames=settings.min_clip_frames,
            batch_size=settings.batch_size,
            decode_threads=decode_threads,
        )
        parts = batches.finish()
    except ray.exceptions.RayError:
        raise
    except (VideoError, DivitaError) as err:
        return {"error": err.problem}
    except Exception as err:
        return {
            "error": f"{type(err).__name__}: {err}".splitlines()[0][:300],
            "traceback": traceback.format_exc(limit=3),
        }
    order = result.features[taps[0].spec.name][:, 0].astype(np.int64)  # sequence numbers in clip order
    features = {}
    for name in names:
        x = np.concatenate([p[name] for p in parts]) if parts else np.zeros((0, 0), np.float32)
        features[name] = x[order] if len(x) else x
    return {
        "fps": result.fps,
        "num_frames": result.num_frames,
        "shots": result.shots,
        "clips": result.clips,
        "info": result.info,
        "features": features,
        "timings": {
            "prepare_wall": time.perf_counter() - t0,
            "waiting_for_encoders": batches.wait_s,
            "chunks": batches.batches,
        },
        "pid": os.getpid(),
    }


def detector_params(detector) -> dict:
    """``detector.params()``, on a worker (TransNetV2's records where and how it runs there)."""
    return detector.params()


class ActorPool:
    """``count`` encoder actors made by ``make``; a video goes to the least loaded one, a dead one is replaced."""

    def __init__(self, ray, make: Callable[[], Any], count: int):
        self.ray, self.make = ray, make
        self.actors = [make() for _ in range(count)]
        self.load = [0] * count

    def pick(self) -> int:
        i = min(range(len(self.actors)), key=lambda k: self.load[k])
        self.load[i] += 1
        return i

    def release(self, i: int) -> None:
        self.load[i] = max(0, self.load[i] - 1)

    def check(self, i: int, timeout: float = 120.0) -> bool:
        """After a Ray failure: True when actor ``i`` answers (restarted or alive); a dead one is replaced."""
        try:
            self.ray.get(self.actors[i].status.remote(), timeout=timeout)
            return True
        except self.ray.exceptions.GetTimeoutError:
            return False
        except self.ray.exceptions.RayActorError:
            self.actors[i] = self.make()
            return False

    def shutdown(self) -> None:
        for a in self.actors:
            try:
                self.ray.kill(a)
            except Exception:
                pass


__all__ = ["ActorPool", "EncoderWorker", "detector_params", "encoder_actor", "frame_plan", "prepare_video"]
