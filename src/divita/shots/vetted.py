"""TransNetV2 with checked extra cuts and dips (``--detector transnetv2-vetted``, the default).

TransNetV2 misses most fades through black and dips to white and some hard cuts (fast cutting, look-alike shots),
and cuts at some camera flashes; a colour-difference detector finds the missed ones but also fires on flashes,
explosions and fast motion. This detector keeps TransNetV2's transitions that are no flash and adds, more than
``tolerance`` frames from them:

- a hard cut at frame ``i`` where the mean absolute HSV difference from frame ``i - 1`` is at least
  ``cut_threshold``, the picture does not come back within ``flash_frames`` frames (a flash, a strobe or a
  glitch returns to the same content: its difference to frame ``i - 1`` is below ``return_threshold``), it does
  not end a flash, and the network's probability within 2 frames of it reaches ``veto`` (motion and bursts the
  network is sure of are not cuts); bright frames right after ``i`` (a flash next to the cut) join the gap;
- a run of uniform black or white frames (``black``, ``white``, ``max_std`` as ``dips``), unless it is a white
  flash within one shot.

A flash: at most ``flash_frames`` frames all brighter than the frames on both sides by ``flash_luma``, after
which the picture returns to the one before them. The cheap per-frame statistics (HSV differences, luma mean
and spread of the 48x27 frames) are computed in vectorised chunks; the network runs once, in the primary stream.
"""

from __future__ import annotations

import numpy as np

from divita.shots.base import ShotStream
from divita.shots.combined import CombinedStream
from divita.shots.dips import DipStream

LOOK = 3  # frames after a candidate that decide it (flash returns, bright frames)
PROB_MARGIN = 2  # frames either side of a candidate whose network probability can keep it


def hsv_frames(frames: np.ndarray) -> np.ndarray:
    """uint8 RGB (N, H, W, 3) -> int16 HSV (N, H, W, 3) as OpenCV computes it (hue 0..179)."""
    import cv2

    n, h, w, _ = frames.shape
    flat = np.ascontiguousarray(frames).reshape(n * h, w, 3)
    return cv2.cvtColor(flat, cv2.COLOR_RGB2HSV).reshape(n, h, w, 3).astype(np.int16)


