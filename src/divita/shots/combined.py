"""Combinations (``--detector A+B``, e.g. ``transnetv2+dips``): the primary detector's transitions plus those of
the secondary that lie more than ``tolerance`` frames from any of the primary's. Which pairs exist is derived
from the registry (:func:`divita.shots.registry.combinations`)."""

from __future__ import annotations

import numpy as np

from divita.shots.base import ShotStream, Span


class CombinedStream(ShotStream):
    """The primary stream's gaps plus the secondary's that are more than ``tolerance`` frames from them."""

    def __init__(self, primary: ShotStream, secondary: ShotStream, tolerance: int = 3):
        super().__init__()
        self.primary, self.secondary, self.tolerance = primary, secondary, int(tolerance)

    def _update(self) -> None:
        p, s, tol = self.primary, self.secondary, self.tolerance
        finals = [p.final, s.final]
        for st in (p, s):
            if st.pending is not None:
                finals.append(st.pending + 1)
        done = p.finished and s.finished
        limit = min(finals) if not done else self.n
        horizon = limit if done else max(0, limit - tol - 1)
        primary = self.primary_gaps()
        extra = [g for g in s.gaps if not any(g[0] - tol <= b and a - tol <= g[1] for a, b in primary)]
        merged = sorted(set(primary) | set(extra))
        # keep only gaps that can no longer change, and drop gaps swallowed by an earlier one
        out: list[Span] = []
        for a, b in merged:
            if not done and b >= horizon:
                break
            if out and a < out[-1][1]:
                out[-1] = (out[-1][0], max(out[-1][1], b))
                continue
            out.append((a, b))
        self.gaps = out
        self.pending = None  # a gap straddling the horizon may still be dropped: never reported as pending
        self.final = horizon
        if not done:
            nxt = [g for g in merged if g[1] >= horizon]
            if nxt and nxt[0][0] < horizon:
                self.final = max(0, nxt[0][0] + 1)  # decided up to the last frame before that transition
                # (frames after it wait until the transition is decided)

    def primary_gaps(self) -> list[Span]:
        """The primary stream's gaps this combination keeps (all of them here)."""
        return self.primary.gaps

    def push(self, frames: np.ndarray) -> None:
        self.primary.push(frames)
        self.secondary.push(frames)
        self.n += len(frames)
        self._update()

    def finish(self, num_frames: int | None = None) -> None:
        n = self.n if num_frames is None else num_frames
        self.primary.finish(n)
        self.secondary.finish(n)
        self.n = n
        self._update()
        self.finished = True
