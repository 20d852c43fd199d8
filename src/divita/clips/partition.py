"""Shots -> clips: each shot is cut into clips of ``fpc`` frames that never cross a cut.

Rules (``partition_shot``), for a shot of ``n`` frames and ``min_frames`` (default ``fpc // 2``):

- clips tile the shot from its first frame: ``[s, s+fpc-1], [s+fpc, s+2fpc-1], ...``;
- the *remainder* ``r = n mod fpc``: if ``r >= min_frames`` it gets one more clip, the shot's *last* ``fpc``
  frames (so it overlaps the previous clip by ``fpc - r`` frames and still stays inside the shot);
  a shorter remainder is dropped;
- a shot *shorter than a clip* (``n < fpc``): one short clip ``[s, e]`` when ``n >= min_frames``, whose
  ``fpc`` frames are the shot's frames repeated evenly (:func:`clip_frame_indices`: the shot slowed down),
  otherwise the shot is dropped;
- a video left with no clip at all (every shot shorter than ``min_frames``, or a video shorter than
  ``min_frames`` frames) gets one fallback clip, its first ``min(fpc, num_frames)`` frames (which may cross a
  cut), stretched to ``fpc`` frames the same way: every video with at least one frame has at least one clip.
"""

from __future__ import annotations

from collections.abc import Sequence

Span = tuple[int, int]


def default_min_frames(fpc: int) -> int:
    return max(1, fpc // 2)


def partition_shot(start: int, end: int, fpc: int = 24, min_frames: int | None = None) -> list[Span]:
    """Clip spans (0-based, inclusive) of the shot ``[start, end]``."""
    if fpc < 1:
        raise ValueError(f"frames per clip must be >= 1, got {fpc}")
    m = default_min_frames(fpc) if min_frames is None else max(1, int(min_frames))
    n = end - start + 1
    if n <= 0:
        return []
    full = n // fpc
    clips = [(start + i * fpc, start + (i + 1) * fpc - 1) for i in range(full)]
    r = n - full * fpc
    if r and r >= m:
        clips.append((end - fpc + 1, end) if full else (start, end))
    return clips


def partition_shots(
    shots: Sequence[Sequence[int]], fpc: int = 24, min_frames: int | None = None, num_frames: int | None = None
) -> list[Span]:
    """Clip spans of all shots, in order; with ``num_frames``, the fallback clip when there would be none."""
    clips: list[Span] = []
    for s, e in shots:
        clips.extend(partition_shot(int(s), int(e), fpc, min_frames))
    if not clips and num_frames:
        clips = [fallback_clip(num_frames, fpc)]
    return clips


def fallback_clip(num_frames: int, fpc: int = 24) -> Span:
    return (0, min(fpc, num_frames) - 1)


def clip_frame_indices(clip: Sequence[int], fpc: int = 24) -> list[int]:
    """The ``fpc`` frame indices a clip is made of: its frames, or for a clip shorter than ``fpc`` its
    frames repeated evenly (nearest neighbour in time)."""
    s, e = int(clip[0]), int(clip[1])
    n = e - s + 1
    if n == fpc:
        return list(range(s, e + 1))
    return [s + (j * n) // fpc for j in range(fpc)]


class ClipStream:
    """Clips emitted as shot boundaries become final (see :class:`divita.shots.ShotStream`).

    ``update(stream)`` returns the clips that became certain since the last call: all clips of shots that
    ended (including a shot whose end is known while the transition after it is still running), and the
    full ``fpc``-frame clips at the start of the shot still running whose frames are all decided.
    ``finish(stream, num_frames)`` returns the rest (and the fallback clip if no clip was emitted).
    """

    def __init__(self, fpc: int = 24, min_frames: int | None = None):
        self.fpc = int(fpc)
        self.min_frames = min_frames
        self.emitted: list[Span] = []
        self._done: set[int] = set()  # starts of shots fully partitioned
        self._open: tuple[int, int] | None = None  # (shot start, full clips already emitted from it)

    @staticmethod
    def _ended_shots(gaps, pending: int | None) -> list[Span]:
        """Shots whose last frame is known: those before each gap, and the one a running transition ends."""
        shots = []
        start = 0
        for a, b in gaps:
            if a >= start:
                shots.append((start, a))
            start = max(start, b)
        if pending is not None and pending >= start:
            shots.append((start, pending))
        return shots

    def _emit_shot(self, s: int, e: int) -> list[Span]:
        clips = partition_shot(s, e, self.fpc, self.min_frames)
        if self._open is not None and self._open[0] == s:
            clips = clips[self._open[1] :]  # the first full clips were emitted while the shot was open
            self._open = None
        self._done.add(s)
        return clips

    def update(self, stream) -> list[Span]:
        new: list[Span] = []
        for s, e in self._ended_shots(stream.gaps, stream.pending):
            if s not in self._done:
                new.extend(self._emit_shot(s, e))
        start = stream.open_shot_start()
        if start is not None and start not in self._done:
            if self._open is None or self._open[0] != start:
                self._open = (start, 0)
            done = self._open[1]
            while start + (done + 1) * self.fpc <= stream.final:
                new.append((start + done * self.fpc, start + (done + 1) * self.fpc - 1))
                done += 1
            self._open = (start, done)
        self.emitted.extend(new)
        return new

    def finish(self, stream, num_frames: int) -> list[Span]:
        from divita.shots import shots_from_gaps

        # a video whose every frame is a transition has no real shot: it gets the fallback clip
        new: list[Span] = []
        for s, e in shots_from_gaps(stream.gaps, num_frames, whole_if_none=False):
            if s not in self._done:
                new.extend(self._emit_shot(s, e))
        if not self.emitted and not new and num_frames > 0:
            new = [fallback_clip(num_frames, self.fpc)]
        self.emitted.extend(new)
        return new


__all__ = [
    "ClipStream",
    "clip_frame_indices",
    "default_min_frames",
    "fallback_clip",
    "partition_shot",
    "partition_shots",
]
