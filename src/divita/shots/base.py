"""What every shot detector shares: spans, gaps -> shots, and the :class:`ShotStream` base class.

A shot is a 0-based inclusive frame span ``(start, end)`` at the run's (resampled) frame rate. A transition
is a *gap* ``(a, b)``: ``a`` is the last frame of the shot before it (-1 if none) and ``b`` the first frame
of the next shot (``num_frames`` if none); frames strictly between are in no shot.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

Span = tuple[int, int]
TRANSNET_SIZE = (48, 27)  # (width, height) of the frames every detector is pushed (TransNetV2's input size)


def shots_from_gaps(gaps: Sequence[Span], num_frames: int, whole_if_none: bool = True) -> list[Span]:
    """The shots between sorted gaps over ``num_frames`` frames (see the module docstring). When no frame is
    in a shot (every frame a transition) the whole video is one shot, as in TransNetV2's
    ``predictions_to_scenes``, unless ``whole_if_none`` is False."""
    shots: list[Span] = []
    start = 0
    for a, b in gaps:
        if a >= start:
            shots.append((start, min(a, num_frames - 1)))
        start = max(start, b)
    if start <= num_frames - 1:
        shots.append((start, num_frames - 1))
    if not shots and num_frames > 0 and whole_if_none:  # e.g. every frame a transition: one shot, as the package does
        shots = [(0, num_frames - 1)]
    return shots


def spans_to_seconds(spans: Sequence[Sequence[int]], fps: float, digits: int = 4) -> list[list[float]]:
    """Inclusive frame spans ``[start, end]`` -> ``[start_s, end_s]`` in seconds, end exclusive:
    ``[start / fps, (end + 1) / fps]``, rounded to ``digits`` decimals (the ``*_seconds`` keys of every output)."""
    return [[round(s / fps, digits), round((e + 1) / fps, digits)] for s, e in spans]


def predictions_to_shots(predictions: np.ndarray, threshold: float = 0.5) -> list[Span]:
    """TransNetV2's ``predictions_to_scenes`` (same output), as (start, end) tuples."""
    s = TransitionRuns(threshold)
    s.feed(np.asarray(predictions, dtype=np.float32))
    s.close(len(predictions))
    return shots_from_gaps(s.gaps, len(predictions))


class TransitionRuns:
    """Turns per-frame transition probabilities into gaps, incrementally (predictions_to_scenes' rules)."""

    def __init__(self, threshold: float):
        self.threshold = float(threshold)
        self.n = 0
        self.prev = 0
        self.open_gap: int | None = None
        self.gaps: list[Span] = []

    def feed(self, p: np.ndarray) -> None:
        for v in (np.asarray(p) > self.threshold).astype(np.uint8).tolist():
            i = self.n
            if self.prev == 1 and v == 0:
                self.gaps.append((self.open_gap if self.open_gap is not None else -1, i))
                self.open_gap = None
            if self.prev == 0 and v == 1:
                self.open_gap = i if i != 0 else -1
            self.prev = v
            self.n += 1

    def close(self, num_frames: int) -> None:
        if self.open_gap is not None:
            self.gaps.append((self.open_gap, num_frames))
            self.open_gap = None


class ShotStream(ABC):
    """Incremental shot detection over one video: the per-video algorithm of a detector (an abstract base).

    Push uint8 RGB frames (N, 27, 48, 3) in chunks with `push`, then call `finish`; `shots` gives the shots.
    Pushing the frames in chunks of any size must give the shots of one push (tests check it for every
    registered detector), and frames before ``final`` must never change their shot.

    A transition is a gap ``(a, b)``: ``a`` the last frame of the shot before it (-1 if none), ``b`` the first
    frame of the next shot (``num_frames`` if none).

    A detector is a subclass (implementing `push` and `finish`) plus one `DetectorSpec` registered in
    `DETECTORS`, which builds it with `from_detector` and records `implementation` next to its parameters.

    Attributes:
        n: frames pushed.
        final: frames ``[0, final)`` are decided.
        gaps: the decided gaps ``(a, b)``, sorted.
        pending: the ``a`` of a transition that has started but not ended (frames after it are in no shot yet),
            or None.
        finished: `finish` was called.
    """

    def __init__(self) -> None:
        self.final = 0
        self.gaps: list[Span] = []
        self.pending: int | None = None
        self.n = 0
        self.finished = False

    @classmethod
    def from_detector(cls, detector, **params) -> ShotStream:
        """The stream for one video of a detector configuration.

        Args:
            detector: the `divita.shots.ShotDetector` (its ``device``, ``precision``, ``fps``, ... for a stream
                that needs them).
            **params: the values of the parameters the registry entry declares, by ``Param.key``.

        Returns:
            A new stream; by default ``cls(**params)``.
        """
        return cls(**params)

    @classmethod
    def implementation(cls, detector) -> dict:
        """What else ``ShotDetector.params()`` records about how this stream computes.

        Args:
            detector: the `divita.shots.ShotDetector` configuration.

        Returns:
            dict: JSON-able (default empty), recorded beside the parameters but not part of the store
            fingerprint: e.g. the device and precision a network ran at.
        """
        return {}

    @abstractmethod
    def push(self, frames: np.ndarray) -> None:
        """Detect over the next frames; updates ``n``, ``final``, ``gaps`` and ``pending``.

        Args:
            frames: uint8 RGB (N, 27, 48, 3), the frames after those already pushed.
        """

    @abstractmethod
    def finish(self, num_frames: int | None = None) -> None:
        """End of the video: every frame is decided (``final == n``, ``finished`` set).

        Args:
            num_frames: the video's length, default the frames pushed.
        """

    # -- shots ----------------------------------------------------------------------------------------
    def shots(self) -> list[Span]:
        """All shots, after `finish`.

        Returns:
            0-based inclusive frame spans ``(start, end)``, in order.
        """
        return shots_from_gaps(self.gaps, self.n)

    def open_shot_start(self) -> int | None:
        """The first frame of the shot that contains frame ``final - 1`` and has not ended yet, or None."""
        if self.pending is not None or self.final == 0:
            return None
        start = self.gaps[-1][1] if self.gaps else 0
        return start if start < self.final else None
