"""Shot lists for editors: SMPTE timecode (drop-frame too), PySceneDetect's scene-list CSV and CMX 3600 EDL,
written from detected shots and parsed back to the same frame spans at 24, 25 and 29.97 fps."""

from __future__ import annotations

import io
from fractions import Fraction

import pytest

import divita
from builders import videos
from divita.errors import DivitaError
from divita.shots.formats import CSV_COLUMNS, ShotList, csv_text, edl_text, parse_csv, parse_edl, read_shots
from divita.shots.timecode import (
    frames_to_timecode,
    from_native,
    is_drop_frame,
    timecode_to_frames,
    to_native,
    video_rate,
)
from divita.video import probe_video

NTSC = Fraction(30000, 1001)


# ------------------------------------------------------------------------------------------------ timecode


@pytest.mark.parametrize(
    "frame, rate, want",
    [
        (0, Fraction(24), "00:00:00:00"),
        (24 * 3661 + 5, Fraction(24), "01:01:01:05"),
        (25 * 60 + 24, Fraction(25), "00:01:00:24"),
        (1799, NTSC, "00:00:59;29"),
        (1800, NTSC, "00:01:00;02"),  # ;00 and ;01 do not exist at the start of minute 1
        (17982, NTSC, "00:10:00;00"),  # ... but do at every tenth minute
        (107892, NTSC, "01:00:00;00"),  # one hour of 29.97 fps video reads one hour
        (3600, Fraction(60000, 1001), "00:01:00;04"),
        (24, Fraction(24000, 1001), "00:00:01:00"),  # 23.976 is non-drop-frame
    ],
)
def test_timecode_counts_frames_at_the_nominal_rate_and_drops_frame_numbers_at_2997(frame, rate, want):
    assert frames_to_timecode(frame, rate) == want
    assert timecode_to_frames(want, rate) == frame


@pytest.mark.parametrize("rate", [Fraction(24), Fraction(25), NTSC, Fraction(60000, 1001), Fraction(24000, 1001)])
def test_timecode_round_trips_every_frame_of_two_hours(rate):
    frames = range(0, int(2 * 3600 * rate), 37)
    assert [timecode_to_frames(frames_to_timecode(n, rate), rate) for n in frames] == list(frames)


def test_drop_frame_rejects_the_frame_numbers_it_skips_and_bad_timecodes():
    with pytest.raises(ValueError, match="drop-frame"):
        timecode_to_frames("00:01:00;01", NTSC)
    assert timecode_to_frames("00:10:00;00", NTSC) == 17982
    for bad in ("00:00:00:25", "00:61:00:00", "1:2:3", "00:00:00:xx"):
        with pytest.raises(ValueError):
            timecode_to_frames(bad, Fraction(25))


def test_video_rate_snaps_the_ntsc_rates_and_only_those_are_drop_frame():
    assert video_rate(29.97) == NTSC and video_rate(29.97003) == NTSC and video_rate(23.976) == Fraction(24000, 1001)
    assert video_rate(25.0) == 25 and video_rate(12.5) == Fraction(25, 2) and video_rate(30) == 30
    assert [is_drop_frame(video_rate(r)) for r in (23.976, 24, 25, 29.97, 30, 59.94, 60)] == [
        False,
        False,
        False,
        True,
        False,
        True,
        False,
    ]


@pytest.mark.parametrize("rate", [Fraction(25), NTSC, Fraction(30), Fraction(60000, 1001), Fraction(24)])
def test_native_frames_are_the_ones_the_decoder_shows_and_map_back_exactly(rate):
    spans = [(0, 0), (1, 23), (24, 24), (25, 101), (110, 300)]
    native = to_native(spans, 24.0, rate)
    for (s, e), (a, b) in zip(spans, native):
        assert a == int(s * rate / 24 + Fraction(1, 2))  # the source frame nearest output frame s
        assert b + 1 == int((e + 1) * rate / 24 + Fraction(1, 2))
    assert from_native(native, rate, 24.0) == spans


