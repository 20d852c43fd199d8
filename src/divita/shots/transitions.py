"""What kind of transition ends each shot: a cut, a dissolve, a fade (dip to black or white), or the end of
the video, from the gap between the shot and the next.

- no gap (the next shot starts on the frame after the shot's last): ``cut``;
- a gap with a near-uniform black or white frame (:meth:`divita.shots.dips.DipStream.blank`, with the ``dips``
  detector's thresholds): ``fade`` (``colour`` says which);
- any other gap (frames in no shot, none of them blank): ``dissolve`` (a gradual transition);
- the last shot: ``end``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from divita.shots.base import TRANSNET_SIZE, Span

KINDS = ("cut", "dissolve", "fade", "end")
NOT_BLANK, BLACK, WHITE = 0, 1, 2


@dataclass(frozen=True)
class Transition:
    """The transition that ends one shot.

    Attributes:
        kind: ``"cut"``, ``"dissolve"``, ``"fade"`` or ``"end"``.
        gap: ``(a, b)``: ``a`` the shot's last frame, ``b`` the next shot's first (``num_frames`` for the end).
        colour: ``"black"`` or ``"white"`` for a fade, else None.
    """

    kind: str
    gap: Span
    colour: str | None = None

    @property
    def label(self) -> str:
        """For people: ``cut``, ``dissolve``, ``fade to black``, ``dip to white``, ``end of video``."""
        if self.kind == "fade":
            return "fade to black" if self.colour == "black" else "dip to white"
        return "end of video" if self.kind == "end" else self.kind

    @property
    def frames(self) -> int:
        """Frames strictly inside the gap (0 for a cut)."""
        return max(0, self.gap[1] - self.gap[0] - 1)


def blank_thresholds() -> tuple[float, float, float]:
    """``(black, white, max_std)``: the ``dips`` detector's registered defaults."""
    from divita.shots.registry import param_default

    return tuple(float(param_default("dips", k)) for k in ("black", "white", "max_std"))


def blank_kinds(frames: np.ndarray, thresholds: tuple[float, float, float] | None = None) -> np.ndarray:
    """Which frames are near-uniform black or white.

    Args:
        frames: uint8 RGB (N, H, W, 3), any size (the detectors' 48x27 is enough).
        thresholds: ``(black, white, max_std)`` as :meth:`DipStream.blank` takes them; default the ``dips``
            detector's.

    Returns:
        int8 (N,): :data:`NOT_BLANK` (0), :data:`BLACK` (1) or :data:`WHITE` (2).
    """
    from divita.shots.dips import DipStream

    frames = np.asarray(frames)
    if len(frames) == 0:
        return np.zeros(0, np.int8)
    black, white, max_std = thresholds or blank_thresholds()
    blank = DipStream.blank(frames, black, white, max_std)
    bright = frames.reshape(len(frames), -1).mean(1) >= 128
    return np.where(blank, np.where(bright, WHITE, BLACK), NOT_BLANK).astype(np.int8)


def classify_transitions(shots: Sequence[Sequence[int]], blank: np.ndarray) -> list[Transition]:
    """The transition ending each shot, from the gaps between shots and which frames are blank.

    Args:
        shots: 0-based inclusive ``(start, end)`` spans, in order.
        blank: int8 (num_frames,) from :func:`blank_kinds` for every frame of the video (the length is the
            video's frame count).

    Returns:
        one :class:`Transition` per shot.
    """
    blank = np.asarray(blank)
    n = len(blank)
    out = []
    for i, (_, end) in enumerate(shots):
        if i == len(shots) - 1:
            out.append(Transition("end", (int(end), max(n, int(end) + 1))))
            continue
        nxt = int(shots[i + 1][0])
        gap = (int(end), nxt)
        inside = blank[int(end) + 1 : nxt]
        if nxt <= int(end) + 1:
            out.append(Transition("cut", gap))
        elif (inside != NOT_BLANK).any():
            colours = inside[inside != NOT_BLANK]
            colour = "white" if (colours == WHITE).sum() > (colours == BLACK).sum() else "black"
            out.append(Transition("fade", gap, colour))
        else:
            out.append(Transition("dissolve", gap))
    return out


def video_transitions(path: str | os.PathLike, shots: Sequence[Sequence[int]], fps: float = 24.0) -> list[Transition]:
    """Decode a video at ``fps`` (48x27 frames) and classify the transition that ends each of its shots.

    Args:
        path: the video.
        shots: its 0-based inclusive shot spans at ``fps`` (``divita shots``' output).
        fps: the rate the spans count at.

    Returns:
        one :class:`Transition` per shot.

    Raises:
        VideoError: an unusable video.
    """
    from divita.video import decode_video

    kinds, chunk = [], []
    for frame in decode_video(path, fps, size=TRANSNET_SIZE):
        chunk.append(frame)
        if len(chunk) == 256:
            kinds.append(blank_kinds(np.stack(chunk)))
            chunk = []
    kinds.append(blank_kinds(np.stack(chunk)) if chunk else np.zeros(0, np.int8))
    return classify_transitions(shots, np.concatenate(kinds))
