"""``divita shots --format table|json|csv|edl``, ``--out DIR`` and ``--plot``: today's table and ``--json`` byte
for byte, editors' files that parse back to the printed spans, and one-line refusals of what has no output."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest

from builders import videos
from divita.cli import main
from divita.shots.formats import ShotList, csv_text, edl_text, read_shots

FIXED = ["--detector", "fixed", "--segment-frames", "20"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Two 2-s videos: 48 frames at 24 fps (one.mp4) and 60 frames at 29.97 fps (two.mp4)."""
    d = tmp_path_factory.mktemp("shots_cli")
    videos.cuts_video(d / "one.mp4", shots=(24, 24), size=(64, 36))
    videos.cuts_video(d / "two.mp4", shots=(30, 30), size=(64, 36), fps=Fraction(30000, 1001), seed=3)
    return d


def shots_cli(capsys, *args) -> tuple[int, str, str]:
    rc = main(["shots", *map(str, args)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_table_and_json_are_what_divita_shots_printed_before(clips, capsys):
    v = clips / "one.mp4"
    rc, table, _ = shots_cli(capsys, v, *FIXED)
    assert rc == 0 and table == (
        f"{v}  (48 frames at 24 fps, 3 shots)\n"
        "   shot    start      end  frames   start_s     end_s\n"
        "      0        0       19      20     0.000     0.833\n"
        "      1       20       39      20     0.833     1.667\n"
        "      2       40       47       8     1.667     2.000\n"
    )
    assert shots_cli(capsys, v, *FIXED, "--format", "table")[1] == table
    rc, legacy, _ = shots_cli(capsys, v, *FIXED, "--json")
    assert rc == 0 and legacy == (
        f'{{"video": "{v}", "fps": 24.0, "num_frames": 48, "shots": [[0, 19], [20, 39], [40, 47]], '
        '"shot_seconds": [[0.0, 0.8333], [0.8333, 1.6667], [1.6667, 2.0]]}\n'
    )
    assert shots_cli(capsys, v, *FIXED, "--format", "json")[1] == legacy
    with pytest.raises(SystemExit):
        main(["shots", str(v), "--json", "--format", "csv"])


@pytest.mark.parametrize("fmt", ["csv", "edl"])
def test_csv_and_edl_on_stdout_count_the_videos_own_frames(clips, capsys, tmp_path, fmt):
    v = clips / "two.mp4"
    rc, text, _ = shots_cli(capsys, v, *FIXED, "--format", fmt)
    assert rc == 0
    shots = ShotList(str(v), 24.0, 48, [(0, 19), (20, 39), (40, 47)], 29.97)
    assert text == (csv_text(shots) if fmt == "csv" else edl_text(shots))
    (tmp_path / f"two.{fmt}").write_text(text)
    assert read_shots(tmp_path / f"two.{fmt}", rate=29.97) == [(0, 24), (25, 49), (50, 59)]
    assert read_shots(tmp_path / f"two.{fmt}", rate=29.97, fps=24) == [(0, 19), (20, 39), (40, 47)]
    if fmt == "edl":
        assert "FCM: DROP FRAME" in text and "00:00:00;25 00:00:01;20" in text


def test_several_videos_in_csv_or_edl_need_out(clips, capsys):
    rc, out, err = shots_cli(capsys, clips / "one.mp4", clips / "two.mp4", *FIXED, "--format", "edl")
    assert rc == 2 and out == ""
    assert err == (
        "divita shots: error: --format edl without --out prints one video's EDL: with 2 videos, add --out DIR "
        "(DIR/<stem>.edl each)\n"
    )


def test_out_writes_one_file_per_video_with_what_stdout_would_show(clips, capsys, tmp_path):
    one, two = clips / "one.mp4", clips / "two.mp4"
    for fmt, ext in (("table", "txt"), ("json", "json"), ("csv", "csv"), ("edl", "edl")):
        out = tmp_path / fmt
        rc, printed, _ = shots_cli(capsys, one, two, *FIXED, "--format", fmt, "--out", out)
        assert rc == 0
        assert printed == f"{one}: 3 shots -> {out / ('one.' + ext)}\n{two}: 3 shots -> {out / ('two.' + ext)}\n"
        assert sorted(p.name for p in out.iterdir()) == [f"one.{ext}", f"two.{ext}"]
        for v in (one, two):
            assert (out / f"{v.stem}.{ext}").read_text() == shots_cli(capsys, v, *FIXED, "--format", fmt)[1]
    assert json.loads((tmp_path / "json" / "two.json").read_text())["shots"] == [[0, 19], [20, 39], [40, 47]]
    rc, printed, _ = shots_cli(capsys, one, *FIXED, "--json", "--out", tmp_path / "alias")
    assert rc == 0 and (tmp_path / "alias" / "one.json").read_text() == (tmp_path / "json" / "one.json").read_text()


def test_out_refuses_two_videos_with_one_stem_and_goes_with_legacy_csv_alone(clips, capsys, tmp_path):
    other = tmp_path / "else"
    other.mkdir()
    (other / "one.mp4").write_bytes((clips / "one.mp4").read_bytes())
    rc, _, err = shots_cli(capsys, clips / "one.mp4", other / "one.mp4", *FIXED, "--out", tmp_path / "o")
    assert rc == 2 and err.startswith(f"divita shots: error: {other / 'one.mp4'}: same file name stem as ")
    assert not (tmp_path / "o").exists()
    rc, _, err = shots_cli(capsys, clips / "one.mp4", *FIXED, "--csv", tmp_path / "c", "--out", tmp_path / "o")
    assert rc == 2 and "--csv DIR and --out DIR: give one" in err
    rc, printed, _ = shots_cli(capsys, clips / "one.mp4", *FIXED, "--csv", tmp_path / "c")
    assert rc == 0 and (tmp_path / "c" / "one.csv").read_text().splitlines()[:2] == [
        "start_frame,end_frame,start_s,end_s",
        "0,19,0.000,0.833",
    ]


def test_plot_draws_one_named_sheet_or_one_per_video_into_out(clips, capsys, tmp_path):
    one, two = clips / "one.mp4", clips / "two.mp4"
    sheet = tmp_path / "sheet.png"
    rc, printed, err = shots_cli(capsys, one, *FIXED, "--plot", sheet)
    assert rc == 0 and printed.startswith(f"{one}  (48 frames")  # the table is untouched on stdout
    assert err == f"{one}: contact sheet of 3 shots -> {sheet}\n"
    assert sheet.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rc, printed, _ = shots_cli(capsys, one, two, *FIXED, "--format", "edl", "--plot", "--out", tmp_path / "o")
    assert rc == 0 and f"{two}: contact sheet of 3 shots -> {tmp_path / 'o' / 'two.png'}" in printed.splitlines()
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["one.edl", "one.png", "two.edl", "two.png"]
    rc, printed, _ = shots_cli(capsys, one, *FIXED, "--csv", tmp_path / "c", "--plot")
    assert rc == 0 and sorted(p.name for p in (tmp_path / "c").iterdir()) == ["one.csv", "one.png"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--plot", "sheet.png"], "sheet.png: --plot names one sheet but there are 2 videos"),
        (["--plot"], "--plot without a file name writes DIR/<stem>.png: add --out DIR, or name the PNG"),
        (["--plot", "two.mp4"], "two.mp4: --plot writes a PNG: give a file name ending in .png"),
    ],
)
def test_plot_refuses_what_it_cannot_name(clips, capsys, args, message):
    rc, out, err = shots_cli(capsys, clips / "one.mp4", clips / "two.mp4", *FIXED, *args)
    assert rc == 2 and out == "" and err.startswith(f"divita shots: error: {message}") and err.count("\n") == 1