# ------------------------------------------------------------------------------------------------ writers


def test_csv_has_pyscenedetects_columns_one_based_frames_and_an_inclusive_end_frame():
    text = csv_text(ShotList("/v/trailer.mp4", 24.0, 72, [(0, 23), (24, 59), (66, 71)], 24.0))
    lines = text.splitlines()
    assert lines[0] == ",".join(CSV_COLUMNS)
    assert lines[1] == "1,1,00:00:00.000,0.000,24,00:00:01.000,1.000,24,00:00:01.000,1.000"
    assert lines[2] == "2,25,00:00:01.000,1.000,60,00:00:02.500,2.500,36,00:00:01.500,1.500"
    assert lines[3] == "3,67,00:00:02.750,2.750,72,00:00:03.000,3.000,6,00:00:00.250,0.250"
    assert text.endswith("\n") and len(lines) == 4


def test_csv_is_what_scenedetects_own_writer_makes_of_the_same_scenes():
    from scenedetect import FrameTimecode
    from scenedetect.output import write_scene_list

    shots = ShotList("/v/a.mp4", 24.0, 120, [(0, 40), (41, 119)], 29.97)
    want = io.StringIO()
    scenes = [(FrameTimecode(s, fps=NTSC), FrameTimecode(e + 1, fps=NTSC)) for s, e in shots.native_shots()]
    write_scene_list(want, scenes, include_cut_list=False)
    assert csv_text(shots) == want.getvalue()
    assert shots.native_shots() == [(0, 50), (51, 149)]


def test_edl_events_titles_and_frame_code_mode():
    shots = ShotList("/v/my trailer.mp4", 24.0, 72, [(0, 23), (24, 59), (66, 71)], 25.0)
    text = edl_text(shots)
    assert text.splitlines()[:3] == ["TITLE: my trailer", "FCM: NON-DROP FRAME", ""]
    events = [line for line in text.splitlines() if line[:3].isdigit()]
    assert events == [
        "001  AX       V     C        00:00:00:00 00:00:01:00 00:00:00:00 00:00:01:00",
        "002  AX       V     C        00:00:01:00 00:00:02:13 00:00:01:00 00:00:02:13",
        "003  AX       V     C        00:00:02:19 00:00:03:00 00:00:02:19 00:00:03:00",
    ]
    assert text.count("* FROM CLIP NAME: my trailer.mp4") == 3
    ntsc = edl_text(ShotList("/v/a.mp4", 24.0, 2400, [(0, 1439), (1440, 2399)], 29.97))
    assert "FCM: DROP FRAME" in ntsc.splitlines()
    # 60 s and 100 s are native frames 1798 and 2997 (29.97 fps): 00:00:59;28 and 00:01:39;29 in drop-frame
    assert "002  AX       V     C        00:00:59;28 00:01:39;29 00:00:59;28 00:01:39;29" in ntsc.splitlines()


# ------------------------------------------------------------------------------------------------ parsers


def test_parsers_read_what_scenedetect_writes_itself():
    from scenedetect import FrameTimecode
    from scenedetect.output import write_scene_list, write_scene_list_edl

    scenes = [(FrameTimecode(a, fps=25.0), FrameTimecode(b, fps=25.0)) for a, b in ((0, 30), (30, 75), (75, 130))]
    with_cuts = io.StringIO()
    write_scene_list(with_cuts, scenes)  # with its cut list (the timecodes of the cuts) before the header
    assert with_cuts.getvalue().startswith("00:00:01.200,00:00:03.000\n")
    assert parse_csv(with_cuts.getvalue()) == [(0, 29), (30, 74), (75, 129)]
    assert parse_csv(with_cuts.getvalue(), fps=24) == [(0, 28), (29, 71), (72, 124)]
    edl = io.StringIO()
    write_scene_list_edl(edl, scenes)
    assert parse_edl(edl.getvalue(), 25) == [(0, 29), (30, 74), (75, 129)]


