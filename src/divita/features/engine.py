"""The per-video engine: one video -> its shots, clips and every encoder's clip features (:func:`process_video`).

A decode thread feeds a bounded queue with chunks of frames at every size the run needs (one decode for all
stages and backbones), the calling thread pushes the 48x27 frames to the shot detector's stream and, as soon as
a shot's clips are certain, encodes them in batches with each backbone and frees the frames no later clip needs.
Memory does not grow with the video's length (about 800 frames at the backbone sizes at most). The local driver
(:func:`divita.features.extract.extract`), the Ray prepare tasks (:mod:`divita.distributed.workers`),
``divita shots`` and ``divita predict`` all run it.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from divita.clips import ClipStream, clip_frame_indices
from divita.errors import DivitaError
from divita.features.plan import ExtractionSettings
from divita.shots import TRANSNET_SIZE, ShotDetector, Span, shots_from_gaps, spans_to_seconds
from divita.video import OutputSize, VideoDecoder, VideoError

MAX_ASPECT = 8.0  # wider (or taller) than this: no sensible centre crop, recorded as a failure
CHUNK_FRAMES = 24  # frames per decode-queue item
QUEUE_CHUNKS = 12  # bounded decode queue (12 x 24 frames, ~125 MB at 455x256 + 228x128)
DEFAULT = ExtractionSettings()  # the defaults of the keywords below: the settings' own


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


class DecodeFeed:
    """One video decoded by a thread into a bounded queue of chunks ``{output name: uint8 (n, H, W, 3)}``.

    Built (and started) by :func:`process_video`, or ahead of it, e.g. while a checkpoint's networks load
    (:func:`divita.inference.early.prefetch`); hand it to :func:`process_video` as ``feed``.

    Args:
        path: the video.
        fps: output frame rate.
        outputs: output name -> :class:`OutputSize` (the names :func:`decode_outputs` gives).
        threads: FFmpeg decoder threads (0 = one per core).
        max_frames: frames held in the queue at most (decoding waits beyond).

    Raises:
        VideoError: an unusable video (from the constructor when its header says so, else from :meth:`chunks`).
    """

    def __init__(
        self, path, fps: float, outputs: dict[str, OutputSize], threads: int = 0, max_frames: int | None = None
    ):
        self.path = str(path)
        self.fps = float(fps)
        self.outputs = dict(outputs)
        self.threads = int(threads)
        self.decoder = VideoDecoder(path, fps, outputs, threads=threads)
        chunks = max(QUEUE_CHUNKS, -(-int(max_frames or 0) // CHUNK_FRAMES))
        self.queue: queue.Queue = queue.Queue(maxsize=chunks)
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=_decode_thread, args=(self.decoder, self.queue, self.stop), daemon=True, name="divita-decode"
        )
        self.started = False

    def start(self) -> DecodeFeed:
        """Start decoding (once); returns self."""
        if not self.started:
            self.started = True
            self.thread.start()
        return self

    def fits(self, path, fps: float, outputs: dict[str, OutputSize], threads: int) -> bool:
        """Whether this feed decodes what :func:`process_video` was asked for."""
        return (str(path), float(fps), dict(outputs), int(threads)) == (self.path, self.fps, self.outputs, self.threads)

    def close(self) -> None:
        """Stop decoding and wait for the thread (unblocking it when the queue is full)."""
        self.stop.set()
        while self.thread.is_alive():
            try:
                self.queue.get_nowait()
            except queue.Empty:
                self.thread.join(timeout=0.05)


def decode_outputs(sides: Sequence[int], needs_small: bool) -> dict[str, OutputSize]:
    """The decoder outputs of a run: one per backbone decode side (0 = native size), and TransNetV2's 48x27
    frames when the shot detector looks at frames (or when there is nothing else to decode)."""
    outputs: dict[str, OutputSize] = {_side_key(s): OutputSize(min_side=s or None) for s in sorted(set(sides))}
    if needs_small or not outputs:
        outputs["small"] = OutputSize(exact=TRANSNET_SIZE)
    return outputs


class _InferenceThreads:
    """Torch's intra-op threads while the decode thread is busy (``while_decoding``; default: torch's own count)
    and torch's own count while it waits on a full queue or is done. Fewer threads while decoding (two thread pools
    on the same cores wait on each other at every parallel region's barrier) measured slower end to end on a quiet
    2-core machine (1.29x the wall time of `divita predict` with one thread fewer), so it is opt-in."""

    def __init__(self, while_decoding: int | None):
        self.torch = sys.modules.get("torch")
        self.all = self.fewer = self.now = 0
        if self.torch is None:
            return
        self.all = self.now = self.torch.get_num_threads()
        self.fewer = self.all if while_decoding is None else max(1, int(while_decoding))

    def decoding(self, busy: bool) -> None:
        """Set the threads for the next inference: ``busy`` = the decode thread has work to do."""
        want = self.fewer if busy else self.all
        if self.torch is not None and want != self.now:
            self.torch.set_num_threads(want)
            self.now = want

    def restore(self) -> None:
        self.decoding(False)


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
    fps: float = DEFAULT.fps,
    fpc: int = DEFAULT.fpc,
    min_clip_frames: int | None = DEFAULT.min_clip_frames,
    batch_size: int = DEFAULT.batch_size,
    decode_threads: int = 0,
    on_frames: Callable[[int], None] | None = None,
    feed: DecodeFeed | None = None,
    inference_threads: int | None = None,
    on_decoded: Callable[[], None] | None = None,
) -> VideoResult:
    """Decode ``path`` once and return its shots, clips and each encoder's clip features.

    ``encoders``: objects with ``spec.name``, ``min_side`` and ``encode(uint8 (B, T, H, W, 3)) -> (B, F)``.
    ``feed``: this video's decoding already started (:class:`DecodeFeed`); used when it decodes what this run
    needs, else closed and a new one started. ``inference_threads``: torch's intra-op threads while the video is
    still decoding (default: torch's own count; torch's own count again after).
    ``on_decoded()`` is called once the last frame is in (e.g. to start decoding the next video while this one's
    last clips are encoded).
    Raises :class:`VideoError` for unusable videos.
    """
    t_start = time.perf_counter()
    sides = sorted({int(getattr(e, "min_side", 0) or 0) for e in encoders})
    outputs = decode_outputs(sides, detector.looks_at_frames)
    if feed is not None and not feed.fits(path, fps, outputs, decode_threads):
        feed.close()
        feed = None
    if feed is None:
        feed = DecodeFeed(path, fps, outputs, threads=decode_threads)
    decoder = feed.decoder
    info = decoder.info
    aspect = max(info.width, info.height) / max(1, min(info.width, info.height))
    if aspect > MAX_ASPECT:
        feed.close()
        raise VideoError(
            path, f"extreme aspect ratio {info.width}x{info.height} (over {MAX_ASPECT:g}:1): no sensible centre crop"
        )

    try:
        stream = detector.stream()
    except BaseException:
        feed.close()
        raise
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

    q = feed.start().queue
    threads = _InferenceThreads(inference_threads)
    n = 0
    t_wait = 0.0
    try:
        while True:
            t0 = time.perf_counter()
            threads.decoding(busy=not q.full())  # a full queue: the decoder waits, its core is free
            item = q.get()
            t_wait += time.perf_counter() - t0
            if item is None:
                threads.restore()
                if on_decoded is not None:
                    on_decoded()
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
        threads.restore()
        feed.close()
    t_decoded = time.perf_counter() - t_start
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
        timings={"wall": wall, "encode": t_encode, "decoded": t_decoded, "decode_wait": t_wait},
    )


def load_encoders(
    backbones: Sequence[Any],
    weights: str = DEFAULT.weights,
    device: str = "cpu",
    precision: str = DEFAULT.precision,
    frames_per_clip_2d: int = DEFAULT.frames_per_clip_2d,
    runtime: str = DEFAULT.runtime,
) -> list:
    """Backbone names (or ready encoder objects, passed through) -> ClipEncoders (run by ``runtime``)."""
    out = []
    for b in backbones:
        if isinstance(b, str):
            from divita.backbones import load_encoder

            out.append(
                load_encoder(
                    b,
                    weights=weights,
                    device=device,
                    precision=precision,
                    frames_per_clip_2d=frames_per_clip_2d,
                    runtime=runtime,
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


__all__ = [
    "DecodeFeed",
    "FrameBuffer",
    "VideoResult",
    "decode_outputs",
    "describe_encoder",
    "load_encoders",
    "process_video",
]
