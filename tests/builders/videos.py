"""Small generated test videos (PyAV) with known content, for the video/shots/clips/extract tests and the
extract benchmark.

Every generator writes one file and returns what is known about it (a :class:`Truth`). Content is built
from cheap slices so that even a 60-s 720p video is generated in seconds:

- *shots*: each shot is a crop window panning over its own smooth random colour field with a few moving
  textured rectangles, so consecutive shots differ clearly and each shot has motion;
- *index frames*: frame ``i`` is a flat colour that encodes ``i`` (robust to compression), so a test can
  read back which source frame a decoded (resampled) frame came from.

Transitions between shots: ``"cut"`` (hard cut), ``"dissolve"``, ``"black"`` (fade to black and back),
``"white"`` (dip to white and back). Truth frame indices are source-frame indices at the video's rate.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# ------------------------------------------------------------------------------------------- writing


def write_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: float | Fraction = 24,
    codec: str = "libx264",
    pts: Sequence[float] | None = None,
    rotation: int | None = None,
    audio_seconds: float = 0.0,
    options: dict | None = None,
    faststart: bool = False,
) -> Path:
    """Encode uint8 (H, W, 3) RGB frames. ``pts``: per-frame times in seconds (variable frame rate);
    ``rotation``: display rotation in degrees written as stream metadata (display matrix);
    ``audio_seconds``: add a silent-ish AAC track of that length."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(fps).limit_denominator(1001) if not isinstance(fps, Fraction) else fps
    container_opts = {"movflags": "faststart"} if faststart else {}
    frames = iter(frames)
    first = next(frames, None)
    with av.open(str(path), mode="w", options=container_opts) as out:
        stream = out.add_stream(codec, rate=rate)
        h, w = first.shape[:2] if first is not None else (64, 64)
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "ultrafast", "crf": "18", **(options or {})}
        elif options:
            stream.options = dict(options)
        if pts is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
            stream.time_base = Fraction(1, 1000)
        if rotation:
            stream.set_display_rotation(rotation)
        astream = None
        if audio_seconds > 0:
            astream = out.add_stream("aac", rate=44100)
            astream.layout = "mono"
        i = 0
        img = first
        while img is not None:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            if pts is not None:
                frame.pts = int(round(pts[i] * 1000))
                frame.time_base = Fraction(1, 1000)
            else:
                frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
            i += 1
            img = next(frames, None)
        for packet in stream.encode():
            out.mux(packet)
        if astream is not None:
            _write_audio(out, astream, audio_seconds)
    return path


