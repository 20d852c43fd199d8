"""Trailer videos -> clip features: decode once, detect shots, cut clips, encode with every backbone, store.

:func:`process_video` handles one video (the function ``predict`` reuses): a decode thread feeds a bounded
queue with chunks of frames at every size the run needs (one decode for all stages and backbones), the
calling thread pushes the 48x27 frames to the shot detector's stream and, as soon as a shot's clips are
certain, encodes them in batches with each backbone and frees the frames no later clip needs. Memory does not
grow with the video's length (about 800 frames at the backbone sizes at most).

:func:`extract` runs :func:`process_video` over many videos and writes, per backbone, a zarr v3 store in the
release layout (``OUT/trailers_{prefix}_{name}_fps{fps}_fpc{fpc}.zarr``: one float32 (clips, features)
array per video id = file stem, group attributes ``num_features`` and ``extraction``), plus
``OUT/shots/<id>.json`` (shots, clips, seconds), ``OUT/videos.csv`` (one row per finished video) and
``OUT/failures.csv`` (video, reason) for the videos that could not be used. A video's arrays are committed
atomically; a rerun skips videos present in every requested store, recomputes the missing ones and cleans up
what a killed run left behind. With ``labels`` it also writes ``OUT/mtgc.csv`` so ``divita train --data-dir
OUT`` can train on the result. Its keywords make one :class:`~divita.features.plan.ExtractionSettings` (checked
once, recorded in every store); every file goes through a :class:`~divita.features.outputs.FeatureOutput`, and
:class:`ExtractionRun` keeps the books (stores, failures, commits) that the Ray driver shares.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from divita.clips import ClipStream, clip_frame_indices
from divita.errors import DivitaError
from divita.features.outputs import (  # noqa: F401 - FailureLog ... write_labels: their home before features.outputs
    FAILURES_FILE,
    SHOTS_DIR,
    VIDEOS_FILE,
    FailureLog,
    FeatureOutput,
    is_url,
    make_splits,
    open_output,
    write_labels,
    write_videos_csv,
)
from divita.features.plan import ExtractionSettings
from divita.shots import TRANSNET_SIZE, ShotDetector, Span, shots_from_gaps, spans_to_seconds
from divita.video import OutputSize, VideoDecoder, VideoError, find_videos

MAX_ASPECT = 8.0  # wider (or taller) than this: no sensible centre crop, recorded as a failure
CHUNK_FRAMES = 24  # frames per decode-queue item
QUEUE_CHUNKS = 12  # bounded decode queue (12 x 24 frames, ~125 MB at 455x256 + 228x128)


# ------------------------------------------------------------------------------------------ frame buffer


class FrameBuffer:
    """Frames ``[start, end)`` of one size, held as chunks; frames before a point can be dropped."""

    def __init__(self):
        self.chunks: list[tuple[int, np.ndarray]] = []  # (first index, (n, H, W, 3))
        self.end = 0

    def append(self, frames: np.ndarray) -> None:
        self.chunks.append((self.end, frames))
        self.end += len(frames)

    @property
    def start(self) -> int:
        return self.chunks[0][0] if self.chunks else self.end

    def drop_before(self, index: int) -> None:
        while self.chunks and self.chunks[0][0] + len(self.chunks[0][1]) <= index:
            self.chunks.pop(0)

    def take(self, indices: Sequence[int]) -> np.ndarray:
        """Frames at ``indices`` (uint8 (len, H, W, 3))."""
        out = []
        ci = 0
        for i in indices:
            if i < self.start or i >= self.end:
                raise IndexError(f"frame {i} is not held (buffer has [{self.start}, {self.end}))")
            # chunks are sorted; indices are mostly increasing
            if not (self.chunks[ci][0] <= i < self.chunks[ci][0] + len(self.chunks[ci][1])):
                ci = next(k for k, (s, c) in enumerate(self.chunks) if s <= i < s + len(c))
            s, c = self.chunks[ci]
            out.append(c[i - s])
        return np.stack(out)


# ------------------------------------------------------------------------------------------ one video


@dataclass
class VideoResult:
    """What :func:`process_video` found and computed for one video."""

    path: str
    fps: float
    num_frames: int
    shots: list[Span]
    clips: list[Span]
    features: dict[str, np.ndarray]  # backbone name -> (clips, num_features) float32
    info: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)

    def clip_seconds(self) -> list[list[float]]:
        """``[start_s, end_s]`` of each clip, end exclusive (``clips`` are inclusive frame spans)."""
        return spans_to_seconds(self.clips, self.fps)

    def shot_seconds(self) -> list[list[float]]:
        """``[start_s, end_s]`` of each shot, end exclusive (``shots`` are inclusive frame spans)."""
        return spans_to_seconds(self.shots, self.fps)

    def record(self) -> dict:
        """JSON-able summary (shots/<id>.json; units in docs/outputs.md)."""
        return {
            "video": self.path,
            "fps": self.fps,
            "num_frames": self.num_frames,
            "shots": [list(s) for s in self.shots],
            "shot_seconds": self.shot_seconds(),
            "clips": [list(c) for c in self.clips],
            "clip_seconds": self.clip_seconds(),
            **self.info,
        }


def _encoder_frames(encoder, fpc: int) -> list[int] | None:
    """Positions (within a clip of ``fpc`` frames) the encoder actually looks at, when it says so, so only
    those frames are gathered; None = pass all ``fpc`` frames."""
    try:
        from divita.backbones import sample_frame_indices
    except ImportError:
        return None
    spec = getattr(encoder, "spec", None)
    kind = getattr(spec, "kind", None)
    n = getattr(encoder, "clip_frames", None) if kind == "3d" else getattr(encoder, "frames_per_clip_2d", None)
    if not isinstance(n, int) or n < 1:
        return None
    idx = sample_frame_indices(fpc, n)
    # sampling again inside encode() must be the identity on these frames
    if sample_frame_indices(len(idx), n) != list(range(n)):
        return None
    return idx


def _side_key(side: int | None) -> str:
    return f"side{side}" if side else "native"


def _decode_thread(decoder: VideoDecoder, q: queue.Queue, stop: threading.Event) -> None:
    """Put chunks {name: (n, H, W, 3)} on ``q``, then None; an exception is put as itself."""
    try:
        buf: dict[str, list[np.ndarray]] = {}
        count = 0
        for frames in decoder:
            if stop.is_set():
                return
            for k, v in frames.items():
                buf.setdefault(k, []).append(v)
            count += 1
            if count == CHUNK_FRAMES:
                q.put({k: np.stack(v) for k, v in buf.items()})
                buf, count = {}, 0
        if count:
            q.put({k: np.stack(v) for k, v in buf.items()})
        q.put(None)
    except BaseException as e:  # handed to the consumer
        q.put(e)


def process_video(
    path: str | os.PathLike,
    encoders: Sequence[Any],
    detector: ShotDetector,
    fps: float = 24.0,
    fpc: int = 24,
    min_clip_frames: int | None = None,
    batch_size: int = 16,
    decode_threads: int = 0,
    on_frames: Callable[[int], None] | None = None,
) -> VideoResult:
    """Decode ``path`` once and return its shots, clips and each encoder's clip features.

    ``encoders``: objects with ``spec.name``, ``min_side`` and ``encode(uint8 (B, T, H, W, 3)) -> (B, F)``.
    Raises :class:`VideoError` for unusable videos.
    """
    t_start = time.perf_counter()
    sides = sorted({int(getattr(e, "min_side", 0) or 0) for e in encoders})
    outputs: dict[str, OutputSize] = {_side_key(s): OutputSize(min_side=s or None) for s in sides}
    needs_small = detector.looks_at_frames
    if needs_small:
        outputs["small"] = OutputSize(exact=TRANSNET_SIZE)
    if not outputs:
        outputs["small"] = OutputSize(exact=TRANSNET_SIZE)
    decoder = VideoDecoder(path, fps, outputs, threads=decode_threads)
    info = decoder.info
    aspect = max(info.width, info.height) / max(1, min(info.width, info.height))
    if aspect > MAX_ASPECT:
        raise VideoError(
            path, f"extreme aspect ratio {info.width}x{info.height} (over {MAX_ASPECT:g}:1): no sensible centre crop"
        )

    stream = detector.stream()
    clip_stream = ClipStream(fpc, min_clip_frames)
    buffers = {_side_key(s): FrameBuffer() for s in sides}
    head: dict[str, np.ndarray] = {}  # first fpc frames per side, for the fallback clip
    positions = {id(e): _encoder_frames(e, fpc) for e in encoders}
    pending: list[Span] = []
    done_clips: list[Span] = []
    feats: dict[str, list[np.ndarray]] = {e.spec.name: [] for e in encoders}
    t_encode = 0.0

    def encode(clips: list[Span]) -> None:
        nonlocal t_encode
        if not clips:
            return
        t0 = time.perf_counter()
        for e in encoders:
            key = _side_key(int(getattr(e, "min_side", 0) or 0))
            pos = positions[id(e)]
            batch = []
            for c in clips:
                idx = clip_frame_indices(c, fpc)
                if pos is not None:
                    idx = [idx[p] for p in pos]
                if c[1] < fpc and c[0] == 0 and key in head and buffers[key].start > 0:
                    batch.append(head[key][idx])
                else:
                    batch.append(buffers[key].take(idx))
            x = np.stack(batch)
            out = e.encode(x)
            out = out.detach().cpu().numpy() if hasattr(out, "detach") else np.asarray(out)
            feats[e.spec.name].append(np.asarray(out, dtype=np.float32).reshape(len(clips), -1))
        done_clips.extend(clips)
        t_encode += time.perf_counter() - t0

    q: queue.Queue = queue.Queue(maxsize=QUEUE_CHUNKS)
    stop = threading.Event()
    th = threading.Thread(target=_decode_thread, args=(decoder, q, stop), daemon=True, name="divita-decode")
    th.start()
    n = 0
    try:
        while True:
            item = q.get()
            if item is None:
                break
            if isinstance(item, BaseException):
                raise item
            m = len(next(iter(item.values())))
            for key, buf in buffers.items():
                buf.append(item[key])
                if n < fpc:
                    have = head.get(key)
                    add = item[key][: fpc - n]
                    head[key] = add.copy() if have is None else np.concatenate([have, add])
            stream.push(item["small"] if "small" in item else np.zeros((m, 1, 1, 3), np.uint8))
            n += m
            if on_frames:
                on_frames(m)
            pending.extend(clip_stream.update(stream))
            while len(pending) >= batch_size:
                encode(pending[:batch_size])
                del pending[:batch_size]
            keep = min([c[0] for c in pending] + [max(0, stream.final - fpc)])
            for buf in buffers.values():
                buf.drop_before(keep)
    finally:
        stop.set()
        while th.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                th.join(timeout=0.05)
    stream.finish(n)
    shots = shots_from_gaps(stream.gaps, n)
    pending.extend(clip_stream.finish(stream, n))
    for i in range(0, len(pending), batch_size):
        encode(pending[i : i + batch_size])
    order = sorted(range(len(done_clips)), key=lambda i: done_clips[i])
    clips = [done_clips[i] for i in order]
    features = {}
    for name, parts in feats.items():
        x = np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
        features[name] = x[order] if len(x) else x
        if len(x) and not np.isfinite(x).all():
            raise VideoError(path, f"backbone {name} produced NaN/inf features")
    wall = time.perf_counter() - t_start
    return VideoResult(
        path=str(path),
        fps=float(fps),
        num_frames=n,
        shots=shots,
        clips=clips,
        features=features,
        info={
            "width": info.width,
            "height": info.height,
            "rotation": info.rotation,
            "source_fps": round(info.fps, 4),
            "source_frames": decoder.stats.source_frames,
            "duration": round(decoder.stats.duration, 4),
        },
        timings={"wall": wall, "encode": t_encode},
    )


# ------------------------------------------------------------------------------------------ the batch


@dataclass
class ExtractSummary:
    out_dir: str
    stores: dict[str, str]  # backbone -> store path
    done: list[str] = field(default_factory=list)  # ids extracted in this run
    skipped: list[str] = field(default_factory=list)  # ids already complete
    failed: dict[str, str] = field(default_factory=dict)  # video path -> reason
    frames: int = 0
    seconds: float = 0.0
    labels: str | None = None

    @property
    def ok(self) -> bool:
        return not self.failed


def load_encoders(
    backbones: Sequence[Any],
    weights: str = "default",
    device: str = "cpu",
    precision: str = "auto",
    frames_per_clip_2d: int = 3,
) -> list:
    """Backbone names (or ready encoder objects, passed through) -> ClipEncoders."""
    out = []
    for b in backbones:
        if isinstance(b, str):
            from divita.backbones import load_encoder

            out.append(
                load_encoder(
                    b, weights=weights, device=device, precision=precision, frames_per_clip_2d=frames_per_clip_2d
                )
            )
        else:
            out.append(b)
    names = [e.spec.name for e in out]
    if len(set(names)) != len(names):
        raise DivitaError(None, f"backbone listed twice: {', '.join(names)}")
    return out


def describe_encoder(encoder: Any) -> dict:
    """What a driver needs to know of a loaded encoder: its store (prefix, width, ``settings()``) and the frames it
    reads (kind, decode side, frames per clip)."""
    spec = encoder.spec
    return {
        "kind": getattr(spec, "kind", None),
        "num_features": int(spec.num_features),
        "store_prefix": spec.store_prefix,
        "min_side": int(getattr(encoder, "min_side", 0) or 0),
        "clip_frames": getattr(encoder, "clip_frames", None),
        "frames_per_clip_2d": getattr(encoder, "frames_per_clip_2d", None),
        "settings": encoder.settings(),
    }


def video_ids(videos: Sequence[Path]) -> tuple[list[tuple[str, Path]], dict[str, str]]:
    """(id, path) per video (id = file stem), and failures for ids already taken by an earlier input."""
    seen: dict[str, Path] = {}
    ok, dup = [], {}
    for p in videos:
        mid = p.stem
        if mid in seen:
            dup[str(p)] = f"duplicate video id {mid!r} (same file stem as {seen[mid]}); rename one of them"
            continue
        seen[mid] = p
        ok.append((mid, p))
    return ok, dup


class ExtractionRun:
    """What the local and the Ray drivers share: the run's stores, ``failures.csv``, each finished video's commit,
    and ``videos.csv`` / ``mtgc.csv`` at the end, all written through one :class:`FeatureOutput`. A driver calls
    :meth:`create_stores`, then :meth:`pending`, then :meth:`commit` or :meth:`fail` per video, then :meth:`finish`."""

    def __init__(self, settings: ExtractionSettings, output: FeatureOutput, log: Callable[[str], None]):
        self.settings, self.output, self.log = settings, output, log
        self.store_names: dict[str, str] = {}  # backbone -> store name inside the output
        self.summary = ExtractSummary(str(output), {})
        self.failures: FailureLog | None = None
        self.total = 0  # videos with a usable id
        self.stopped_by: OSError | None = None  # the fault of the output that ended the batch

    def create_stores(self, encoders: dict[str, dict], detector_params: dict) -> None:
        """Create (or check) one store per backbone; ``encoders``: backbone -> :func:`describe_encoder`."""
        for name in self.settings.names:
            d = encoders[name]
            store = self.settings.store_name(d["store_prefix"], name)
            self.output.create_store(store, d["num_features"], self.settings.extraction(d["settings"], detector_params))
            self.store_names[name] = store
        self.summary.stores = {n: self.output.store(s) for n, s in self.store_names.items()}

    def pending(self, videos: Sequence[Path]) -> list[tuple[str, Path, list[str]]]:
        """(id, path, backbones whose store lacks it) per video left to extract, in input order. Records duplicate
        ids as failures, and videos already in every store as skipped (clearing their old failure)."""
        ids, dups = video_ids(videos)
        self.total = len(ids)
        self.failures = self.output.failure_log()
        for v, reason in dups.items():
            self.failures.fail(v, reason)
            self.summary.failed[v] = reason
        have = {n: self.output.committed(s) for n, s in self.store_names.items()}
        jobs = []
        for mid, path in ids:
            todo = [n for n in self.settings.names if mid not in have[n]]
            if todo:
                jobs.append((mid, path, todo))
            else:
                self.summary.skipped.append(mid)
                self.failures.clear(str(path))
        return jobs

    def fail(self, path: str | os.PathLike, reason: str) -> None:
        """Record that the video at ``path`` could not be used."""
        self.summary.failed[str(path)] = reason
        self.log(f"divita extract: {path}: {reason}")
        try:
            self.failures.fail(str(path), reason)
        except OSError as e:
            raise self.stopped(e) from e

    def commit(self, mid: str, result: VideoResult, names: Sequence[str]) -> None:
        """Write ``shots/<id>.json``, then the arrays of backbones ``names`` (each atomically). A full disk or
        an unwritable output ends the batch: DivitaError saying how many videos were committed."""
        record = result.record()
        try:
            self.output.write_shots(mid, record)
            attrs = self.settings.array_attrs(record, result.path)
            self.output.commit(mid, {self.store_names[n]: (result.features[n], attrs) for n in names})
            self.summary.done.append(mid)
            self.summary.frames += result.num_frames
            self.failures.clear(result.path)
        except OSError as e:
            raise self.stopped(e) from e

    def stopped(self, e: OSError) -> Exception:
        """The error that ends the batch when ``e`` is a fault of the output (a full disk, a read-only or
        unwritable directory: every later video would fail the same way), else ``e`` itself."""
        from divita.fileio import is_output_fault, os_error_reason

        if not is_output_fault(e):
            return e
        self.stopped_by = e
        done, complete = len(self.summary.done), len(self.summary.done) + len(self.summary.skipped)
        return DivitaError(
            e.filename or str(self.output),
            f"{os_error_reason(e)}; extraction stopped with {done} video(s) committed in this run, "
            f"{complete} of {self.total} complete (a rerun with room finishes the job)",
        )

    def finish(self) -> None:
        """``videos.csv`` for the videos now complete in every store (also after an interrupted run; after a
        full disk stopped the batch, a failure to write it is left to the rerun)."""
        try:
            self.output.write_videos_csv(list(self.store_names.values()))
        except OSError:
            if self.stopped_by is None:
                raise

    def write_labels(self, labels: str | os.PathLike, seed: int) -> None:
        self.summary.labels = self.output.write_labels(labels, list(self.store_names.values()), seed, self.log)


def extract(
    inputs: Sequence[str | os.PathLike],
    backbones: Sequence[Any],
    out_dir: str | os.PathLike,
    *,
    weights: str = "default",
    fps: float = 24.0,
    fpc: int = 24,
    min_clip_frames: int | None = None,
    detector: ShotDetector | str = "transnetv2",
    threshold: float = 0.5,
    content_threshold: float = 27.0,
    device: str = "auto",
    precision: str = "auto",
    frames_per_clip_2d: int = 3,
    batch_size: int = 16,
    threads: int | None = None,
    decode_threads: int = 0,
    labels: str | os.PathLike | None = None,
    split_seed: int = 0,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> ExtractSummary:
    """Extract clip features of every video in ``inputs`` (files or directories) with every backbone.

    The extraction keywords make an :class:`ExtractionSettings` (checked before anything is loaded); see
    :func:`run_extraction` for the rest.
    """
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
    return run_extraction(
        inputs,
        settings,
        out_dir,
        device=device,
        threads=threads,
        decode_threads=decode_threads,
        labels=labels,
        split_seed=split_seed,
        progress=progress,
        log=log,
    )


def run_extraction(
    inputs: Sequence[str | os.PathLike],
    settings: ExtractionSettings,
    out_dir: str | os.PathLike | FeatureOutput,
    *,
    device: str = "auto",
    threads: int | None = None,
    decode_threads: int = 0,
    labels: str | os.PathLike | None = None,
    split_seed: int = 0,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> ExtractSummary:
    """:func:`extract` in this process, with the extraction given as ``settings``.

    ``out_dir``: a directory, or a ready :class:`FeatureOutput` (an output URL is written by
    :func:`divita.distributed.extract.extract_ray`). ``device``: where the backbones and TransNetV2 run ("auto":
    CUDA when there is one). ``threads``: torch threads; ``decode_threads``: FFmpeg's. ``labels``: a labels CSV
    to write ``mtgc.csv`` from (splits seeded by ``split_seed`` when it has none).
    """
    import torch

    log = log or (lambda s: print(s, file=sys.stderr))
    if not isinstance(out_dir, FeatureOutput) and is_url(out_dir):
        raise DivitaError(str(out_dir), "an output URL needs --ray (the local path writes to a directory)")
    output = open_output(out_dir)
    videos = find_videos(inputs)
    if not videos:
        raise DivitaError(None, "no video files found in the inputs")
    output.prepare()
    if str(device) == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if threads:
        torch.set_num_threads(int(threads))
    detector = settings.detector
    if isinstance(detector, str):
        detector = ShotDetector(
            detector,
            threshold=settings.threshold,
            content_threshold=settings.content_threshold,
            device=device,
            precision=settings.precision,
            fps=settings.fps,
            segment_frames=settings.fpc,
        )
    detector.load()
    encoders = load_encoders(
        settings.backbones, settings.weights, device, settings.precision, settings.frames_per_clip_2d
    )
    by_name = {e.spec.name: e for e in encoders}

    from divita.features.store import check_array_id

    run = ExtractionRun(settings, output, log)
    run.create_stores({n: describe_encoder(e) for n, e in by_name.items()}, detector.params())
    jobs = run.pending(videos)
    summary = run.summary

    bar_videos = bar_frames = None
    if progress:
        from tqdm import tqdm

        bar_videos = tqdm(
            total=run.total, initial=len(summary.skipped), desc="videos", unit="video", position=0, dynamic_ncols=True
        )
        bar_frames = tqdm(desc="frames", unit="frame", position=1, dynamic_ncols=True, smoothing=0.1)
    t0 = time.perf_counter()
    try:
        for mid, path, names in jobs:
            try:
                check_array_id(mid)
                result = process_video(
                    path,
                    [by_name[n] for n in names],
                    detector,
                    fps=settings.fps,
                    fpc=settings.fpc,
                    min_clip_frames=settings.min_clip_frames,
                    batch_size=settings.batch_size,
                    decode_threads=decode_threads,
                    on_frames=(bar_frames.update if bar_frames is not None else None),
                )
            except (VideoError, DivitaError) as err:
                run.fail(path, err.problem)
            except Exception as err:  # a bug or an odd file we did not foresee: record it and go on
                if os.environ.get("DIVITA_DEBUG"):
                    raise
                run.fail(path, f"{type(err).__name__}: {err}".splitlines()[0][:300])
                log(traceback.format_exc(limit=3))
            else:
                run.commit(mid, result, names)
            if bar_videos is not None:
                bar_videos.update(1)
    finally:
        if bar_frames is not None:
            bar_frames.close()
        if bar_videos is not None:
            bar_videos.close()
        summary.seconds = time.perf_counter() - t0
        run.finish()
    if labels is not None:
        run.write_labels(labels, split_seed)
    return summary


def format_summary(s: ExtractSummary) -> str:
    lines = [
        f"extracted {len(s.done)} video(s), skipped {len(s.skipped)} already done, {len(s.failed)} failed"
        + (
            f"; {s.frames} frames in {s.seconds:.1f} s ({s.frames / s.seconds:.0f} frames/s)"
            if s.seconds > 0 and s.frames
            else ""
        ),
    ]
    for name, p in s.stores.items():
        lines.append(f"  {name}: {p}")
    if s.failed:
        lines.append(f"  failures ({Path(s.out_dir) / FAILURES_FILE}):")
        for v, r in list(s.failed.items())[:20]:
            lines.append(f"    {v}: {r}")
        if len(s.failed) > 20:
            lines.append(f"    ... and {len(s.failed) - 20} more")
    if s.labels:
        lines.append(f"  labels: {s.labels}")
    return "\n".join(lines)


__all__ = [
    "ExtractSummary",
    "ExtractionRun",
    "ExtractionSettings",
    "FrameBuffer",
    "VideoResult",
    "describe_encoder",
    "extract",
    "format_summary",
    "load_encoders",
    "make_splits",
    "process_video",
    "run_extraction",
    "write_labels",
]
