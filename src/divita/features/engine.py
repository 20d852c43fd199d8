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


__all__ = ["FrameBuffer", "VideoResult", "describe_encoder", "load_encoders", "process_video"]
