"""SMPTE timecode at a video's own frame rate, and the mapping between the run's resampled frames and the
video's own (native) frames.

Timecode counts frames at the *nominal* rate (24 for 23.976, 30 for 29.97, ...): ``HH:MM:SS:FF``,
non-drop-frame for every rate but 29.97 and 59.94, which are drop-frame (``HH:MM:SS;FF``: frame numbers 0-1,
resp. 0-3, are skipped at the start of every minute except every tenth, so the timecode keeps up with the clock).

Native frames: the decoder (:mod:`divita.video.decode`) shows at output frame ``k`` (time ``k / fps``) the
source frame nearest in time, ties to the later one, i.e. native frame ``floor(k * rate / fps + 1/2)``;
:func:`to_native` maps spans that way and :func:`from_native` back (exact when ``rate >= fps``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from fractions import Fraction

Span = tuple[int, int]
NTSC_NOMINAL = (24, 30, 48, 60, 120)  # nominal rates whose x1000/1001 variants are snapped to exactly
DROP_FRAME_NOMINAL = (30, 60)  # 29.97 and 59.94 use drop-frame timecode
_TIMECODE = re.compile(r"^(\d{2,}):(\d{2}):(\d{2})([:;.,])(\d{2,3})$")


def video_rate(fps: float | Fraction) -> Fraction:
    """A frame rate as an exact fraction: 29.97 (or 29.9700) -> 30000/1001, 25.0 -> 25, 12.5 -> 25/2.

    Args:
        fps: frames per second as a container declares it (a float, possibly rounded).

    Returns:
        Fraction: ``n * 1000/1001`` for the NTSC rates (23.976, 29.97, 47.952, 59.94, 119.88) when ``fps`` is
        within 0.002 of one, else ``fps`` itself (limited to a denominator of 1001).

    Raises:
        ValueError: for a rate that is not positive and finite.
    """
    f = float(fps)
    if not math.isfinite(f) or f <= 0:
        raise ValueError(f"frame rate must be positive, got {fps!r}")
    for nominal in NTSC_NOMINAL:
        ntsc = Fraction(nominal * 1000, 1001)
        if abs(f - float(ntsc)) < 0.002:
            return ntsc
    return Fraction(fps).limit_denominator(1001)


def nominal_rate(rate: Fraction) -> int:
    """The frames per timecode second: the rate rounded (30 for 29.97), at least 1."""
    return max(1, round(rate))


def is_drop_frame(rate: Fraction) -> bool:
    """True for 29.97 and 59.94 (30000/1001, 60000/1001): drop-frame timecode."""
    return rate.denominator == 1001 and rate.numerator // 1000 in DROP_FRAME_NOMINAL


def frames_to_timecode(frame: int, rate: Fraction) -> str:
    """A 0-based frame count -> ``HH:MM:SS:FF`` (``HH:MM:SS;FF`` drop-frame for 29.97 and 59.94).

    Args:
        frame: frames from 00:00:00:00 (>= 0).
        rate: the video's rate (:func:`video_rate`).

    Returns:
        str: the timecode; hours keep counting past 23.
    """
    if frame < 0:
        raise ValueError(f"negative frame {frame}")
    base = nominal_rate(rate)
    sep = ":"
    if is_drop_frame(rate):
        sep = ";"
        drop = base // 15  # 2 at 29.97, 4 at 59.94
        per_10_minutes = base * 600 - drop * 9
        per_minute = base * 60 - drop
        tens, rest = divmod(frame, per_10_minutes)
        frame += drop * 9 * tens + (drop * ((rest - drop) // per_minute) if rest > drop else 0)
    ff = frame % base
    ss = frame // base % 60
    mm = frame // (base * 60) % 60
    hh = frame // (base * 3600)
    return f"{hh:02d}:{mm:02d}:{ss:02d}{sep}{ff:02d}"


def timecode_to_frames(timecode: str, rate: Fraction) -> int:
    """``HH:MM:SS:FF`` (or ``;``/``.``/``,`` before the frames) -> 0-based frame count, inverse of
    :func:`frames_to_timecode`. Drop-frame counting applies at 29.97 and 59.94 whatever the separator.

    Raises:
        ValueError: a malformed timecode, a frame field at or over the nominal rate, or a frame number that
            drop-frame timecode skips.
    """
    m = _TIMECODE.match(timecode.strip())
    if not m:
        raise ValueError(f"malformed timecode {timecode!r} (expected HH:MM:SS:FF)")
    hh, mm, ss, _, ff = m.groups()
    hh, mm, ss, ff = int(hh), int(mm), int(ss), int(ff)
    base = nominal_rate(rate)
    if mm >= 60 or ss >= 60 or ff >= base:
        raise ValueError(f"timecode {timecode!r} out of range at {float(rate):g} fps")
    frames = (hh * 3600 + mm * 60 + ss) * base + ff
    if is_drop_frame(rate):
        drop = base // 15
        if ss == 0 and ff < drop and mm % 10:
            raise ValueError(f"timecode {timecode!r} does not exist in drop-frame counting")
        minutes = hh * 60 + mm
        frames -= drop * (minutes - minutes // 10)
    return frames


def _nearest_native(k: int, fps: Fraction, rate: Fraction) -> int:
    """The native frame the decoder shows at output frame ``k``: ``floor(k * rate / fps + 1/2)``."""
    return math.floor(Fraction(k) * rate / fps + Fraction(1, 2))


def to_native(spans: Sequence[Sequence[int]], fps: float, rate: Fraction) -> list[Span]:
    """Inclusive spans at the run's rate -> inclusive spans of the video's own frames, through their times.

    A shot ``(s, e)`` covers ``[s / fps, (e + 1) / fps)``: its native frames are those the decoder shows at
    output frames ``s`` and ``e + 1`` (exclusive), at least one frame.

    Args:
        spans: 0-based inclusive ``(start, end)`` at ``fps``.
        fps: the run's (resampled) rate.
        rate: the video's own rate (:func:`video_rate`).

    Returns:
        list of 0-based inclusive ``(start, end)`` native frame spans.
    """
    f = Fraction(fps).limit_denominator(1001)
    out = []
    for s, e in spans:
        a = _nearest_native(int(s), f, rate)
        b = max(a + 1, _nearest_native(int(e) + 1, f, rate))
        out.append((a, b - 1))
    return out


def from_native(spans: Sequence[Sequence[int]], rate: Fraction, fps: float) -> list[Span]:
    """Inclusive native frame spans -> inclusive spans at ``fps`` (the inverse of :func:`to_native`, exact
    when ``rate >= fps``; from a slower video the nearest frames).

    Args:
        spans: 0-based inclusive native ``(start, end)``.
        rate: the video's own rate.
        fps: the rate to count at (the run's ``--fps``).

    Returns:
        list of 0-based inclusive ``(start, end)`` at ``fps``.
    """
    f = Fraction(fps).limit_denominator(1001)
    out = []
    for s, e in spans:
        a = math.floor(Fraction(int(s)) * f / rate + Fraction(1, 2))
        b = max(a + 1, math.floor(Fraction(int(e) + 1) * f / rate + Fraction(1, 2)))
        out.append((a, b - 1))
    return out
