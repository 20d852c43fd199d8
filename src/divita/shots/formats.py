"""Shot lists editors and other tools open: PySceneDetect's scene-list CSV and CMX 3600 EDL, writers and parsers.

Both formats count the video's *own* frames (its native rate, e.g. 25 or 29.97), not the run's resampled ones:
a :class:`ShotList` (the run's spans plus the video's rate) converts through the shots' times
(:func:`divita.shots.timecode.to_native`), and the parsers convert back (:func:`read_shots` with ``fps``).

- CSV: the columns and conventions of ``scenedetect.output.write_scene_list`` (it writes the rows):
  ``Start Frame`` 1-based, ``End Frame`` 1-based inclusive (= 0-based exclusive), ``Length (frames)`` =
  end - start, timecodes ``HH:MM:SS.nnn``, times in seconds (3 decimals) with the end exclusive. No cut-list
  row before the header (``write_scene_list(..., include_cut_list=False)``, ``scenedetect list-scenes
  --skip-cuts``); the parser accepts one.
- EDL: ``TITLE:`` (the video's stem), ``FCM: NON-DROP FRAME`` (``DROP FRAME`` at 29.97 and 59.94), then one cut
  event per shot on reel ``AX``: ``001  AX       V     C        src_in src_out rec_in rec_out``, ``out``
  exclusive as CMX 3600 has it, followed by ``* FROM CLIP NAME: <file name>``. The source timecode starts at
  00:00:00:00 at the video's first frame and the record timecode equals it, so gaps between shots (the frames of
  gradual transitions) stay gaps on the record side.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from divita.errors import DivitaError
from divita.shots.timecode import (
    Span,
    frames_to_timecode,
    from_native,
    is_drop_frame,
    timecode_to_frames,
    to_native,
    video_rate,
)

CSV_COLUMNS = (
    "Scene Number",
    "Start Frame",
    "Start Timecode",
    "Start Time (seconds)",
    "End Frame",
    "End Timecode",
    "End Time (seconds)",
    "Length (frames)",
    "Length (timecode)",
    "Length (seconds)",
)
EDL_REEL = "AX"
FORMATS = ("table", "json", "csv", "edl")
_EDL_EVENT = re.compile(
    r"^\s*(\d+)\s+(\S+)\s+(\S+)\s+(C|D|W\d*|K\w*)\s+(?:\d+\s+)?"
    r"(\d\d+:\d\d:\d\d[:;.,]\d\d)\s+(\d\d+:\d\d:\d\d[:;.,]\d\d)\s+"
    r"(\d\d+:\d\d:\d\d[:;.,]\d\d)\s+(\d\d+:\d\d:\d\d[:;.,]\d\d)\s*$"
)


@dataclass(frozen=True)
class ShotList:
    """The shots of one video as ``divita shots`` found them, with what editors' formats need.

    Attributes:
        video: the video's path.
        fps: the run's (resampled) rate the spans count at.
        num_frames: frames of the video at ``fps``.
        shots: 0-based inclusive ``(start, end)`` frame spans at ``fps``.
        source_fps: the video's own frame rate as its container declares it (0 = unknown: ``fps`` is used).
    """

    video: str
    fps: float
    num_frames: int
    shots: Sequence[Span]
    source_fps: float = 0.0

    @property
    def rate(self) -> Fraction:
        """The video's own rate, exact (:func:`~divita.shots.timecode.video_rate`)."""
        return video_rate(self.source_fps if self.source_fps and self.source_fps > 0 else self.fps)

    def native_shots(self) -> list[Span]:
        """The shots as 0-based inclusive spans of the video's own frames."""
        return to_native(self.shots, self.fps, self.rate)

    def native_frames(self) -> int:
        """The video's length in its own frames."""
        return to_native([(0, max(0, self.num_frames - 1))], self.fps, self.rate)[0][1] + 1


# ------------------------------------------------------------------------------------------------ writing


def csv_text(shots: ShotList) -> str:
    """PySceneDetect's scene list (``scenedetect.output.write_scene_list``) of the shots, in native frames.

    Args:
        shots: the shots of one video.

    Returns:
        str: the CSV, header first, ``\\n`` line ends.
    """
    from scenedetect import FrameTimecode
    from scenedetect.output import write_scene_list

    rate = shots.rate
    scenes = [(FrameTimecode(s, fps=rate), FrameTimecode(e + 1, fps=rate)) for s, e in shots.native_shots()]
    buffer = io.StringIO(newline="")
    write_scene_list(buffer, scenes, include_cut_list=False)
    return buffer.getvalue()


def edl_text(shots: ShotList, title: str | None = None) -> str:
    """A CMX 3600 EDL of the shots: one cut event per shot at the video's own rate and timecode.

    Args:
        shots: the shots of one video.
        title: the ``TITLE:`` line (default the video's file stem; at most 70 characters are kept).

    Returns:
        str: the EDL, ``\\n`` line ends.
    """
    rate = shots.rate
    name = Path(shots.video).name
    title = (title if title is not None else Path(shots.video).stem).replace("\n", " ")[:70]
    lines = [f"TITLE: {title}", f"FCM: {'DROP FRAME' if is_drop_frame(rate) else 'NON-DROP FRAME'}", ""]
    for i, (s, e) in enumerate(shots.native_shots()):
        tc_in, tc_out = frames_to_timecode(s, rate), frames_to_timecode(e + 1, rate)
        lines.append(f"{i + 1:03d}  {EDL_REEL:<8} V     C        {tc_in} {tc_out} {tc_in} {tc_out}")
        lines.append(f"* FROM CLIP NAME: {name}")
        lines.append("")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ parsing