def test_edl_parser_skips_the_empty_half_of_a_dissolve_and_audio_events():
    text = "\n".join(
        [
            "TITLE: t",
            "FCM: NON-DROP FRAME",
            "001  AX       V     C        00:00:00:00 00:00:02:00 01:00:00:00 01:00:02:00",
            "002  AX       A     C        00:00:00:00 00:00:02:00 01:00:00:00 01:00:02:00",
            "003  AX       V     C        00:00:02:00 00:00:02:00 01:00:02:00 01:00:02:00",
            "003  BX       V     D    012 00:00:10:00 00:00:12:12 01:00:02:00 01:00:04:12",
        ]
    )
    assert parse_edl(text, 24) == [(0, 47), (240, 299)]


def test_parsers_refuse_malformed_files_with_the_file_and_the_problem(tmp_path):
    bad_csv = tmp_path / "x.csv"
    bad_csv.write_text("a,b\n1,2\n")
    with pytest.raises(DivitaError, match=r"x\.csv: not a scene-list CSV"):
        read_shots(bad_csv)
    bad_row = tmp_path / "y.csv"
    bad_row.write_text(",".join(CSV_COLUMNS) + "\n1,one,,,9,,,,,\n")
    with pytest.raises(DivitaError, match=r"y\.csv: row 2"):
        read_shots(bad_row)
    edl = tmp_path / "z.edl"
    edl.write_text("FCM: DROP FRAME\n001  AX       V     C        00:00:00;00 00:00:01;00 00:00:00;00 00:00:01;00\n")
    with pytest.raises(DivitaError, match=r"z\.edl: line 1: drop-frame timecode, but the rate is 25 fps"):
        read_shots(edl, rate=25)
    with pytest.raises(DivitaError, match="does not record the frame rate"):
        read_shots(edl)
    assert read_shots(edl, rate=29.97) == [(0, 29)]
    with pytest.raises(DivitaError, match="expected a .csv or .edl"):
        read_shots(tmp_path / "z.txt")


# ------------------------------------------------------------------------------------ round trips on videos


@pytest.fixture(scope="module", params=[24, 25, NTSC], ids=["24", "25", "29.97"])
def rated_video(request, tmp_path_factory):
    """Shots of 30, 40, 26 and 34 frames at the rate: a cut, a fade to black and a cut (the fade's frames are a
    gap between two shots)."""
    rate = request.param
    path = tmp_path_factory.mktemp("rated") / f"v{float(rate):g}.mp4"
    truth = videos.shots_video(path, (30, 40, 26, 34), ["cut", "black", "cut"], size=(96, 54), fps=rate)
    shots = divita.detect_shots(path, "transnetv2+dips")
    info = probe_video(path)
    return truth, ShotList(str(path), 24.0, truth.num_frames, shots, info.fps)


def test_files_parse_back_to_the_same_spans_at_the_videos_rate_and_at_24(rated_video, tmp_path):
    truth, shots = rated_video
    assert abs(float(shots.rate) - truth.fps) < 1e-6
    assert len(shots.shots) == 4, shots.shots  # the fade's frames are in no shot
    assert any(b[0] > a[1] + 1 for a, b in zip(shots.shots, shots.shots[1:]))
    native = shots.native_shots()
    # each hard cut lands on the video's own frame number, or on the next one where resampling to 24 fps
    # skipped the cut's frame (29.97 -> 24 drops one frame in five)
    for cut in truth.cuts:
        assert any(0 <= s - cut <= 1 for s, _ in native), (cut, native)
    if truth.fps == 24:
        assert set(truth.cuts) <= {s for s, _ in native}
    (tmp_path / "v.csv").write_text(csv_text(shots))
    (tmp_path / "v.edl").write_text(edl_text(shots))
    for name in ("v.csv", "v.edl"):
        assert read_shots(tmp_path / name, rate=truth.fps) == native
        assert read_shots(tmp_path / name, rate=truth.fps, fps=24.0) == list(shots.shots)
    drop = "FCM: DROP FRAME" in edl_text(shots)
    assert drop == (shots.rate == NTSC)