class CheckedCuts(ShotStream):
    """The secondary of :class:`VettedStream`: candidate cuts and dips, checked against flashes and the
    network's per-frame probabilities (read from ``network.preds`` as the primary stream computes them).

    Per frame ``j`` it keeps: ``diff[j]`` (HSV difference to frame ``j - 1``), ``back[j, k - 1]`` (to frame
    ``j - 1 - k``, k = 1..LOOK), ``luma[j]`` and ``blank[j]``.
    """

    def __init__(
        self,
        network,
        cut_threshold: float,
        return_threshold: float,
        veto: float,
        flash_frames: int,
        flash_luma: float,
        black: float,
        white: float,
        max_std: float,
    ):
        super().__init__()
        self.network = network
        self.cut_threshold, self.return_threshold, self.veto = cut_threshold, return_threshold, veto
        self.flash_frames, self.flash_luma = int(flash_frames), flash_luma
        self.black, self.white, self.max_std = black, white, max_std
        self.tail = np.zeros((0, 27, 48, 3), np.int16)  # HSV of the last LOOK + 1 frames pushed
        self.diff: list[float] = []
        self.back: list[np.ndarray] = []
        self.luma: list[float] = []
        self.blank: list[bool] = []
        self.probs = np.zeros(0, np.float32)
        self.seen_preds = 0
        self.cursor = 0  # next frame to decide
        self.run_start: int | None = None

    # -- per-frame statistics -------------------------------------------------------------------------
    def push(self, frames: np.ndarray) -> None:
        frames = np.asarray(frames, dtype=np.uint8)
        if len(frames):
            hsv = np.concatenate([self.tail, hsv_frames(frames)])
            m, total = len(self.tail), len(hsv)
            shifted = np.full((total - m, LOOK + 1), np.inf, np.float32)  # column s - 1: difference to frame j - s
            for s in range(1, LOOK + 2):
                first = max(m, s)  # the first new frame with a frame s before it
                if first < total:
                    d = np.abs(hsv[first:] - hsv[first - s : total - s]).mean((1, 2, 3))
                    shifted[first - m :, s - 1] = d
            self.diff.extend(np.where(np.isinf(shifted[:, 0]), 0.0, shifted[:, 0]).tolist())
            self.back.extend(shifted[:, 1:])
            self.tail = hsv[-(LOOK + 1) :]
            mean, std = DipStream.luma_stats(frames)
            self.luma.extend(mean.tolist())
            self.blank.extend(DipStream.is_blank(mean, std, self.black, self.white, self.max_std).tolist())
            self.n += len(frames)
        self._sync_probs()
        self._decide(min(self.n - LOOK, self.network.final - LOOK - PROB_MARGIN), at_end=False)

    def _sync_probs(self) -> None:
        preds = self.network.preds
        if len(preds) > self.seen_preds:
            self.probs = np.concatenate([self.probs, *preds[self.seen_preds :]])
            self.seen_preds = len(preds)

    # -- decisions ------------------------------------------------------------------------------------
    def _returns(self, i: int, k: int) -> bool:
        """Whether frame ``i + k`` looks like frame ``i - 1`` again (frames ``i .. i + k - 1`` were a flash)."""
        return 0 < i and i + k < self.n and float(self.back[i + k][k - 1]) < self.return_threshold

    def _spike(self, lo: int, hi: int) -> bool:
        """Whether frames ``lo .. hi - 1`` are all brighter than frames ``lo - 1`` and ``hi`` by ``flash_luma``."""
        if lo < 1 or hi >= self.n:
            return False
        level = max(self.luma[lo - 1], self.luma[hi]) + self.flash_luma
        return all(self.luma[m] > level for m in range(lo, hi))

    def is_flash(self, a: int, b: int) -> bool:
        """Whether the transition gap ``(a, b)`` is a flash: up to ``flash_frames`` bright frames starting at
        ``a + 1`` or ending at ``b - 1``, with the picture after them the one before them."""
        for k in range(1, self.flash_frames + 1):
            if self._spike(a + 1, a + 1 + k) and self._returns(a + 1, k):
                return True
            if self._spike(b - k, b) and self._returns(b - k, k):
                return True
        return False

    def _decide(self, horizon: int, at_end: bool) -> None:
        """Decide frames ``[cursor, horizon)``: dips that end there, cuts at them."""
        n = self.n
        for i in range(self.cursor, max(self.cursor, horizon)):
            if self.blank[i]:
                if self.run_start is None:
                    self.run_start = i
                continue
            if self.run_start is not None:
                s, e = self.run_start, i - 1
                self.run_start = None
                white = self.luma[s] >= self.white
                if not (white and e - s + 1 <= self.flash_frames and self.is_flash(s - 1, i)):
                    self._add((s - 1, i))
                continue
            if i == 0 or self.diff[i] < self.cut_threshold or (self.gaps and i <= self.gaps[-1][1]):
                continue
            if any(self._returns(i, k) for k in range(1, self.flash_frames + 1)) or self.is_flash(i - 1, i):
                continue  # a flash or strobe: the picture comes back
            bright = 0  # frames right after i brighter than both sides (a flash next to the cut)
            for k in range(1, min(self.flash_frames, n - 1 - i) + 1):
                if all(self.luma[i + m] > max(self.luma[i - 1], self.luma[i + k]) + self.flash_luma for m in range(k)):
                    bright = k
            lo, hi = max(0, i - PROB_MARGIN), min(len(self.probs), i + bright + PROB_MARGIN + 1)
            if hi > lo and float(self.probs[lo:hi].max()) >= self.veto:
                self._add((i - 1, i + bright))
        self.cursor = max(self.cursor, horizon)
        if at_end and self.run_start is not None:
            self._add((self.run_start - 1, n))
            self.run_start = None
        self.pending = None if self.run_start is None else self.run_start - 1
        self.final = self.cursor if self.run_start is None else self.run_start

    def _add(self, gap: tuple[int, int]) -> None:
        if self.gaps and gap[0] < self.gaps[-1][1]:
            self.gaps[-1] = (self.gaps[-1][0], max(self.gaps[-1][1], gap[1]))
        else:
            self.gaps.append(gap)

    def finish(self, num_frames: int | None = None) -> None:
        self._sync_probs()
        self._decide(self.n, at_end=True)
        self.n = self.n if num_frames is None else num_frames
        self.final, self.pending, self.finished = self.n, None, True


class VettedStream(CombinedStream):
    """TransNetV2's transitions that are no flash plus the checked cuts and dips of :class:`CheckedCuts` that
    lie more than ``tolerance`` frames from them (see the module docstring)."""

    def primary_gaps(self) -> list[tuple[int, int]]:
        # decided from frames the secondary has already seen: a gap is only used once it is final there
        return [g for g in self.primary.gaps if not self.secondary.is_flash(*g)]

    @classmethod
    def from_detector(cls, detector, threshold: float, tolerance: int, **checks) -> VettedStream:
        from divita.shots.transnetv2 import TransNetV2Stream

        network = TransNetV2Stream.from_detector(detector, threshold)  # the detector's device, precision, runtime
        return cls(network, CheckedCuts(network, **checks), tolerance)

    @classmethod
    def implementation(cls, detector) -> dict:
        from divita.shots.transnetv2 import TransNetV2Stream

        return TransNetV2Stream.implementation(detector)
