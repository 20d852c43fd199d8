"""Limits on the videos a run will decode: how long (seconds of video) and how large (pixels per frame).

A video over a limit by its container's metadata is refused before decoding (:meth:`VideoLimits.check_info`);
one whose metadata lies is stopped while decoding, at the first frame past a limit
(:meth:`VideoLimits.check_frame`, called by :class:`divita.video.VideoDecoder` for every decoded frame).

Limits travel explicitly (``VideoDecoder(..., limits=...)``) or, for code that builds its decoders deep down
(feature extraction), as the limits in effect in the calling thread::

    with video_limits(VideoLimits(max_duration=900, max_pixels=3840 * 2160)):
        classifier.predict("trailer.mp4")      # every VideoDecoder made inside obeys them
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from divita.errors import DivitaError

_ACTIVE: contextvars.ContextVar[VideoLimits | None] = contextvars.ContextVar("divita_video_limits", default=None)


class VideoLimitError(DivitaError):
    """A video over a :class:`VideoLimits` limit; ``limit`` names it (``"--max-duration"``, ``"--max-pixels"``)."""

    exit_code = 1

    def __init__(self, path, problem: str, limit: str):
        super().__init__(path, problem)
        self.limit = limit


def format_seconds(s: float) -> str:
    """``"15 min"``, ``"10 h"``, ``"1 h 30 min"``, ``"45 s"``, ``"2.5 s"``: a duration as a limit reads."""
    if s >= 3600:
        h, m = divmod(round(s / 60), 60)
        return f"{h} h" + (f" {m} min" if m else "")
    if s >= 60 and abs(s / 60 - round(s / 60)) < 1e-9:
        return f"{round(s / 60)} min"
    return f"{s:g} s" if s >= 10 else f"{s:.3g} s"


@dataclass(frozen=True)
class VideoLimits:
    """The longest video (``max_duration``, seconds) and the largest frame (``max_pixels``, width x height)
    a run decodes; None = no limit. ``pixels_label`` is how ``max_pixels`` was given (``"3840x2160"``)."""

    max_duration: float | None = None
    max_pixels: int | None = None
    pixels_label: str | None = None

    def __post_init__(self):
        if self.max_duration is not None and not self.max_duration > 0:
            raise DivitaError(None, f"--max-duration must be positive, got {self.max_duration}")
        if self.max_pixels is not None and self.max_pixels < 1:
            raise DivitaError(None, f"--max-pixels must be positive, got {self.max_pixels}")

    def __bool__(self) -> bool:
        return self.max_duration is not None or self.max_pixels is not None

    def _pixels(self) -> str:
        return self.pixels_label or f"{self.max_pixels} pixels"

    def check_info(self, info) -> None:
        """Refuse a video by what its container declares (:class:`divita.video.VideoInfo`).

        Raises VideoLimitError naming the limit."""
        self.check_size(info.path, info.coded_width, info.coded_height)
        if self.max_duration is not None and info.duration > self.max_duration:
            raise VideoLimitError(
                info.path,
                f"{format_seconds(info.duration)} of video is over the limit of {format_seconds(self.max_duration)} "
                "(--max-duration)",
                "--max-duration",
            )

    def check_size(self, path: str, width: int, height: int) -> None:
        """Refuse frames of ``width`` x ``height`` as the stream's header declares them (before any decoding).

        Raises VideoLimitError naming the limit."""
        if self.max_pixels is not None and width * height > self.max_pixels:
            raise VideoLimitError(
                path,
                f"frames of {width}x{height} are over the limit of {self._pixels()} (--max-pixels)",
                "--max-pixels",
            )

    def check_frame(self, path: str, elapsed: float, width: int, height: int, declared: float) -> None:
        """Stop decoding at a frame ``elapsed`` seconds after the first one, of ``width`` x ``height`` coded
        pixels, when it passes a limit the container's metadata (``declared`` seconds) did not show.

        Raises VideoLimitError naming the limit."""
        if self.max_pixels is not None and width * height > self.max_pixels:
            raise VideoLimitError(
                path,
                f"decoding stopped: a frame of {width}x{height} is over the limit of {self._pixels()} (--max-pixels)",
                "--max-pixels",
            )
        if self.max_duration is not None and elapsed > self.max_duration:
            raise VideoLimitError(
                path,
                f"decoding stopped at {format_seconds(elapsed)}: over the limit of "
                f"{format_seconds(self.max_duration)} (--max-duration; the container declares "
                f"{format_seconds(declared) if declared > 0 else 'no duration'})",
                "--max-duration",
            )


def active_limits() -> VideoLimits | None:
    """The limits in effect in this thread (set by :func:`video_limits`), or None."""
    return _ACTIVE.get()


@contextmanager
def video_limits(limits: VideoLimits | None) -> Iterator[VideoLimits | None]:
    """Every :class:`divita.video.VideoDecoder` made in this thread inside the block obeys ``limits``
    (None: the limits in effect outside, if any)."""
    if limits is None:
        yield _ACTIVE.get()
        return
    token = _ACTIVE.set(limits)
    try:
        yield limits
    finally:
        _ACTIVE.reset(token)
