"""Decoding started before torch loads: the checkpoint's recorded extraction read without torch, and the feed
`divita predict` hands to the engine."""

from __future__ import annotations

import subprocess
import sys

import torch

from builders import videos
from divita.inference.early import prefetch, recorded_extraction


def fake_checkpoint(path, sides=(256, 128), detector="transnetv2"):
    """A torch.save'd dict with the fields a trained checkpoint records about its extraction, and tensors."""

    def extraction(side):
        return {"fps": 24.0, "backbone": {"name": f"b{side}", "resize_side": side}, "detector": {"name": detector}}

    streams = {m: {"extraction": extraction(s)} for m, s in zip(("image", "video"), sides)}
    torch.save({"format": 1, "features": streams, "state_dict": {"w": torch.ones(3)}}, path)
    return path


def test_the_recorded_extraction_is_read_without_torch(tmp_path):
    ckpt = fake_checkpoint(tmp_path / "best.ckpt")
    code = (
        "import sys; from divita.inference.early import recorded_extraction as r; "
        f"print(r({str(ckpt)!r})); assert 'torch' not in sys.modules"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "{'fps': 24.0, 'sides': [128, 256], 'detector': 'transnetv2'}"


def test_an_unreadable_checkpoint_or_video_gives_no_early_start(tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_text("not a checkpoint")
    assert recorded_extraction(bad) is None
    assert recorded_extraction(tmp_path / "missing.ckpt") is None
    ckpt = fake_checkpoint(tmp_path / "best.ckpt")
    assert prefetch(ckpt, tmp_path / "missing.mp4") is None
    assert prefetch(fake_checkpoint(tmp_path / "other.ckpt", detector="nope"), tmp_path / "missing.mp4") is None


def test_prefetch_decodes_the_sizes_the_checkpoint_needs(tmp_path):
    tr = videos.shots_video(tmp_path / "v.mp4", shots=(30, 20), size=(160, 90))
    feed = prefetch(fake_checkpoint(tmp_path / "best.ckpt", sides=(64, 32), detector="fixed"), tr.path)
    try:
        assert list(feed.outputs) == ["side32", "side64"]  # `fixed` looks at no pixels: no 48x27 frames
        chunk = feed.queue.get(timeout=30)
        assert chunk["side32"].shape[1:] == (32, 57, 3) and chunk["side64"].shape[1:] == (64, 114, 3)
    finally:
        feed.close()
    assert not feed.thread.is_alive()
