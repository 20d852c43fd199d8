"""``divita extract --ray``: :func:`divita.features.extract.extract` over a Ray cluster, same outputs.

:func:`extract_ray` splits the local pipeline of :func:`divita.features.extract.process_video` in two:

- **prepare** tasks (CPU, ``prepare_cpus`` each; optionally a GPU share for TransNetV2) decode a video,
  detect its shots and cut its clips by running :func:`~divita.features.extract.process_video` itself with
  stand-in encoders that, instead of computing features, ship each batch of clip frames (uint8, only
  the frame positions and the decode size each backbone reads, ``batch_size`` clips per chunk) to an
  encoder actor as soon as the clips are certain, with at most ``chunk_window`` chunks unanswered;
- **encoder actors** (``encoder_gpus`` GPU share and ``encoder_cpus`` CPUs each) load every backbone once
  for their lifetime and turn chunks into features.

Because the decode, the shot stream, the clip rules and the batching are literally the local code, a
chunk holds exactly the frames the local path would have handed to ``encode`` in the same batch, and the
features equal the local path's (bit for bit on the same hardware and precision). The driver keeps a
bounded number of videos in flight (``ray.wait``), and commits each finished video itself through the
local path's :class:`~divita.features.extract.ExtractionRun` (one writer per store; workers need no write
access), writing the same ``shots/<id>.json``, ``videos.csv`` and ``failures.csv``: a local rerun and a Ray
rerun resume each other's work. ``out`` may also be a URL any fsspec filesystem reaches
(:class:`~divita.features.outputs.FsspecOutput`).

Faults: actors restart (``max_restarts``) and Ray replays their unanswered calls (``max_task_retries``);
prepare tasks whose worker dies are re-run (``max_retries``); a video whose pipeline still failed for a
Ray reason (dead actor, lost object, ...) is resubmitted whole by the driver up to ``retries`` times, then
recorded in ``failures.csv``. A bad video (unreadable, ...) is recorded at once, as locally.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from divita.distributed.cluster import (
    TASK_RETRIES,
    cancel_all,
    connect,
    disconnect,
    is_local_address,
    ray_reason,
    remote,
    require_ray,
)
from divita.errors import DivitaError
from divita.features.outputs import FeatureOutput, open_output
from divita.features.plan import CLIPS_NOTE, ExtractionSettings  # noqa: F401 - CLIPS_NOTE: a name of ray_backend

ACTOR_RESTARTS = 3  # per encoder actor
VIDEO_RETRIES = 2  # driver-level resubmissions of a video whose pipeline failed for a Ray reason
CHUNK_WINDOW = 4  # unanswered chunks per video (bounds the object store held by one video)


# ------------------------------------------------------------------------------------------ encoder actors


class EncoderWorker:
    """The body of an encoder actor: every backbone of the run, loaded once for the actor's lifetime."""

    def __init__(
        self,
        backbones: Sequence[str],
        weights: str,
        device: str,
        precision: str,
        frames_per_clip_2d: int,
        threads: int | None = None,
    ):
        import torch

        if threads:
            torch.set_num_threads(int(threads))
        self.error: tuple[str | None, str] | None = None
        self.encoders: dict[str, Any] = {}
        self.calls = 0
        self.busy: str | None = None
        self.started = time.time()
        try:
            from divita.features.extract import load_encoders

            loaded = load_encoders(list(backbones), weights, device, precision, frames_per_clip_2d)
            self.encoders = {e.spec.name: e for e in loaded}
        except DivitaError as e:  # reported by describe(): a usage error, not a reason to restart
            self.error = (e.where, e.problem)
        except Exception as e:
            self.error = (None, f"cannot load the backbones: {type(e).__name__}: {e}".splitlines()[0])

    def describe(self) -> dict:
        """What the driver needs to mirror the encoders (sizes, frame positions) and record them in stores:
        backbone -> :func:`divita.features.extract.describe_encoder`, plus :meth:`status`."""
        from divita.features.extract import describe_encoder

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
    """Stands in for an encoder inside :func:`~divita.features.extract.process_video`: same name-space attributes
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
    fps: float,
    fpc: int,
    min_clip_frames: int | None,
    batch_size: int,
    decode_threads: int,
    window: int = CHUNK_WINDOW,
    threads: int | None = None,
) -> dict:
    """One video on a CPU worker: decode, shots, clips (the local code), clip frames streamed to ``actor``.

    Returns {"error": reason} for a video that cannot be used, else its shots, clips, info and features
    (backbone -> (clips, F) float32, in clip order). Ray failures (the actor died for good...) propagate.
    """
    import ray

    from divita.features.extract import process_video
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
            fps=fps,
            fpc=fpc,
            min_clip_frames=min_clip_frames,
            batch_size=batch_size,
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


def _detector_params(detector) -> dict:
    return detector.params()


# ------------------------------------------------------------------------------------------ the driver


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide :func:`extract_ray` runs (checked when made; see :func:`extract_ray` for each field)."""

    address: str | None = None
    encoders: int | None = None
    encoder_gpus: float | None = None
    encoder_cpus: float = 1.0
    prepare_cpus: float = 1.0
    prepare_gpus: float = 0.0
    in_flight: int | None = None
    chunk_window: int = CHUNK_WINDOW
    retries: int = VIDEO_RETRIES

    def __post_init__(self):
        for what, v in (
            ("encoder CPUs", self.encoder_cpus),
            ("encoder GPUs", self.encoder_gpus),
            ("prepare CPUs", self.prepare_cpus),
            ("prepare GPUs", self.prepare_gpus),
            ("retries", self.retries),
        ):
            if v is not None and v < 0:
                raise DivitaError(None, f"{what} must not be negative, got {v}")
        if self.in_flight is not None and self.in_flight < 1:
            raise DivitaError(None, f"videos in flight must be at least 1, got {self.in_flight}")
        if self.chunk_window < 1:
            raise DivitaError(None, f"unanswered batches per video must be at least 1, got {self.chunk_window}")