def _write_audio(out, astream, seconds: float) -> None:
    rate = 44100
    n = int(seconds * rate)
    t = np.arange(n) / rate
    samples = (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    for start in range(0, n, 1024):
        chunk = samples[start : start + 1024][None]
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
        frame.sample_rate = rate
        frame.pts = start
        for packet in astream.encode(frame):
            out.mux(packet)
    for packet in astream.encode():
        out.mux(packet)


def write_audio_only(path: str | Path, seconds: float = 2.0) -> Path:
    path = Path(path)
    with av.open(str(path), mode="w") as out:
        astream = out.add_stream("aac", rate=44100)
        astream.layout = "mono"
        _write_audio(out, astream, seconds)
    return path


def write_no_frames(path: str | Path, size=(64, 48)) -> Path:
    """A Matroska file with a video track that holds no frame (and an audio track that does)."""
    path = Path(path)
    with av.open(str(path), mode="w", format="matroska") as out:
        stream = out.add_stream("mpeg4", rate=24)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        astream = out.add_stream("aac", rate=44100)
        astream.layout = "mono"
        _write_audio(out, astream, 1.0)
    return path


def write_truncated(path: str | Path, source: str | Path, keep: float = 0.5) -> Path:
    data = Path(source).read_bytes()
    Path(path).write_bytes(data[: int(len(data) * keep)])
    return Path(path)


def write_empty(path: str | Path) -> Path:
    Path(path).write_bytes(b"")
    return Path(path)


def write_text(path: str | Path) -> Path:
    Path(path).write_text("this is not a video\n" * 20)
    return Path(path)


# ------------------------------------------------------------------------------------------- content


def _smooth_field(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth random colour field with some texture, uint8 (h, w, 3)."""
    import cv2

    low = rng.integers(0, 256, (3, 5, 3)).astype(np.float32)
    base = cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    f1, f2 = rng.uniform(0.05, 0.25, 2)
    stripes = 30 * np.sin(f1 * xx + f2 * yy + rng.uniform(0, 6.3))
    img = base + stripes[..., None] * rng.uniform(0.3, 1.0, 3)
    return np.clip(img, 0, 255).astype(np.uint8)


@dataclass
class Shot:
    frames: int
    seed: int


class ShotRenderer:
    """Renders the frames of one shot: a panning crop over a smooth field plus moving rectangles."""

    def __init__(self, seed: int, h: int, w: int, frames: int):
        rng = np.random.default_rng(seed)
        self.h, self.w, self.n = h, w, max(1, frames)
        pan = max(8, w // 4)
        self.field = _smooth_field(rng, h + pan, w + pan)
        self.pan = pan
        self.dir = rng.uniform(-1, 1, 2)
        self.rects = []
        for _ in range(3):
            rh, rw = max(2, int(h * rng.uniform(0.1, 0.3))), max(2, int(w * rng.uniform(0.1, 0.3)))
            colour = rng.integers(0, 256, 3).astype(np.uint8)
            y0, x0 = rng.uniform(0, h - rh), rng.uniform(0, w - rw)
            vy, vx = rng.uniform(-1.5, 1.5, 2) * max(1, h / 90)
            self.rects.append((rh, rw, colour, y0, x0, vy, vx))

    def frame(self, t: int) -> np.ndarray:
        p = self.pan
        frac = t / self.n
        oy = int(round((0.5 + 0.5 * self.dir[0] * (frac - 0.5)) * p))
        ox = int(round((0.5 + 0.5 * self.dir[1] * (frac - 0.5)) * p))
        oy, ox = min(max(oy, 0), p), min(max(ox, 0), p)
        img = self.field[oy : oy + self.h, ox : ox + self.w].copy()
        for rh, rw, colour, y0, x0, vy, vx in self.rects:
            y = int(y0 + vy * t) % max(1, self.h - rh)
            x = int(x0 + vx * t) % max(1, self.w - rw)
            img[y : y + rh, x : x + rw] = colour
            img[y : y + rh : 2, x : x + rw] //= 2
        return img


@dataclass
class Truth:
    path: Path
    fps: float
    num_frames: int
    width: int
    height: int
    cuts: list[int] = field(default_factory=list)  # hard cuts: first frame of the new shot
    transitions: list[tuple[str, int, int]] = field(
        default_factory=list
    )  # (kind, first, last) frame of each transition
    shot_starts: list[int] = field(default_factory=list)

    def boundaries(self) -> list[tuple[str, int, int]]:
        """Every transition as (kind, first, last); a hard cut at c is ("cut", c - 1, c)."""
        out = [("cut", c - 1, c) for c in self.cuts] + list(self.transitions)
        return sorted(out, key=lambda b: b[1])


def shots_video(
    path: str | Path,
    shots: Sequence[int],
    transitions: Sequence[str] | None = None,
    size: tuple[int, int] = (160, 90),
    fps: float | Fraction = 24,
    transition_frames: int = 12,
    seed: int = 0,
    codec: str = "libx264",
    **write_kw,
) -> Truth:
    """A video of ``len(shots)`` shots of the given lengths (frames), joined by ``transitions``
    (one per junction: "cut", "dissolve", "black", "white"; default all cuts). A gradual transition
    takes ``transition_frames`` frames *in addition to* the two shots' frames; for "black"/"white" half of
    them fade out, half fade in."""
    w, h = size
    transitions = list(transitions or ["cut"] * (len(shots) - 1))
    assert len(transitions) == len(shots) - 1
    renderers = [ShotRenderer(seed * 1000 + i, h, w, n + transition_frames) for i, n in enumerate(shots)]
    frames: list[np.ndarray] = []
    truth = Truth(Path(path), float(fps), 0, w, h)
    for i, n in enumerate(shots):
        if i > 0:
            kind = transitions[i - 1]
            prev, cur = renderers[i - 1], renderers[i]
            k = transition_frames
            t_prev = shots[i - 1]
            if kind == "cut":
                truth.cuts.append(len(frames))
            elif kind == "dissolve":
                first = len(frames)
                for j in range(k):
                    a = (j + 1) / (k + 1)
                    mix = (1 - a) * prev.frame(t_prev + j).astype(np.float32) + a * cur.frame(j).astype(np.float32)
                    frames.append(mix.round().astype(np.uint8))
                truth.transitions.append((kind, first, len(frames) - 1))
            elif kind in ("black", "white"):
                first = len(frames)
                level = 0.0 if kind == "black" else 255.0
                half = k // 2
                for j in range(half):
                    a = (j + 1) / half
                    img = (1 - a) * prev.frame(t_prev + j).astype(np.float32) + a * level
                    frames.append(img.round().astype(np.uint8))
                for j in range(k - half):
                    a = 1 - j / (k - half)
                    img = (1 - a) * cur.frame(j).astype(np.float32) + a * level
                    frames.append(img.round().astype(np.uint8))
                truth.transitions.append((kind, first, len(frames) - 1))
            else:
                raise ValueError(kind)
        truth.shot_starts.append(len(frames))
        offset = transition_frames if i > 0 and transitions[i - 1] != "cut" else 0
        for t in range(n):
            frames.append(renderers[i].frame(t + offset))
    truth.num_frames = len(frames)
    write_video(path, frames, fps=fps, codec=codec, **write_kw)
    return truth


def cuts_video(path: str | Path, shots: Sequence[int] = (30, 40, 26, 34), **kw) -> Truth:
    """Hard cuts only."""
    return shots_video(path, shots, ["cut"] * (len(shots) - 1), **kw)


def streamed_shots_video(
    path: str | Path, seconds: float = 60, size=(1280, 720), fps: float = 24, seed: int = 0, mean_shot: float = 2.5
) -> Truth:
    """A long video (e.g. the benchmark's 60-s 720p one) written frame by frame without holding it in memory:
    shots of random length (about ``mean_shot`` s) joined by hard cuts."""
    rng = np.random.default_rng(seed)
    total = int(round(seconds * fps))
    lengths = []
    while sum(lengths) < total:
        lengths.append(int(max(6, rng.exponential(mean_shot * fps))))
    lengths[-1] -= sum(lengths) - total
    if lengths[-1] < 1:
        lengths.pop()
    w, h = size
    truth = Truth(Path(path), float(fps), total, w, h)

    def gen():
        start = 0
        for i, n in enumerate(lengths):
            r = ShotRenderer(seed * 1000 + i, h, w, n)
            if i:
                truth.cuts.append(start)
            truth.shot_starts.append(start)
            for t in range(n):
                yield r.frame(t)
            start += n

    write_video(path, gen(), fps=fps, options={"preset": "veryfast", "crf": "23"})
    return truth


# --------------------------------------------------------------------------------- index frames


def index_colour(i: int) -> np.ndarray:
    """The flat RGB colour that encodes frame index ``i`` (0 <= i < 256)."""
    return np.array([(i % 16) * 16 + 8, (i // 16) * 16 + 8, 128], dtype=np.uint8)


def decode_index(img: np.ndarray) -> int:
    """The frame index encoded in a (possibly resized, compressed) index frame."""
    c = img.reshape(-1, 3)[:, :2].astype(np.float32).mean(0)
    lo = int(np.clip(np.round((c[0] - 8) / 16), 0, 15))
    hi = int(np.clip(np.round((c[1] - 8) / 16), 0, 15))
    return hi * 16 + lo


def index_video(
    path: str | Path,
    num_frames: int = 48,
    fps: float | Fraction = 24,
    size=(64, 36),
    pts: Sequence[float] | None = None,
    **kw,
) -> Truth:
    """Frame i is a flat colour encoding i; ``pts`` gives variable-frame-rate timestamps (seconds)."""
    assert num_frames <= 256
    w, h = size
    frames = (np.broadcast_to(index_colour(i), (h, w, 3)) for i in range(num_frames))
    write_video(
        path,
        frames,
        fps=fps,
        pts=pts,
        codec="libx264",
        options={"crf": "0"} if "options" not in kw else kw.pop("options"),
        **kw,
    )
    return Truth(Path(path), float(fps), num_frames, w, h)


def oriented_video(path: str | Path, size=(96, 64), num_frames: int = 30, rotation: int | None = None, fps=24) -> Truth:
    """A video whose top-left quadrant is red and the rest dark blue, to check orientation after rotation."""
    w, h = size
    img = np.zeros((h, w, 3), np.uint8)
    img[...] = (0, 0, 120)
    img[: h // 2, : w // 2] = (230, 20, 20)
    write_video(path, (img for _ in range(num_frames)), fps=fps, rotation=rotation)
    return Truth(Path(path), float(fps), num_frames, w, h)
