"""Dips (``--detector dips``): runs of near-uniform black or white frames (fades to black, dips to white,
flashes) are transitions."""

from __future__ import annotations

import numpy as np

from divita.shots.base import ShotStream


class DipStream(ShotStream):
    """Runs of near-uniform black or white frames are gaps: mean luma at most ``black`` or at least ``white``
    (0..255) with a luma standard deviation of at most ``max_std``."""

    def __init__(self, black: float, white: float, max_std: float):
        super().__init__()
        self.black, self.white, self.max_std = black, white, max_std
        self.run_start: int | None = None

    @staticmethod
    def luma_stats(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 (N, H, W, 3) -> float32 (N,), (N,): each frame's mean luma (0..255) and its standard deviation."""
        luma = frames.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        flat = luma.reshape(len(frames), -1)
        return flat.mean(1), flat.std(1)

    @staticmethod
    def is_blank(mean: np.ndarray, std: np.ndarray, black: float, white: float, max_std: float) -> np.ndarray:
        """Per-frame luma mean and std (N,) -> bool (N,): which frames are uniform black or white."""
        return ((mean <= black) | (mean >= white)) & (std <= max_std)

    @staticmethod
    def blank(frames: np.ndarray, black: float, white: float, max_std: float) -> np.ndarray:
        """uint8 (N, H, W, 3) -> bool (N,): which frames are uniform black or white."""
        return DipStream.is_blank(*DipStream.luma_stats(frames), black, white, max_std)

    def push(self, frames: np.ndarray) -> None:
        if len(frames) == 0:
            return
        for b in self.blank(frames, self.black, self.white, self.max_std).tolist():
            i = self.n
            if b and self.run_start is None:
                self.run_start = i
            elif not b and self.run_start is not None:
                self.gaps.append((self.run_start - 1, i))
                self.run_start = None
            self.n += 1
        self.pending = None if self.run_start is None else self.run_start - 1
        self.final = self.n

    def finish(self, num_frames: int | None = None) -> None:
        n = self.n if num_frames is None else num_frames
        if self.run_start is not None:
            self.gaps.append((self.run_start - 1, n))
            self.run_start = None
        self.n, self.final, self.pending, self.finished = n, n, None, True
