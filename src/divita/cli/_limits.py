"""``--max-duration`` and ``--max-pixels``: the video limits of any command that decodes videos.

A command adds them with one call in its ``add_parser``, in place of ``p.set_defaults(func=run)``::

    add_limit_options(p, run)                     # divita predict: no limits unless given
    add_limit_options(p, run, max_duration="15m", max_pixels="3840x2160")   # divita serve's defaults

``run(args)`` then runs with :func:`divita.video.video_limits` in effect, so that every ``VideoDecoder`` it
makes in its own thread obeys them; code that decodes in other processes or threads passes
``limits_from_args(args)`` to them. Nothing here imports torch (the parser is built without it).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float | None:
    """``"900"``, ``"900s"``, ``"15m"``, ``"1.5h"`` -> seconds; ``"none"`` -> None. Raises ValueError."""
    t = str(text).strip().lower()
    if t in ("none", "off", "0"):
        return None
    m = re.fullmatch(r"([0-9]*\.?[0-9]+)\s*(s|m|min|h)?", t)
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"expected seconds or a number with s, m or h (e.g. 15m), got {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2) or ""]


def parse_pixels(text: str) -> tuple[int | None, str | None]:
    """``"3840x2160"`` -> (8294400, "3840x2160"); ``"8294400"`` -> (8294400, None); ``"none"`` -> (None, None).
    Raises ValueError."""
    t = str(text).strip().lower()
    if t in ("none", "off", "0"):
        return None, None
    m = re.fullmatch(r"([0-9]+)\s*x\s*([0-9]+)", t)
    if m and int(m.group(1)) > 0 and int(m.group(2)) > 0:
        return int(m.group(1)) * int(m.group(2)), f"{int(m.group(1))}x{int(m.group(2))}"
    if t.isdigit() and int(t) > 0:
        return int(t), None
    raise ValueError(f"expected WIDTHxHEIGHT (e.g. 3840x2160) or a number of pixels, got {text!r}")


def add_limit_options(
    parser, run: Callable | None = None, max_duration: str | None = None, max_pixels: str | None = None
) -> None:
    """Add ``--max-duration`` and ``--max-pixels`` (defaults as given: None = no limit) to ``parser``; with
    ``run``, set the command's ``func`` to ``run`` called under the limits (:func:`run_with_limits`)."""
    shown_d = f"default {max_duration}" if max_duration else "default: none"
    shown_p = f"default {max_pixels}" if max_pixels else "default: none"
    parser.add_argument(
        "--max-duration",
        default=max_duration,
        metavar="SECONDS",
        help="refuse videos longer than this (seconds, or e.g. 15m, 2h; 'none': no limit): by their metadata "
        f"before decoding, and while decoding when the metadata lies ({shown_d})",
    )
    parser.add_argument(
        "--max-pixels",
        default=max_pixels,
        metavar="WxH",
        help=f"refuse videos whose frames have more pixels than WIDTHxHEIGHT (or a pixel count; 'none') ({shown_p})",
    )
    if run is not None:
        parser.set_defaults(func=run_with_limits(run))


def limits_from_args(args):
    """The :class:`divita.video.VideoLimits` of parsed arguments (None when neither limit is set).
    Raises DivitaError on a malformed value."""
    from divita.errors import DivitaError
    from divita.video.limits import VideoLimits

    try:
        duration = parse_duration(args.max_duration) if args.max_duration is not None else None
    except ValueError as e:
        raise DivitaError(None, f"--max-duration: {e}") from None
    try:
        pixels, label = parse_pixels(args.max_pixels) if args.max_pixels is not None else (None, None)
    except ValueError as e:
        raise DivitaError(None, f"--max-pixels: {e}") from None
    limits = VideoLimits(max_duration=duration, max_pixels=pixels, pixels_label=label)
    return limits or None


def run_with_limits(run: Callable) -> Callable:
    """``run(args)`` with the arguments' limits in effect for every decoder made in its thread."""

    @functools.wraps(run)
    def limited(args):
        from divita.video.limits import video_limits

        with video_limits(limits_from_args(args)):
            return run(args)

    return limited
