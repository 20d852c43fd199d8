"""Fixed segments (``--detector fixed``): no detection, constant-length segments of ``segment_frames``
frames (the paper's non-shot baseline). Looks at no frame: the decoder makes no 48x27 frames for it."""

from __future__ import annotations

import numpy as np

from divita.shots.base import ShotStream


class FixedStream(ShotStream):
    """Constant-length segments: no detection (the paper's non-shot baseline)."""

    def __init__(self, segment_frames: int):
        super().__init__()
        self.segment = int(segment_frames)

    def push(self, frames: np.ndarray) -> None:
        self.n += len(frames)
        self.final = self.n
        self.gaps = [(b - 1, b) for b in range(self.segment, self.n, self.segment)]

    def finish(self, num_frames: int | None = None) -> None:
        self.n = self.n if num_frames is None else num_frames
        self.gaps = [(b - 1, b) for b in range(self.segment, self.n, self.segment)]
        self.final, self.finished = self.n, True