def parse_csv(text: str, fps: float | None = None, where: str | os.PathLike | None = None) -> list[Span]:
    """Shot spans from a PySceneDetect scene-list CSV (ours, or ``scenedetect``'s with or without its cut-list
    row before the header).

    Args:
        text: the CSV.
        fps: count at this rate (e.g. the run's 24), through the rows' times in seconds; None = the file's
            own (native) frame numbers.
        where: the file, for error messages.

    Returns:
        list of 0-based inclusive ``(start, end)`` spans.

    Raises:
        DivitaError: no header with the scene-list columns, or a row that is not numbers where they belong.
    """
    rows = [r for r in csv.reader(io.StringIO(text)) if r and any(c.strip() for c in r)]
    if len(rows) > 1 and "Start Frame" not in {c.strip() for c in rows[0]}:
        rows = rows[1:]  # scenedetect's cut list (timecodes, "Timecode List:" first with a given cut list)
    if not rows or not {"Start Frame", "End Frame"} <= {c.strip() for c in rows[0]}:
        raise DivitaError(where, "not a scene-list CSV: no header with 'Start Frame' and 'End Frame'")
    col = {c.strip(): i for i, c in enumerate(rows[0])}
    timed = {"Start Time (seconds)", "End Time (seconds)"} <= col.keys()
    if fps is not None and not timed:
        raise DivitaError(where, "no 'Start Time (seconds)' and 'End Time (seconds)' columns to count at another rate")
    spans: list[Span] = []
    for n, row in enumerate(rows[1:], start=2):
        try:
            if fps is None:
                start, end = int(row[col["Start Frame"]]) - 1, int(row[col["End Frame"]]) - 1
            else:
                start_s, end_s = float(row[col["Start Time (seconds)"]]), float(row[col["End Time (seconds)"]])
                start = round(start_s * fps)
                end = max(start, round(end_s * fps) - 1)
        except (ValueError, IndexError):
            raise DivitaError(where, f"row {n}: not a scene-list row: {','.join(row)!r}") from None
        if start < 0 or end < start:
            raise DivitaError(where, f"row {n}: frames {start + 1}..{end + 1} are not a span")
        spans.append((start, end))
    return spans


def parse_edl(
    text: str, rate: float | Fraction, fps: float | None = None, where: str | os.PathLike | None = None
) -> list[Span]:
    """Shot spans from a CMX 3600 EDL: the source in/out of each video event (``out`` exclusive); events of
    no length (the outgoing half of a dissolve) are skipped.

    Args:
        text: the EDL.
        rate: the video's frame rate (an EDL does not record it): 24, 25, 29.97, ...
        fps: count at this rate (e.g. the run's 24), through the events' times; None = the video's own frames.
        where: the file, for error messages.

    Returns:
        list of 0-based inclusive ``(start, end)`` spans in event order.

    Raises:
        DivitaError: a malformed timecode, or ``FCM: DROP FRAME`` at a rate without drop-frame timecode.
    """
    exact = video_rate(rate)
    spans: list[Span] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if line.strip().upper() == "FCM: DROP FRAME" and not is_drop_frame(exact):
            raise DivitaError(where, f"line {n}: drop-frame timecode, but the rate is {float(exact):g} fps")
        m = _EDL_EVENT.match(line)
        if not m or "V" not in m.group(3).upper():
            continue
        try:
            start, end = (timecode_to_frames(tc, exact) for tc in m.group(5, 6))
        except ValueError as e:
            raise DivitaError(where, f"line {n}: {e}") from None
        if end > start:
            spans.append((start, end - 1))
    return spans if fps is None else from_native(spans, exact, fps)


def read_shots(path: str | os.PathLike, rate: float | Fraction | None = None, fps: float | None = None) -> list[Span]:
    """Shot spans from a ``.csv`` (PySceneDetect scene list) or ``.edl`` (CMX 3600) file.

    Args:
        path: the file; its suffix picks the format.
        rate: the video's frame rate, needed for an EDL (:func:`divita.video.probe_video` gives it).
        fps: count at this rate (the run's ``--fps``) instead of the video's own frames.

    Returns:
        list of 0-based inclusive ``(start, end)`` spans.

    Raises:
        DivitaError: an unreadable or malformed file, another suffix, an EDL without ``rate``.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".csv", ".edl"):
        raise DivitaError(p, "not a shot list: expected a .csv or .edl file")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise DivitaError(p, "not a text file") from None
    except OSError as e:
        from divita.fileio import os_error_reason

        raise DivitaError(p, os_error_reason(e)) from None
    if suffix == ".csv":
        return parse_csv(text, fps=fps, where=p)
    if rate is None:
        raise DivitaError(p, "an EDL does not record the frame rate: give the video's rate")
    return parse_edl(text, rate, fps=fps, where=p)
