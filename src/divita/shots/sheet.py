"""Contact sheets (``divita shots --plot``): one row per shot with thumbnails of its first, middle and last
frame, its time span (the video's own timecode, seconds, the run's frames) and the transition that ends it.

Rows fill columns of up to 20 rows (at most 4 columns side by side, more only for very long videos), so a
2-minute trailer of ~60 shots is one PNG of 3 columns of 20 rows, about 2600x2200 pixels. The video is decoded
once more at the run's rate, at thumbnail size (and 48x27 for the transition kinds,
:mod:`divita.shots.transitions`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from divita.shots.base import TRANSNET_SIZE, Span
from divita.shots.formats import ShotList
from divita.shots.timecode import frames_to_timecode, is_drop_frame
from divita.shots.transitions import Transition, blank_kinds, classify_transitions

THUMB_HEIGHT = 90  # pixels
ROWS_PER_COLUMN = 20
MAX_COLUMNS = 4
MAX_PIXELS = 60000  # per side, under Agg's limit of 2**16
DPI = 100
MIN_WIDTH = 900  # pixels: room for the heading next to narrow (portrait) thumbnails
HEADER = 104  # pixels above the rows
LABEL_WIDTH = 250
BADGE_WIDTH = 124
GAP = 6  # between thumbnails
ROW_PAD = 12  # rows are THUMB_HEIGHT + ROW_PAD tall
COLUMN_GAP = 28
BADGE_STYLE = {  # transition label -> (face, edge, text colour)
    "cut": ("#4d4d4d", "#4d4d4d", "white"),
    "dissolve": ("#2f6db5", "#2f6db5", "white"),
    "fade to black": ("#000000", "#000000", "white"),
    "dip to white": ("#ffffff", "#000000", "black"),
    "end of video": ("#b03a2e", "#b03a2e", "white"),
}


@dataclass(frozen=True)
class ShotTile:
    """One shot's row on the sheet.

    Attributes:
        index: the shot's number (0-based, as ``divita shots`` prints it).
        span: its 0-based inclusive frame span at the run's rate.
        frames: the frames shown: first, middle, last (run's rate).
        transition: what ends the shot.
        boxes: ``(x0, y0, x1, y1)`` pixel box (end exclusive) of each thumbnail in the PNG.
    """

    index: int
    span: Span
    frames: tuple[int, int, int]
    transition: Transition
    boxes: tuple[tuple[int, int, int, int], ...]


@dataclass(frozen=True)
class SheetLayout:
    """What :func:`draw_contact_sheet` drew, to check or to place things on it.

    Attributes:
        path: the PNG.
        width, height: its size in pixels.
        columns, rows: columns of rows, rows per column.
        thumb_size: ``(width, height)`` of each thumbnail in pixels.
        tiles: one :class:`ShotTile` per shot, in order.
    """

    path: Path
    width: int
    height: int
    columns: int
    rows: int
    thumb_size: tuple[int, int]
    tiles: tuple[ShotTile, ...]


def shown_frames(span: Sequence[int]) -> tuple[int, int, int]:
    """First, middle and last frame of an inclusive span."""
    s, e = int(span[0]), int(span[1])
    return s, (s + e) // 2, e


def sheet_grid(num_shots: int, thumb_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """``(columns, rows, width, height)`` in pixels of a sheet of ``num_shots`` rows of thumbnails of
    ``thumb_size`` = (width, height)."""
    row_h = thumb_size[1] + ROW_PAD
    n = max(1, num_shots)
    columns = max(min(MAX_COLUMNS, math.ceil(n / ROWS_PER_COLUMN)), math.ceil(n * row_h / (MAX_PIXELS - HEADER)))
    rows = math.ceil(n / columns)
    return columns, rows, max(MIN_WIDTH, columns * column_width(thumb_size)), HEADER + rows * row_h + ROW_PAD


def column_width(thumb_size: tuple[int, int]) -> int:
    """Pixels of one column of rows: the text, three thumbnails, the transition badge and the gap."""
    return LABEL_WIDTH + 3 * (thumb_size[0] + GAP) + BADGE_WIDTH + COLUMN_GAP


def thumb_size_for(width: int, height: int) -> tuple[int, int]:
    """Thumbnail (width, height): :data:`THUMB_HEIGHT` tall, the video's aspect (clamped to 0.5..2.4)."""
    aspect = min(2.4, max(0.5, width / max(1, height)))
    return max(1, int(round(THUMB_HEIGHT * aspect))), THUMB_HEIGHT


def _decode(shots: ShotList, thumb: tuple[int, int], wanted: set[int]):
    """One pass over the video: {frame: uint8 (h, w, 3) thumbnail} for ``wanted`` and the blank kind of
    every frame."""
    from divita.video import OutputSize, VideoDecoder

    decoder = VideoDecoder(
        shots.video, shots.fps, {"thumb": OutputSize(exact=thumb), "small": OutputSize(exact=TRANSNET_SIZE)}
    )
    thumbs: dict[int, np.ndarray] = {}
    kinds: list[np.ndarray] = []
    chunk: list[np.ndarray] = []
    for k, frames in enumerate(decoder):
        if k in wanted:
            thumbs[k] = frames["thumb"].copy()
        chunk.append(frames["small"])
        if len(chunk) == 256:
            kinds.append(blank_kinds(np.stack(chunk)))
            chunk = []
    if chunk:
        kinds.append(blank_kinds(np.stack(chunk)))
    return thumbs, np.concatenate(kinds) if kinds else np.zeros(0, np.int8)


def draw_contact_sheet(shots: ShotList, path: str | os.PathLike, title: str | None = None) -> SheetLayout:
    """Draw the contact sheet of one video's shots into a PNG (written atomically).

    Args:
        shots: the video and its shots (``divita shots``' spans at ``shots.fps``).
        path: the PNG to write.
        title: the heading (default the video's file name).

    Returns:
        SheetLayout: the sheet's size, grid and one tile per shot.

    Raises:
        VideoError: the video cannot be decoded.
        OSError: the PNG cannot be written.
    """
    from divita.video import probe_video

    info = probe_video(shots.video)
    thumb = thumb_size_for(info.width, info.height)
    spans = [(int(s), int(e)) for s, e in shots.shots]
    picks = [shown_frames(s) for s in spans]
    thumbs, kinds = _decode(shots, thumb, {f for p in picks for f in p})
    transitions = classify_transitions(spans, kinds)
    columns, rows, width, height = sheet_grid(len(spans), thumb)
    row_h = thumb[1] + ROW_PAD
    column_w = column_width(thumb)

    canvas = np.full((height, width, 3), 255, np.uint8)
    tiles = []
    for i, (span, frames, transition) in enumerate(zip(spans, picks, transitions)):
        x, y = (i // rows) * column_w, HEADER + (i % rows) * row_h
        if i % 2:
            canvas[y : y + row_h, x : x + column_w - COLUMN_GAP // 2] = 242
        boxes = []
        for j, f in enumerate(frames):
            x0, y0 = x + LABEL_WIDTH + j * (thumb[0] + GAP), y + ROW_PAD // 2
            img = thumbs.get(f)
            if img is None:  # past the decoded frames: a grey tile
                canvas[y0 : y0 + thumb[1], x0 : x0 + thumb[0]] = 160
            else:
                canvas[y0 : y0 + thumb[1], x0 : x0 + thumb[0]] = img
            boxes.append((x0, y0, x0 + thumb[0], y0 + thumb[1]))
        tiles.append(ShotTile(i, span, frames, transition, tuple(boxes)))
    layout = SheetLayout(Path(path), width, height, columns, rows, thumb, tuple(tiles))
    figure = _render(canvas, layout, shots, title if title is not None else Path(shots.video).name)

    from divita.fileio import atomic_write_bytes

    atomic_write_bytes(path, lambda f: figure.savefig(f, format="png", dpi=DPI))
    return layout


def _render(canvas: np.ndarray, layout: SheetLayout, shots: ShotList, title: str):
    """The figure: the canvas, one pixel per pixel, with the heading, each row's text and transition badge."""
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyBboxPatch

    height, width = canvas.shape[:2]
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(canvas, extent=(0, width, height, 0), interpolation="nearest", aspect="auto")
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.axis("off")

    rate, fps = shots.rate, shots.fps
    native = shots.native_shots()
    seconds = shots.num_frames / fps
    counts: dict[str, int] = {}
    for t in layout.tiles:
        counts[t.transition.label] = counts.get(t.transition.label, 0) + 1
    ax.text(16, 14, title, fontsize=17, fontweight="bold", va="top", ha="left")
    drop = " drop-frame" if is_drop_frame(rate) else ""
    plural = "" if len(layout.tiles) == 1 else "s"
    summary = (
        f"{len(layout.tiles)} shot{plural}  ·  {seconds:.2f} s  ·  timecode at the video's {float(rate):g} fps"
        f"{drop}  ·  frames at {fps:g} fps"
    )
    ends = "ends:  " + "   ".join(f"{label} {counts[label]}" for label in BADGE_STYLE if label in counts)
    ax.text(16, 44, summary, fontsize=11, va="top", ha="left", color="#333333")
    ax.text(16, 66, ends, fontsize=11, va="top", ha="left", color="#333333")
    for c in range(min(layout.columns, len(layout.tiles))):  # captions over each column's thumbnails
        wide = layout.thumb_size[0] >= 100
        for j, caption in enumerate(("first frame" if wide else "first", "middle", "last frame" if wide else "last")):
            x0 = c * column_width(layout.thumb_size) + LABEL_WIDTH + j * (layout.thumb_size[0] + GAP)
            ax.text(
                x0 + layout.thumb_size[0] / 2,
                HEADER - 3,
                caption,
                fontsize=9,
                ha="center",
                va="bottom",
                color="#666666",
            )

    row_h = layout.thumb_size[1] + ROW_PAD
    column_w = column_width(layout.thumb_size)
    for t, (ns, ne) in zip(layout.tiles, native):
        x, y = (t.index // layout.rows) * column_w, HEADER + (t.index % layout.rows) * row_h
        s, e = t.span
        top = y + ROW_PAD // 2
        ax.text(x + 12, top, f"#{t.index}", fontsize=14, fontweight="bold", va="top")
        ax.text(x + 70, top + 2, f"{(e - s + 1) / fps:.2f} s", fontsize=12, va="top", color="#222222")
        ax.text(
            x + 12,
            top + 27,
            f"{frames_to_timecode(ns, rate)} – {frames_to_timecode(ne + 1, rate)}",
            fontsize=10,
            family="monospace",
            va="top",
        )
        ax.text(x + 12, top + 47, f"{s / fps:.3f} – {(e + 1) / fps:.3f} s", fontsize=10, va="top")
        ax.text(x + 12, top + 67, f"frames {s}–{e} at {fps:g} fps", fontsize=9, va="top", color="#666666")
        face, edge, ink = BADGE_STYLE[t.transition.label]
        bx = t.boxes[-1][2] + 10
        by = y + row_h / 2
        ax.add_patch(
            FancyBboxPatch(
                (bx, by - 14),
                BADGE_WIDTH - 16,
                28,
                boxstyle="round,pad=0,rounding_size=6",
                facecolor=face,
                edgecolor=edge,
                linewidth=1.2,
            )
        )
        ax.text(bx + (BADGE_WIDTH - 16) / 2, by, t.transition.label, fontsize=10, ha="center", va="center", color=ink)
    for c in range(1, layout.columns):
        ax.axvline(c * column_w - COLUMN_GAP / 2, ymin=0, ymax=1 - HEADER / height, color="#bbbbbb", linewidth=1)
    return fig
