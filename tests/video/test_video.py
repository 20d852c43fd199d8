"""Decoding: timestamp resampling (CFR at several rates, VFR), sizes, rotation, and unusable files."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from builders import videos
from divita.video import OutputSize, VideoDecoder, VideoError, decode_video, find_videos, probe_video, read_frames


def nearest(times: np.ndarray, t: float) -> int:
    """Index of the source frame nearest to time t (ties to the later one), as the decoder picks."""
    d = np.abs(times - t)
    best = np.flatnonzero(d <= d.min() + 1e-6)
    return int(best[-1])


@pytest.mark.parametrize("rate", [24, Fraction(24000, 1001), 25, 30, 60, 12])
def test_constant_rates_are_resampled_to_24fps_by_time(tmp_path, rate):
    n = int(round(float(rate) * 3))
    tr = videos.index_video(tmp_path / "v.mp4", num_frames=n, fps=rate)
    frames = read_frames(tr.path, 24)
    duration = n / float(rate)
    assert len(frames) == round(duration * 24)
    times = np.arange(n) / float(rate)
    got = [videos.decode_index(f) for f in frames]
    want = [nearest(times, k / 24) for k in range(len(frames))]
    assert got == want


def test_variable_frame_rate_uses_timestamps(tmp_path):
    rng = np.random.default_rng(3)
    gaps = rng.choice([1 / 60, 1 / 30, 1 / 24, 1 / 12, 0.1], size=60)
    pts = np.concatenate([[0.0], np.cumsum(gaps)[:-1]])
    pts = np.round(pts, 3)
    tr = videos.index_video(tmp_path / "vfr.mkv", num_frames=60, fps=24, pts=pts)
    frames = read_frames(tr.path, 24)
    duration = pts[-1] + gaps[-1]
    assert abs(len(frames) - duration * 24) <= 1.5
    got = [videos.decode_index(f) for f in frames]
    want = [nearest(pts, k / 24) for k in range(len(frames))]
    assert sum(g != w for g, w in zip(got, want)) <= 1  # one tie may round either way at ms precision


def test_sizes_keep_aspect_never_upscale_and_exact(tmp_path):
    tr = videos.cuts_video(tmp_path / "c.mp4", shots=(10, 10), size=(160, 90))
    dec = VideoDecoder(tr.path, 24, {"a": OutputSize(64), "b": OutputSize(256), "s": OutputSize(exact=(48, 27))})
    first = next(iter(dec))
    assert first["a"].shape == (64, 114, 3)
    assert first["b"].shape == (90, 160, 3)  # smaller than 256: native size
    assert first["s"].shape == (27, 48, 3)
    assert all(v.dtype == np.uint8 for v in first.values())
    assert len(list(decode_video(tr.path, 24, min_side=32))) == 20


def test_portrait_video(tmp_path):
    tr = videos.cuts_video(tmp_path / "p.mp4", shots=(8, 8), size=(90, 160))
    f = next(decode_video(tr.path, 24, min_side=64))
    assert f.shape == (114, 64, 3)
    info = probe_video(tr.path)
    assert (info.width, info.height) == (90, 160)


@pytest.mark.parametrize("rotation,red_corner", [(90, "bottom_left"), (-90, "top_right"), (180, "bottom_right")])
def test_rotation_metadata_is_applied(tmp_path, rotation, red_corner):
    tr = videos.oriented_video(tmp_path / "r.mp4", size=(96, 64), num_frames=6, rotation=rotation)
    f = next(decode_video(tr.path, 24))
    h, w = f.shape[:2]
    assert (w, h) == ((64, 96) if rotation in (90, -90) else (96, 64))
    corners = {"top_left": f[2, 2], "top_right": f[2, -3], "bottom_left": f[-3, 2], "bottom_right": f[-3, -3]}
    red = [k for k, v in corners.items() if v[0] > 150 and v[2] < 100]
    assert red == [red_corner]
    info = probe_video(tr.path)
    assert (info.width, info.height) == (w, h)


def test_unusable_files_raise_video_error_with_a_reason(tmp_path):
    good = videos.cuts_video(tmp_path / "good.mp4", shots=(30, 30), size=(64, 36)).path
    cases = {
        "missing": (tmp_path / "nope.mp4", "not found"),
        "empty": (videos.write_empty(tmp_path / "empty.mp4"), "empty"),
        "text": (videos.write_text(tmp_path / "text.mp4"), "not a readable media file"),
        "audio": (videos.write_audio_only(tmp_path / "audio.m4a"), "audio only"),
        "noframes": (videos.write_no_frames(tmp_path / "noframes.mkv"), "frame"),
        "truncated": (videos.write_truncated(tmp_path / "trunc.mp4", good, 0.5), ""),
    }
    for name, (path, reason) in cases.items():
        with pytest.raises(VideoError) as e:
            list(decode_video(path, 24))
        assert reason in e.value.problem, (name, e.value.problem)


def test_truncated_faststart_file_is_detected(tmp_path):
    tr = videos.cuts_video(tmp_path / "fs.mp4", shots=(60, 60, 60), size=(64, 36), faststart=True)
    bad = videos.write_truncated(tmp_path / "fs_trunc.mp4", tr.path, 0.4)
    with pytest.raises(VideoError) as e:
        list(decode_video(bad, 24))
    assert "truncated" in e.value.problem or "corrupt" in e.value.problem


def test_video_with_audio_and_a_single_frame(tmp_path):
    one = videos.write_video(tmp_path / "one.mp4", [np.full((36, 64, 3), 200, np.uint8)], fps=24, audio_seconds=0.5)
    frames = read_frames(one, 24)
    assert len(frames) >= 1 and frames.shape[1:] == (36, 64, 3)


def test_find_videos_expands_directories_sorted(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    for name in ("d/b.mp4", "d/a.MKV", "d/sub/c.webm", "d/notes.txt", "d/.hidden.mp4"):
        (tmp_path / name).write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in find_videos([tmp_path / "d", tmp_path / "d" / "notes.txt"])]
    assert found == ["d/a.MKV", "d/b.mp4", "d/sub/c.webm", "d/notes.txt"]
