"""``divita extract --ray``: :func:`divita.features.extract.extract` over a Ray cluster, same outputs.

:func:`extract_ray` splits the local pipeline of :func:`divita.features.engine.process_video` in two
(:mod:`divita.distributed.workers`): **prepare** tasks decode a video, detect its shots and cut its clips by
running ``process_video`` itself with stand-in encoders that ship each batch of clip frames to an **encoder
actor**, which loads every backbone once for its lifetime and turns the batches into features.

Because the decode, the shot stream, the clip rules and the batching are literally the local code, a
chunk holds exactly the frames the local path would have handed to ``encode`` in the same batch, and the
features equal the local path's (bit for bit on the same hardware and precision). The driver keeps a
bounded number of videos in flight (``ray.wait``), and commits each finished video itself through the
local path's :class:`~divita.features.run.ExtractionRun` (one writer per store; workers need no write
access), writing the same ``shots/<id>.json``, ``videos.csv`` and ``failures.csv``: a local rerun and a Ray
rerun resume each other's work. ``out`` may also be a URL any fsspec filesystem reaches
(:class:`~divita.features.outputs.FsspecOutput`). How wide it runs: :class:`~divita.distributed.options.RayOptions`.

Faults: actors restart (``max_restarts``) and Ray replays their unanswered calls (``max_task_retries``);
prepare tasks whose worker dies are re-run (``max_retries``); a video whose pipeline still failed for a
Ray reason (dead actor, lost object, ...) is resubmitted whole by the driver up to ``retries`` times, then
recorded in ``failures.csv``. A bad video (unreadable, ...) is recorded at once, as locally.
"""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from divita.distributed.cluster import TASK_RETRIES, cancel_all, connect, disconnect, ray_reason, remote, require_ray
from divita.distributed.options import ACTOR_RESTARTS, RayExtractStats, RayOptions, size_pool
from divita.distributed.workers import ActorPool, detector_params, encoder_actor, frame_plan, prepare_video
from divita.errors import DivitaError
from divita.features.outputs import FeatureOutput, open_output
from divita.features.plan import ExtractionSettings


@dataclass
class _Job:
    mid: str
    path: Path  # as given (recorded in failures.csv and the stores)
    names: list[str]  # backbones still missing for this video
    attempts: int = 0
    actor: int = -1
    submitted: float = 0.0


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
        from divita.features.run import ExtractionRun

        self.ray = require_ray()
        self.settings, self.options, self.output = settings, options, output
        self.threads, self.decode_threads, self.progress, self.log = threads, decode_threads, progress, log
        self.emit = on_event or (lambda kind, data: None)
        self.stats = stats
        self.books = ExtractionRun(settings, output, log)
        self.summary = self.books.summary
        self.pool: ActorPool | None = None
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
        """(encoder actors, GPUs each) on this cluster; sets the videos kept in flight."""
        encoders, encoder_gpus, self.in_flight = size_pool(
            self.options, self.ray.cluster_resources(), started, self.log
        )
        self.stats.encoders, self.stats.in_flight = encoders, self.in_flight
        return encoders, encoder_gpus

    def _start_actors(self, encoders: int, encoder_gpus: float) -> dict:
        """The detector for the prepare tasks and the pool of encoder actors (every backbone loaded); returns the
        detector's ``params()``."""
        ray, s, o = self.ray, self.settings, self.options
        enc_device = "cuda" if encoder_gpus > 0 else "cpu"
        det_device = "cuda" if o.prepare_gpus > 0 else "cpu"
        self.detector = s.shot_detector(det_device)
        enc_threads = self.threads or max(1, int(o.encoder_cpus))
        self.prep_threads = self.threads or max(1, int(o.prepare_cpus))
        actor_opts = dict(
            num_cpus=o.encoder_cpus, num_gpus=encoder_gpus, max_restarts=ACTOR_RESTARTS, max_task_retries=TASK_RETRIES
        )
        self.prep_opts = dict(num_cpus=o.prepare_cpus, num_gpus=o.prepare_gpus, max_retries=TASK_RETRIES)

        def make_actor():
            return encoder_actor().options(**actor_opts).remote(s, enc_device, enc_threads)

        det_ref = remote(detector_params).options(**self.prep_opts).remote(self.detector)
        self.pool = ActorPool(ray, make_actor, encoders)
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
                    self.settings,
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
        from divita.features.engine import VideoResult

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
    backbones: Sequence[str] | None,
    out_dir: str | os.PathLike | FeatureOutput,
    *,
    settings: ExtractionSettings | None = None,
    options: RayOptions | None = None,
    storage_options: dict | None = None,
    threads: int | None = None,
    decode_threads: int = 0,
    labels: str | os.PathLike | None = None,
    split_seed: int = 0,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    on_event: Callable[[str, Any], None] | None = None,
    stats: RayExtractStats | None = None,
    **keywords: Any,
):
    """:func:`divita.features.extract.extract` on Ray: same outputs, same resumability (see the module docstring).

    ``backbones``: names (the actors load them; None: those of ``settings``). ``settings`` /
    ``options``: the extraction (:class:`ExtractionSettings`) and the cluster (:class:`RayOptions`); ``keywords``:
    fields of either by name, applied over them (TypeError for a keyword that is neither). The cluster's:
    ``address``: None/"local" (a new local Ray instance), "auto" or a cluster address. ``encoders``: encoder
    actors (default: one per GPU of the cluster, else 1), each with ``encoder_gpus`` GPUs (default 1 when the
    cluster has GPUs, else 0: fractions share a GPU) and ``encoder_cpus`` CPUs; encoders run on CUDA exactly
    when they get a GPU share. ``prepare_cpus``/``prepare_gpus``: resources of each prepare task (TransNetV2
    runs on CUDA when ``prepare_gpus`` > 0). ``in_flight``: videos in the pipeline at once (default: the
    prepare tasks that fit next to the encoders, plus one per encoder). ``chunk_window``: unanswered batches per
    video; ``retries``: resubmissions of a video after a Ray failure. Video paths must be readable at the same
    path on every node (a shared filesystem); ``out_dir`` (a directory, an fsspec URL with ``storage_options``,
    or a ready :class:`FeatureOutput`) only by the driver. ``on_event(kind, data)``: "actors" (the actor
    handles), "committed" (id), "retry" ((id, reason)), "failed" ((path, reason)). Returns the run's
    :class:`~divita.features.run.ExtractSummary`.
    """
    require_ray()
    cluster = {f.name for f in fields(RayOptions)}
    options = replace(options or RayOptions(), **{k: keywords.pop(k) for k in list(keywords) if k in cluster})
    settings = ExtractionSettings.build(backbones, settings, **keywords).require_backbones()
    settings.shot_detector("cpu")  # its values checked before Ray starts; the driver builds it where it runs
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


__all__ = ["extract_ray"]
