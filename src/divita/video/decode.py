"""Decoding videos into frames at a fixed rate (PyAV, threaded), resized on decode.

Frames are resampled to the output rate by *timestamps*, not by counting: output frame ``k`` is the source
frame nearest in time to ``k / fps`` (measured from the first frame; ties go to the later frame), so
variable-frame-rate files and 23.976/25/30/60 fps sources all give frames that are 1/fps apart in real
time. A source faster than the output rate drops frames, a slower one repeats them. The number of output frames
is ``round(duration * fps)`` (at least 1), duration = last timestamp + last frame's duration.

Each decoded frame that is used is converted to RGB once, by libswscale, at the largest size any consumer
asked for (area filter, shorter side = the largest ``min_side``, aspect kept, display aspect ratio and
rotation metadata applied); smaller outputs (another backbone's side, TransNetV2's 48x27) are area-resized
from that with OpenCV. Decoding never upscales: a source smaller than ``min_side`` is delivered at its own
size (the encoders resize it themselves). The scaled conversion asks libswscale for planar RGB (``gbrp``),
whose output stage is about twice as fast as packed ``rgb24``'s, when a probe frame of the video's pixel format
and size (random content) shows the two give the same pixels; otherwise it asks for ``rgb24``. Either way the
frames are the ones ``rgb24`` gives.

``threads`` are FFmpeg's decoder threads (frame and slice threading; 0 = one per core).

Unusable inputs raise :class:`VideoError` (a :class:`DivitaError`) with a short reason: missing, empty,
not a media file, no video stream (audio only), no decodable frame, truncated.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from divita.errors import DivitaError
from divita.video.limits import VideoLimits, active_limits

VIDEO_EXTENSIONS = (
    ".mp4",
    ".m4v",
    ".mov",
    ".mkv",
    ".webm",
    ".avi",
    ".mpg",
    ".mpeg",
    ".ts",
    ".m2ts",
    ".mts",
    ".wmv",
    ".flv",
    ".3gp",
    ".ogv",
    ".gif",
)
DEFAULT_FPS = 24.0
TRUNCATION_TOLERANCE = 0.9  # decoded duration below this fraction of the declared one (and 1 s short) = truncated


class VideoError(DivitaError):
    """A video that cannot be used; ``problem`` is the reason recorded in failures.csv."""

    exit_code = 1


@dataclass(frozen=True)
class OutputSize:
    """One frame size a consumer wants: shorter side ``min_side`` (aspect kept, never upscaled), or an
    exact ``(width, height)`` (aspect ignored, e.g. TransNetV2's 48x27)."""

    min_side: int | None = None
    exact: tuple[int, int] | None = None

    def resolve(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of this output for a display size ``width`` x ``height``."""
        if self.exact is not None:
            return self.exact
        if self.min_side is None or min(width, height) <= self.min_side:
            return width, height
        if width <= height:
            return self.min_side, max(1, int(round(height * self.min_side / width)))
        return max(1, int(round(width * self.min_side / height))), self.min_side


@dataclass
class VideoInfo:
    """What the container says about a video (before decoding it)."""

    path: str
    width: int  # display width (sample aspect ratio and rotation applied)
    height: int  # display height
    coded_width: int
    coded_height: int
    rotation: int  # degrees counter-clockwise to apply for display (0, 90, 180, 270)
    sample_aspect_ratio: float
    fps: float  # average frame rate the container declares (0 if unknown)
    duration: float  # seconds the container declares (0 if unknown)
    codec: str
    has_audio: bool
    extra: dict = field(default_factory=dict)

    def frames_at(self, fps: float) -> int:
        """Expected number of output frames at ``fps`` (from the declared duration)."""
        return max(1, int(round(self.duration * fps))) if self.duration > 0 else 0


@dataclass
class DecodeStats:
    """What decoding found: filled in while the iterator runs, final once it is exhausted."""

    source_frames: int = 0  # frames the decoder produced
    output_frames: int = 0  # frames yielded at the output rate
    duration: float = 0.0  # seconds covered by the decoded frames
    first_time: float = 0.0  # timestamp of the first frame (seconds)


def _open(path: str | os.PathLike):
    import av

    p = Path(path)
    if not p.exists():
        raise VideoError(p, "file not found")
    if p.is_dir():
        raise VideoError(p, "is a directory")
    if p.stat().st_size == 0:
        raise VideoError(p, "empty file (0 bytes)")
    try:
        return av.open(str(p), mode="r", metadata_errors="ignore")
    except av.error.FFmpegError as e:
        raise VideoError(p, f"not a readable media file ({_ffmpeg_reason(e)})") from None
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise VideoError(p, f"not a readable media file ({type(e).__name__}: {e})") from None


def _ffmpeg_reason(e: Exception) -> str:
    s = getattr(e, "strerror", None) or str(e)
    return str(s).split(":")[0].strip() if s else type(e).__name__


def _video_stream(container, path):
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams})
        what = "audio only" if kinds == ["audio"] else ("no streams" if not kinds else f"streams: {', '.join(kinds)}")
        raise VideoError(path, f"no video stream ({what})")
    # the first video stream that is not a cover picture
    for s in container.streams.video:
        if not (s.disposition & _attached_pic()):
            return s
    raise VideoError(path, "no video stream (only an attached cover picture)")


def _attached_pic() -> int:
    try:
        import av

        return int(av.stream.Disposition.attached_pic)
    except (AttributeError, ImportError, TypeError):
        return 1024


def _rotation_of(value) -> int:
    try:
        r = int(round(float(value or 0) / 90.0)) * 90
    except (TypeError, ValueError):
        return 0
    return r % 360


def _stream_rotation(stream) -> int:
    """Rotation from the legacy "rotate" tag (clockwise degrees); decoded frames carry the display matrix
    (:attr:`av.VideoFrame.rotation`, counter-clockwise), which takes precedence."""
    tag = (stream.metadata or {}).get("rotate")
    try:
        return _rotation_of(-float(tag)) if tag is not None else 0
    except ValueError:
        return 0


def _first_frame_rotation(container, stream) -> int:
    """The display-matrix rotation carried by the first decoded frame (0 when none or undecodable)."""
    try:
        for frame in container.decode(stream):
            return _rotation_of(getattr(frame, "rotation", 0))
    except Exception:  # noqa: BLE001 - probing only; decoding errors surface later with a reason
        return 0
    return 0


def planar_rgb_is_exact(frame, width: int, height: int) -> bool:
    """Whether scaling ``frame``'s pixel format, size and colour setup to ``width`` x ``height`` gives the same
    pixels as planar ``gbrp`` as it does as packed ``rgb24`` (area filter), on a probe frame of random content."""
    import av

    try:
        probe = av.VideoFrame(frame.width, frame.height, frame.format.name)
        rng = np.random.default_rng(0)
        for plane in probe.planes:
            plane.update(rng.integers(0, 256, plane.buffer_size, dtype=np.uint8).tobytes())
        for attr in ("colorspace", "color_range"):
            if hasattr(frame, attr):
                setattr(probe, attr, getattr(frame, attr))
        packed = probe.to_ndarray(format="rgb24", width=width, height=height, interpolation="AREA")
        planar = probe.to_ndarray(format="gbrp", width=width, height=height, interpolation="AREA")
    except (av.error.FFmpegError, ValueError, TypeError, AttributeError):
        return False
    return packed.shape == planar.shape and bool((packed == planar).all())


def _display_size(w: int, h: int, sar: float, rotation: int) -> tuple[int, int]:
    if sar and abs(sar - 1.0) > 1e-3:
        w = max(1, int(round(w * sar)))
    if rotation in (90, 270):
        w, h = h, w
    return w, h


def probe_video(path: str | os.PathLike, limits: VideoLimits | None = None) -> VideoInfo:
    """Open a video and read its header. Raises :class:`VideoError` with a reason when it is unusable, and
    :class:`divita.video.limits.VideoLimitError` when it is over ``limits`` (its frame size is checked before
    the first frame is decoded)."""
    with _open(path) as container:
        stream = _video_stream(container, path)
        cc = stream.codec_context
        w, h = int(cc.width or 0), int(cc.height or 0)
        if w <= 0 or h <= 0:
            raise VideoError(path, f"video stream has no frame size ({w}x{h})")
        if limits:
            limits.check_size(str(path), w, h)
        sar = float(stream.sample_aspect_ratio) if stream.sample_aspect_ratio else 1.0
        rotation = _stream_rotation(stream) or _first_frame_rotation(container, stream)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        duration = 0.0
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / 1_000_000
        dw, dh = _display_size(w, h, sar, rotation)
        info = VideoInfo(
            path=str(path),
            width=dw,
            height=dh,
            coded_width=w,
            coded_height=h,
            rotation=rotation,
            sample_aspect_ratio=sar,
            fps=fps,
            duration=max(0.0, duration),
            codec=cc.name or "",
            has_audio=bool(container.streams.audio),
        )
    if limits:
        limits.check_info(info)
    return info


class VideoDecoder:
    """Iterate the frames of one video at ``fps``, each as a dict ``{output name: uint8 (H, W, 3) RGB}``.

    ``outputs`` maps names to :class:`OutputSize`. ``threads``: decoder threads (0 = FFmpeg's choice).
    ``limits``: the longest and largest video decoded (default: the limits in effect in the calling thread,
    :func:`divita.video.limits.video_limits`); a video over one by its metadata raises
    :class:`divita.video.limits.VideoLimitError` here, one whose metadata lies raises it from the iteration.
    After iteration, :attr:`stats` holds the counts; :attr:`info` is available from the start.
    Raises :class:`VideoError` (no frames, decode error, truncated file) from the iteration.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float = DEFAULT_FPS,
        outputs: Mapping[str, OutputSize] | None = None,
        threads: int = 0,
        check_truncation: bool = True,
        limits: VideoLimits | None = None,
    ):
        if not fps or fps <= 0 or not math.isfinite(fps):
            raise DivitaError(None, f"fps must be a positive number, got {fps!r}")
        self.path = str(path)
        self.fps = float(fps)
        self.outputs = dict(outputs or {"frame": OutputSize()})
        self.threads = int(threads)
        self.check_truncation = check_truncation
        self.limits = limits if limits is not None else active_limits()
        self.info = probe_video(path, self.limits)
        self.stats = DecodeStats()
        self.sizes: dict[str, tuple[int, int]] = {}
        self._format_key: tuple | None = None
        self._format = "rgb24"

    # -- conversion -----------------------------------------------------------------------------------
    def _plan(self, rotation: int, sar: float, coded_w: int, coded_h: int):
        """The swscale target (coded orientation) and the per-output (width, height) in display orientation."""
        dw, dh = _display_size(coded_w, coded_h, sar, rotation)
        sizes = {name: o.resolve(dw, dh) for name, o in self.outputs.items()}
        # primary = the largest output by area (all others are derived from it)
        primary = max(sizes, key=lambda n: sizes[n][0] * sizes[n][1])
        pw, ph = sizes[primary]
        if rotation in (90, 270):
            pw, ph = ph, pw
        self.sizes = sizes
        return primary, (pw, ph)

    def _convert(self, frame, primary: str, target: tuple[int, int], rotation: int) -> dict[str, np.ndarray]:
        import cv2

        pw, ph = target
        if frame.width == pw and frame.height == ph:
            img = frame.to_ndarray(format="rgb24")
        else:
            img = frame.to_ndarray(format=self._scaled_format(frame, pw, ph), width=pw, height=ph, interpolation="AREA")
        if rotation:
            img = np.ascontiguousarray(np.rot90(img, k=rotation // 90))
        out = {primary: img}
        for name, (w, h) in self.sizes.items():
            if name == primary:
                continue
            if (w, h) == (img.shape[1], img.shape[0]):
                out[name] = img
            else:
                out[name] = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
        return out

    def _scaled_format(self, frame, width: int, height: int) -> str:
        """``"gbrp"`` when libswscale's planar RGB gives the same pixels as ``rgb24`` for this source format, size
        and colour setup (checked once per video on a random probe frame), else ``"rgb24"``."""
        key = (frame.format.name, frame.width, frame.height, width, height)
        if self._format_key != key:
            self._format_key = key
            self._format = "gbrp" if planar_rgb_is_exact(frame, width, height) else "rgb24"
        return self._format

    # -- iteration ------------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        import av

        container = _open(self.path)
        try:
            stream = _video_stream(container, self.path)
            stream.thread_type = "AUTO"
            if self.threads > 0:
                stream.codec_context.thread_count = self.threads
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            src_step = 1.0 / float(rate) if rate else 1.0 / self.fps
            fps = self.fps
            plan = None
            prev = None  # (frame, time) waiting for the next frame's time
            k = 0  # next output frame index
            last_dur = src_step
            t_prev = None
            converted = None  # (frame id, outputs) cache for repeated frames
            try:
                frames = container.decode(stream)
                for frame in frames:
                    self.stats.source_frames += 1
                    t = frame.time
                    if t is None:
                        t = (t_prev + src_step) if t_prev is not None else 0.0
                    if t_prev is not None and t <= t_prev:
                        t = t_prev + 1e-6  # non-increasing timestamps: keep the order
                    if frame.duration and frame.time_base:
                        last_dur = float(frame.duration * frame.time_base)
                    elif t_prev is not None:
                        last_dur = t - t_prev
                    if self.limits:
                        elapsed = t - (self.stats.first_time if plan is not None else t)
                        self.limits.check_frame(self.path, elapsed, frame.width, frame.height, self.info.duration)
                    if plan is None:
                        self.stats.first_time = t
                        sar = (
                            float(frame.sample_aspect_ratio)
                            if getattr(frame, "sample_aspect_ratio", None)
                            else self.info.sample_aspect_ratio
                        )
                        rotation = _rotation_of(getattr(frame, "rotation", 0)) or self.info.rotation
                        plan = self._plan(rotation, sar or 1.0, frame.width, frame.height) + (rotation,)
                    if prev is not None:
                        # prev covers output times in [prev_mid, mid)
                        mid = 0.5 * (prev[1] + t) - self.stats.first_time
                        while k / fps < mid - 1e-9:
                            if converted is None or converted[0] is not prev[0]:
                                converted = (prev[0], self._convert(prev[0], plan[0], plan[1], plan[2]))
                            yield converted[1]
                            k += 1
                    prev = (frame, t)
                    t_prev = t
            except av.error.FFmpegError as e:
                if self.stats.source_frames == 0:
                    raise VideoError(self.path, f"no decodable video frame ({_ffmpeg_reason(e)})") from None
                raise VideoError(
                    self.path,
                    f"decoding failed after {self.stats.source_frames} frames ({_ffmpeg_reason(e)}): "
                    "corrupt or truncated",
                ) from None
            if prev is None:
                raise VideoError(self.path, "no decodable video frame (zero frames)")
            duration = prev[1] - self.stats.first_time + max(last_dur, 0.0)
            self.stats.duration = duration
            total = max(1, int(round(duration * fps)), k)
            while k < total:
                if converted is None or converted[0] is not prev[0]:
                    converted = (prev[0], self._convert(prev[0], plan[0], plan[1], plan[2]))
                yield converted[1]
                k += 1
            self.stats.output_frames = k
            declared = self.info.duration
            if (
                self.check_truncation
                and declared > 0
                and duration < TRUNCATION_TOLERANCE * declared
                and declared - duration > 1.0
            ):
                raise VideoError(
                    self.path,
                    f"truncated or corrupt: decoded {duration:.2f} s of the {declared:.2f} s the container declares",
                )
        finally:
            container.close()


def decode_video(
    path: str | os.PathLike,
    fps: float = DEFAULT_FPS,
    min_side: int | None = None,
    size: tuple[int, int] | None = None,
    threads: int = 0,
) -> Iterator[np.ndarray]:
    """Frames of ``path`` at ``fps`` as uint8 (H, W, 3) RGB: shorter side ``min_side`` (never upscaled), or
    exactly ``size`` = (width, height), or the display size when neither is given."""
    out = OutputSize(exact=tuple(size)) if size is not None else OutputSize(min_side=min_side)
    for frames in VideoDecoder(path, fps, {"frame": out}, threads=threads):
        yield frames["frame"]


def read_frames(
    path: str | os.PathLike, fps: float = DEFAULT_FPS, min_side: int | None = None, size: tuple[int, int] | None = None
) -> np.ndarray:
    """All frames of a (short) video as one uint8 array (N, H, W, 3)."""
    frames = list(decode_video(path, fps, min_side=min_side, size=size))
    return np.stack(frames)


def find_videos(inputs, recursive: bool = True) -> list[Path]:
    """Expand files and directories into a sorted list of video files (directories: by extension)."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            it = p.rglob("*") if recursive else p.iterdir()
            out.extend(
                sorted(
                    f for f in it if f.is_file() and f.suffix.lower() in VIDEO_EXTENSIONS and not f.name.startswith(".")
                )
            )
        else:
            out.append(p)
    return out


__all__ = [
    "DEFAULT_FPS",
    "DecodeStats",
    "OutputSize",
    "VIDEO_EXTENSIONS",
    "VideoDecoder",
    "VideoError",
    "VideoInfo",
    "decode_video",
    "find_videos",
    "probe_video",
    "read_frames",
]