@dataclass
class _Job:
    mid: str
    path: Path  # as given (recorded in failures.csv and the stores)
    names: list[str]  # backbones still missing for this video
    attempts: int = 0
    actor: int = -1
    submitted: float = 0.0


@dataclass
class RayExtractStats:
    """What the Ray run did beyond the summary: per-video latency and where the time went."""

    encoders: int = 0
    in_flight: int = 0
    startup_s: float = 0.0  # connect + actors loaded
    retries: int = 0
    video_wall: list[float] = field(default_factory=list)  # submit -> result, per finished video
    prepare_wall: list[float] = field(default_factory=list)
    waiting_for_encoders: list[float] = field(default_factory=list)


class _ActorPool:
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


class _RayExtraction:
    """One :func:`extract_ray` run on a connected driver: :meth:`start` (actors, detector, stores), :meth:`run`
    (the submit/collect loop over the videos), :meth:`finish` (labels); the books are an ExtractionRun's."""

    def __init__(
        self,
        settings: ExtractionSettings,
        options: RayOptions,
        output: FeatureOutput,
        *,
        threads: int | None,
        decode_threads: int,
        progress: bool,
        log: Callable[[str], None],
        on_event: Callable[[str, Any], None] | None,
        stats: RayExtractStats,
    ):
        from divita.features.extract import ExtractionRun

        self.ray = require_ray()
        self.settings, self.options, self.output = settings, options, output
        self.threads, self.decode_threads, self.progress, self.log = threads, decode_threads, progress, log
        self.emit = on_event or (lambda kind, data: None)
        self.stats = stats
        self.books = ExtractionRun(settings, output, log)
        self.summary = self.books.summary
        self.pool: _ActorPool | None = None
        self.queue: deque[_Job] = deque()
        self.running: dict[Any, _Job] = {}
        self.plans: dict[tuple, tuple[list[dict], dict[str, str]]] = {}
        self.bar = None
        self.t0 = 0.0

    # -- setup -----------------------------------------------------------------------------------------

    def start(self, t_start: float, started: bool) -> None:
        """Prepare the output, size the pool to the cluster, start the encoder actors, create the stores.
        ``started``: whether this run started Ray (False: the caller's session)."""
        self.output.prepare()
        encoders, encoder_gpus = self._size(started)
        det_params = self._start_actors(encoders, encoder_gpus)
        self.stats.startup_s = time.perf_counter() - t_start
        self.emit("actors", list(self.pool.actors))
        self.books.create_stores(self.desc, det_params)

    def _size(self, started: bool) -> tuple[int, float]:
        """(encoder actors, GPUs each) on this cluster, and the videos kept in flight."""
        o = self.options
        cluster = self.ray.cluster_resources()
        gpus = float(cluster.get("GPU", 0))
        encoder_gpus = o.encoder_gpus if o.encoder_gpus is not None else (1.0 if gpus > 0 else 0.0)
        if o.encoders is not None:
            encoders = o.encoders
        else:
            encoders = max(1, int(gpus // encoder_gpus)) if encoder_gpus > 0 else 1
        if encoders < 1:
            raise DivitaError(None, f"need at least one encoder actor, got {encoders}")
        if encoder_gpus > 0 and gpus < encoder_gpus:
            raise DivitaError(
                o.address or "local", f"encoder actors want {encoder_gpus:g} GPU each but the cluster has {gpus:g} GPUs"
            )
        cpus = float(cluster.get("CPU", 0))
        spare = cpus - encoders * o.encoder_cpus
        if o.prepare_cpus > 0 and spare < o.prepare_cpus:
            msg = (
                f"the Ray cluster has {cpus:g} CPUs: {encoders} encoder actor(s) x {o.encoder_cpus:g} CPU leave "
                f"{max(0.0, spare):g}, less than one prepare task needs ({o.prepare_cpus:g}); "
                "lower the encoder CPUs or add nodes"
            )
            if is_local_address(o.address) or started is False:
                raise DivitaError(None, msg)
            self.log(f"divita extract: warning: {msg} (waiting for an autoscaler)")
        slots = max(1, int(spare // o.prepare_cpus)) if o.prepare_cpus > 0 else 2 * encoders
        self.in_flight = int(o.in_flight or (slots + encoders))
        self.stats.encoders, self.stats.in_flight = encoders, self.in_flight
        return encoders, encoder_gpus

    def _start_actors(self, encoders: int, encoder_gpus: float) -> dict:
        """The detector for the prepare tasks and the pool of encoder actors (every backbone loaded); returns the
        detector's ``params()``."""
        ray, s, o = self.ray, self.settings, self.options
        enc_device = "cuda" if encoder_gpus > 0 else "cpu"
        det_device = "cuda" if o.prepare_gpus > 0 else "cpu"
        from divita.shots import ShotDetector

        detector = s.detector
        if isinstance(detector, str):
            detector = ShotDetector(
                detector,
                threshold=s.threshold,
                content_threshold=s.content_threshold,
                device=det_device,
                precision=s.precision,
                fps=s.fps,
                segment_frames=s.fpc,
            )
        else:
            detector = replace(detector, device=det_device)
        self.detector = detector
        enc_threads = self.threads or max(1, int(o.encoder_cpus))
        self.prep_threads = self.threads or max(1, int(o.prepare_cpus))
        actor_opts = dict(
            num_cpus=o.encoder_cpus, num_gpus=encoder_gpus, max_restarts=ACTOR_RESTARTS, max_task_retries=TASK_RETRIES
        )
        self.prep_opts = dict(num_cpus=o.prepare_cpus, num_gpus=o.prepare_gpus, max_retries=TASK_RETRIES)

        def make_actor():
            return (
                encoder_actor()
                .options(**actor_opts)
                .remote(list(s.names), s.weights, enc_device, s.precision, s.frames_per_clip_2d, enc_threads)
            )

        det_ref = remote(_detector_params).options(**self.prep_opts).remote(detector)
        self.pool = _ActorPool(ray, make_actor, encoders)
        described = ray.get([a.describe.remote() for a in self.pool.actors])
        for d in described:
            if "error" in d:
                raise DivitaError(*d["error"])
        self.desc = described[0]["encoders"]
        return ray.get(det_ref)

    # -- the loop ----------------------------------------------------------------------------------------

    def run(self, videos: Sequence[Path]) -> None:
        """Extract every video not yet in all stores, ``in_flight`` at a time; videos.csv at the end (also when
        interrupted)."""
        jobs = [_Job(mid, path, names) for mid, path, names in self.books.pending(videos)]
        order = {job.mid: i for i, job in enumerate(jobs)}
        self.queue.extend(jobs)
        if self.progress:
            from tqdm import tqdm

            self.bar = tqdm(
                total=self.books.total,
                initial=len(self.summary.skipped),
                desc="videos",
                unit="video",
                dynamic_ncols=True,
            )
        self.t0 = time.perf_counter()
        try:
            while self.queue or self.running:
                self._submit()
                if self.running:
                    self._collect_one()
        finally:
            if self.bar is not None:
                self.bar.close()
            self.summary.seconds = time.perf_counter() - self.t0
            cancel_all(self.running)
            self.books.finish()
        self.summary.done.sort(key=order.__getitem__)

    def _submit(self) -> None:
        """Start prepare tasks until ``in_flight`` videos are in the pipeline."""
        from divita.features.store import check_array_id

        s = self.settings
        while self.queue and len(self.running) < self.in_flight:
            job = self.queue.popleft()
            try:
                check_array_id(job.mid)
            except DivitaError as err:
                self._fail(job, err.problem)
                continue
            key = tuple(job.names)
            if key not in self.plans:
                self.plans[key] = frame_plan(self.desc, job.names)
            captures, mapping = self.plans[key]
            job.actor = self.pool.pick()
            job.submitted = time.perf_counter()
            src = str(Path(job.path).resolve()) if Path(job.path).exists() else str(job.path)
            ref = (
                remote(prepare_video)
                .options(**self.prep_opts)
                .remote(
                    src,
                    self.pool.actors[job.actor],
                    captures,
                    mapping,
                    self.detector,
                    s.fps,
                    s.fpc,
                    s.min_clip_frames,
                    s.batch_size,
                    self.decode_threads,
                    self.options.chunk_window,
                    self.prep_threads,
                )
            )
            self.running[ref] = job

    def _collect_one(self) -> None:
        """Wait for one video's prepare task; commit it, record its failure, or resubmit it after a Ray failure."""
        ray = self.ray
        ready, _ = ray.wait(list(self.running), num_returns=1)
        job = self.running.pop(ready[0])
        self.pool.release(job.actor)
        try:
            res = ray.get(ready[0])
        except ray.exceptions.RayError as err:  # the pipeline broke (not the video): resubmit it whole
            job.attempts += 1
            reason = ray_reason(err)
            self.pool.check(job.actor)
            if job.attempts > self.options.retries:
                self._fail(job, f"gave up after {job.attempts} attempts on Ray: {reason}")
            else:
                self.stats.retries += 1
                self.log(f"divita extract: {job.path}: retrying ({reason})")
                self.emit("retry", (job.mid, reason))
                self.queue.appendleft(job)
            return
        if "error" in res:
            if res.get("traceback"):
                self.log(res["traceback"])
            self._fail(job, res["error"])
            return
        bad = [n for n in job.names if not np.isfinite(res["features"][n]).all()]
        if bad:
            self._fail(job, f"backbone {bad[0]} produced NaN/inf features")
            return
        self._commit(job, res)

    def _commit(self, job: _Job, res: dict) -> None:
        from divita.features.extract import VideoResult

        result = VideoResult(
            path=str(job.path),
            fps=res["fps"],
            num_frames=res["num_frames"],
            shots=res["shots"],
            clips=res["clips"],
            features=res["features"],
            info=res["info"],
        )
        self.books.commit(job.mid, result, job.names)
        self.stats.video_wall.append(time.perf_counter() - job.submitted)
        self.stats.prepare_wall.append(res["timings"]["prepare_wall"])
        self.stats.waiting_for_encoders.append(res["timings"]["waiting_for_encoders"])
        self.emit("committed", job.mid)
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(frames_per_s=f"{self.summary.frames / max(1e-9, time.perf_counter() - self.t0):.0f}")

    def _fail(self, job: _Job, reason: str) -> None:
        self.books.fail(job.path, reason)
        self.emit("failed", (str(job.path), reason))
        if self.bar is not None:
            self.bar.update(1)

    # -- the end -----------------------------------------------------------------------------------------

    def finish(self, labels: str | os.PathLike | None, split_seed: int) -> None:
        if labels is not None:
            self.books.write_labels(labels, split_seed)

    def shutdown(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


def extract_ray(
    inputs: Sequence[str | os.PathLike],
    backbones: Sequence[str],
    out_dir: str | os.PathLike,
    *,
    address: str | None = None,
    encoders: int | None = None,
    encoder_gpus: float | None = None,
    encoder_cpus: float = 1.0,
    prepare_cpus: float = 1.0,
    prepare_gpus: float = 0.0,
    in_flight: int | None = None,
    chunk_window: int = CHUNK_WINDOW,
    retries: int = VIDEO_RETRIES,
    storage_options: dict | None = None,
    weights: str = "default",
    fps: float = 24.0,
    fpc: int = 24,
    min_clip_frames: int | None = None,
    detector: Any = "transnetv2",
    threshold: float = 0.5,
    content_threshold: float = 27.0,
    precision: str = "auto",
    frames_per_clip_2d: int = 3,
    batch_size: int = 16,
    threads: int | None = None,
    decode_threads: int = 0,
    labels: str | os.PathLike | None = None,
    split_seed: int = 0,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    on_event: Callable[[str, Any], None] | None = None,
    stats: RayExtractStats | None = None,
):
    """:func:`divita.features.extract.extract` on Ray: same outputs, same resumability (see the module docstring).

    ``address``: None/"local" (a new local Ray instance), "auto" or a cluster address. ``encoders``: encoder
    actors (default: one per GPU of the cluster, else 1), each with ``encoder_gpus`` GPUs (default 1 when the
    cluster has GPUs, else 0: fractions share a GPU) and ``encoder_cpus`` CPUs; encoders run on CUDA exactly
    when they get a GPU share. ``prepare_cpus``/``prepare_gpus``: resources of each prepare task (TransNetV2
    runs on CUDA when ``prepare_gpus`` > 0). ``in_flight``: videos in the pipeline at once (default: the
    prepare tasks that fit next to the encoders, plus one per encoder). Video paths must be readable at the
    same path on every node (a shared filesystem); ``out_dir`` only by the driver. ``on_event(kind, data)``:
    "actors" (the actor handles), "committed" (id), "retry" ((id, reason)), "failed" ((path, reason)).
    The extraction keywords make an :class:`ExtractionSettings`, the cluster ones a :class:`RayOptions`
    (:func:`run_ray_extraction` takes both).
    """
    require_ray()
    settings = ExtractionSettings(
        backbones,
        weights=weights,
        fps=fps,
        fpc=fpc,
        min_clip_frames=min_clip_frames,
        detector=detector,
        threshold=threshold,
        content_threshold=content_threshold,
        precision=precision,
        frames_per_clip_2d=frames_per_clip_2d,
        batch_size=batch_size,
    )
    options = RayOptions(
        address=address,
        encoders=encoders,
        encoder_gpus=encoder_gpus,
        encoder_cpus=encoder_cpus,
        prepare_cpus=prepare_cpus,
        prepare_gpus=prepare_gpus,
        in_flight=in_flight,
        chunk_window=chunk_window,
        retries=retries,
    )
    return run_ray_extraction(
        inputs,
        settings,
        out_dir,
        options,
        storage_options=storage_options,
        threads=threads,
        decode_threads=decode_threads,
        labels=labels,
        split_seed=split_seed,
        progress=progress,
        log=log,
        on_event=on_event,
        stats=stats,
    )


def run_ray_extraction(
    inputs: Sequence[str | os.PathLike],
    settings: ExtractionSettings,
    out_dir: str | os.PathLike | FeatureOutput,
    options: RayOptions | None = None,
    *,
    storage_options: dict | None = None,
    threads: int | None = None,
    decode_threads: int = 0,
    labels: str | os.PathLike | None = None,
    split_seed: int = 0,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    on_event: Callable[[str, Any], None] | None = None,
    stats: RayExtractStats | None = None,
):
    """:func:`extract_ray` with the extraction given as ``settings`` and the cluster as ``options`` (what
    ``divita extract --ray`` calls). ``out_dir``: a directory, an fsspec URL (with ``storage_options``) or a
    ready :class:`FeatureOutput`."""
    require_ray()
    options = options or RayOptions()
    log = log or (lambda s: print(s, file=sys.stderr))
    stats = stats if stats is not None else RayExtractStats()
    if not all(isinstance(b, str) for b in settings.backbones):
        raise DivitaError(None, "on Ray, backbones are given by name (the actors load them)")
    if settings.weights not in ("default", "random") and Path(settings.weights).exists():
        settings = replace(settings, weights=str(Path(settings.weights).resolve()))  # workers' cwd is not the driver's
    output = open_output(out_dir, storage_options)
    from divita.video import find_videos

    videos = find_videos(inputs)
    if not videos:
        raise DivitaError(None, "no video files found in the inputs")

    t_start = time.perf_counter()
    started = connect(options.address)  # first: an unreachable cluster leaves nothing behind
    job = _RayExtraction(
        settings,
        options,
        output,
        threads=threads,
        decode_threads=decode_threads,
        progress=progress,
        log=log,
        on_event=on_event,
        stats=stats,
    )
    try:
        job.start(t_start, started)
        job.run(videos)
        job.finish(labels, split_seed)
        return job.summary
    finally:
        job.shutdown()
        disconnect(started)


__all__ = [
    "EncoderWorker",
    "RayExtractStats",
    "RayOptions",
    "encoder_actor",
    "extract_ray",
    "frame_plan",
    "prepare_video",
    "run_ray_extraction",
]
