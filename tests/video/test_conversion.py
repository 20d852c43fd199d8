"""The decoder's frames are exactly the ones of the reference conversion (libswscale rgb24 at the largest size,
OpenCV area resizes for the smaller ones), whichever output format libswscale is asked for."""

from __future__ import annotations

import av
import cv2
import numpy as np
import pytest

from builders import videos
from divita.video import OutputSize, VideoDecoder
from divita.video.decode import planar_rgb_is_exact

SIZES = {"side64": OutputSize(min_side=64), "side32": OutputSize(min_side=32), "small": OutputSize(exact=(48, 27))}


def reference_frames(path, sizes: dict[str, tuple[int, int]], primary: str) -> dict[str, list[np.ndarray]]:
    """Every source frame converted the reference way: rgb24 at the primary size, OpenCV area for the others."""
    out = {k: [] for k in sizes}
    pw, ph = sizes[primary]
    with av.open(str(path)) as c:
        for frame in c.decode(c.streams.video[0]):
            img = frame.to_ndarray(format="rgb24", width=pw, height=ph, interpolation="AREA")
            for k, (w, h) in sizes.items():
                out[k].append(img if k == primary else cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA))
    return out


@pytest.mark.parametrize("size", [(160, 90), (150, 98)])
def test_decoded_frames_equal_the_reference_conversion(tmp_path, size):
    tr = videos.shots_video(tmp_path / "v.mp4", shots=(12, 12), size=size, seed=3)
    dec = VideoDecoder(tr.path, 24, SIZES)
    got = list(dec)
    ref = reference_frames(tr.path, dec.sizes, "side64")
    assert len(got) == len(ref["small"]) == 24
    for k in SIZES:
        assert all(np.array_equal(g[k], r) for g, r in zip(got, ref[k])), k


def test_planar_rgb_is_used_only_where_it_gives_the_same_pixels():
    rng = np.random.default_rng(1)
    frame = av.VideoFrame.from_ndarray(rng.integers(0, 256, (360, 640, 3), dtype=np.uint8), "rgb24")
    frame = frame.reformat(format="yuv420p")
    for w, h in [(455, 256), (228, 128), (48, 27), (101, 57)]:
        packed = frame.to_ndarray(format="rgb24", width=w, height=h, interpolation="AREA")
        planar = frame.to_ndarray(format="gbrp", width=w, height=h, interpolation="AREA")
        if planar_rgb_is_exact(frame, w, h):
            assert np.array_equal(packed, planar)
    # a 10-bit source: the probe still answers (True or False) without raising
    deep = frame.reformat(format="yuv420p10le")
    assert planar_rgb_is_exact(deep, 228, 128) in (True, False)
