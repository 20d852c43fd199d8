"""Shots -> clips: tiling, remainders, short shots, the fallback clip, and the streaming partitioner."""

from __future__ import annotations

import numpy as np
import pytest

from divita.clips import ClipStream, clip_frame_indices, fallback_clip, partition_shot, partition_shots
from divita.shots.base import ShotStream, TransitionRuns, predictions_to_shots


def test_exact_multiple_tiles_the_shot():
    assert partition_shot(10, 57, fpc=24) == [(10, 33), (34, 57)]


def test_remainder_of_at_least_half_a_clip_gets_the_shots_last_frames():
    # 60 frames = 2 clips + 12: the third clip is the last 24 frames, overlapping the second by 12
    assert partition_shot(0, 59, fpc=24) == [(0, 23), (24, 47), (36, 59)]


def test_shorter_remainder_is_dropped():
    assert partition_shot(0, 58, fpc=24) == [(0, 23), (24, 47)]  # remainder 11 < 12
    assert partition_shot(0, 58, fpc=24, min_frames=5) == [(0, 23), (24, 47), (35, 58)]


def test_shot_shorter_than_a_clip():
    assert partition_shot(100, 111, fpc=24) == [(100, 111)]  # 12 frames: one short clip
    assert partition_shot(100, 110, fpc=24) == []  # 11 frames: dropped
    assert clip_frame_indices((100, 111), 24) == [100 + j // 2 for j in range(24)]  # each frame twice
    assert clip_frame_indices((5, 28), 24) == list(range(5, 29))


def test_clips_never_cross_cuts():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 100, 50)
    ends = np.cumsum(lengths) - 1
    shots = list(zip(np.concatenate([[0], ends[:-1] + 1]), ends))
    clips = partition_shots(shots, fpc=24)
    for s, e in clips:
        inside = [(a, b) for a, b in shots if a <= s and e <= b]
        assert len(inside) == 1
        assert e - s + 1 == 24 or (inside[0][1] - inside[0][0] + 1) < 24


def test_video_without_clips_gets_one_fallback_clip():
    assert partition_shots([(0, 4), (5, 9)], fpc=24, num_frames=10) == [(0, 9)]
    assert partition_shots([], fpc=24, num_frames=3) == [(0, 2)]
    assert fallback_clip(100, 24) == (0, 23)
    assert partition_shots([(0, 4)], fpc=24) == []  # without num_frames: no fallback


class FakePredictionStream(ShotStream):
    """A ShotStream over given predictions that become final ``lag`` frames after being pushed."""

    def __init__(self, preds: np.ndarray, lag: int):
        super().__init__()
        self.preds, self.lag = preds, lag
        self.runs = TransitionRuns(0.5)

    def push(self, frames):
        self.n += len(frames)
        new_final = max(self.final, self.n - self.lag)
        self.runs.feed(self.preds[self.final : new_final])
        self.final = new_final
        self.gaps, self.pending = list(self.runs.gaps), self.runs.open_gap

    def finish(self, num_frames=None):
        self.runs.feed(self.preds[self.final : self.n])
        self.runs.close(self.n)
        self.final, self.gaps, self.pending, self.finished = self.n, list(self.runs.gaps), None, True


@pytest.mark.parametrize("seed", range(12))
def test_streaming_partition_equals_partition_of_the_final_shots(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    p = (rng.random(n) < rng.choice([0.01, 0.05, 0.2])).astype(np.float32)
    if seed == 0:
        p[:] = 1.0  # every frame a transition
    stream = FakePredictionStream(p, lag=int(rng.integers(0, 80)))
    cs = ClipStream(fpc=24)
    got = []
    i = 0
    while i < n:
        k = int(rng.integers(1, 50))
        stream.push(np.zeros(min(k, n - i)))
        i += k
        got += cs.update(stream)
    stream.finish(n)
    got += cs.finish(stream, n)
    shots = predictions_to_shots(p)
    if seed == 0:
        assert shots == [(0, n - 1)] and got == [fallback_clip(n, 24)]
        return
    assert sorted(got) == partition_shots(shots, 24, num_frames=n)
    assert len(set(got)) == len(got)


@pytest.mark.parametrize("seed", range(8))
def test_streaming_partition_of_a_combined_detector(seed):
    from divita.shots import CombinedStream

    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(50, 400))
    p1 = (rng.random(n) < 0.03).astype(np.float32)
    p2 = (rng.random(n) < 0.03).astype(np.float32)
    stream = CombinedStream(
        FakePredictionStream(p1, lag=int(rng.integers(0, 60))),
        FakePredictionStream(p2, lag=int(rng.integers(0, 60))),
        tolerance=3,
    )
    cs = ClipStream(fpc=24)
    got = []
    i = 0
    while i < n:
        k = int(rng.integers(1, 50))
        stream.push(np.zeros(min(k, n - i)))
        i += k
        new = cs.update(stream)
        # an emitted clip only covers decided frames
        assert all(e < stream.final for _, e in new)
        got += new
    stream.finish(n)
    got += cs.finish(stream, n)
    assert sorted(got) == partition_shots(stream.shots(), 24, num_frames=n)
