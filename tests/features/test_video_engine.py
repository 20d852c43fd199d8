"""The per-video engine's decode feed (started ahead, or by the engine) and its torch thread sharing."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from builders import videos
from divita.features.engine import DecodeFeed, decode_outputs, process_video
from divita.shots import ShotDetector


class MeanEncoder:
    """Mean colour of each frame of a clip (T x 3 features); records torch's thread count at each call."""

    def __init__(self, min_side=32):
        self.spec = SimpleNamespace(name=f"mean{min_side}", kind="3d", num_features=72, store_prefix="k")
        self.min_side = min_side
        self.threads = []

    def encode(self, clips):
        self.threads.append(torch.get_num_threads())
        return np.asarray(clips, np.float32).mean((2, 3)).reshape(len(clips), -1) / 255.0


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return videos.shots_video(tmp_path_factory.mktemp("engine") / "v.mp4", shots=(30, 40, 26), size=(96, 64)).path


@pytest.mark.parametrize("detector", ["fixed", "content"])
def test_a_feed_started_ahead_gives_the_same_result(video, detector):
    det = ShotDetector(detector, segment_frames=24)
    plain = process_video(video, [MeanEncoder()], det)
    feed = DecodeFeed(video, 24.0, decode_outputs([32], det.looks_at_frames)).start()
    ahead = process_video(video, [MeanEncoder()], det, feed=feed)
    assert ahead.shots == plain.shots and ahead.clips == plain.clips
    np.testing.assert_array_equal(ahead.features["mean32"], plain.features["mean32"])
    assert not feed.thread.is_alive()


def test_a_feed_of_other_sizes_is_closed_and_the_video_decoded_again(video):
    det = ShotDetector("fixed", segment_frames=24)
    wrong = DecodeFeed(video, 24.0, decode_outputs([48], False)).start()
    r = process_video(video, [MeanEncoder(32)], det, feed=wrong)
    assert not wrong.thread.is_alive()
    np.testing.assert_array_equal(r.features["mean32"], process_video(video, [MeanEncoder(32)], det).features["mean32"])


def test_torch_threads_are_shared_with_the_decoder_and_restored(video):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        enc = MeanEncoder()
        process_video(video, [enc], ShotDetector("fixed", segment_frames=24), batch_size=1, inference_threads=1)
        # 4 chunks never fill the queue: the decoder is busy at every encode, which runs on 1 thread
        assert enc.threads == [1, 1, 1, 1]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_decode_outputs_name_one_size_per_side():
    assert list(decode_outputs([256, 128, 256], True)) == ["side128", "side256", "small"]
    assert list(decode_outputs([0], False)) == ["native"]
    assert list(decode_outputs([], False)) == ["small"]
