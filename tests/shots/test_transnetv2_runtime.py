"""TransNetV2 run by ONNX Runtime / OpenVINO (``--runtime``): the same per-frame probabilities as torch float32 and
the same shots on a generated video; a runtime that is not installed falls back to torch with one line.

The tests of a runtime are skipped only when its package (``divita[onnx]`` / ``divita[openvino]``) is not installed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from builders import videos
from builders.runtimes import RUNTIME_PARAMS
from divita import shots as S
from divita.backbones import runtime as R
from divita.errors import DivitaError
from divita.shots import transnetv2
from divita.video import read_frames


@pytest.fixture(scope="module")
def cut_video(tmp_path_factory):
    """Six shots joined by hard cuts, 160x90, 229 frames (five 100-frame windows, the last one padded)."""
    return videos.cuts_video(tmp_path_factory.mktemp("shots") / "cuts.mp4", shots=(30, 40, 26, 34, 45, 54))


@pytest.fixture(scope="module")
def small_frames(cut_video):
    return read_frames(cut_video.path, 24, size=S.TRANSNET_SIZE)


@pytest.fixture(scope="module")
def float32_predictions(small_frames):
    return S.FastTransNetV2("cpu", "float32").predict_frames(small_frames)


@pytest.mark.parametrize("runtime", RUNTIME_PARAMS)
def test_transnetv2_in_a_runtime_gives_torchs_probabilities_and_shots(
    runtime, runtime_cache, cut_video, small_frames, float32_predictions
):
    model = S.FastTransNetV2("cpu", "auto", runtime=runtime)
    assert model.runtime == runtime and model.precision == "float32" and model.network is not None
    p = model.predict_frames(small_frames)
    assert p.shape == float32_predictions.shape == (len(small_frames),)
    assert np.abs(p - float32_predictions).max() < 1e-4
    want = S.predictions_to_shots(float32_predictions)
    assert S.predictions_to_shots(p) == want
    assert [s for s, _ in want[1:]] == pytest.approx(cut_video.cuts, abs=2)  # the cuts are found
    # through the detector and its stream (pushed in uneven chunks), from the video file
    detector = S.ShotDetector("transnetv2", runtime=runtime, device="cpu")
    assert S.detect(cut_video.path, detector, chunk=37) == want
    assert "runtime" not in json_keys(detector.params())  # recorded parameters: no runtime
    # the default detector (TransNetV2 plus checked cuts) runs its network in the same runtime
    vetted = S.ShotDetector("transnetv2-vetted", runtime=runtime, device="cpu").stream()
    assert vetted.primary.model.runtime == runtime


@pytest.mark.parametrize("runtime", RUNTIME_PARAMS)
def test_a_warm_start_reads_the_cached_export_and_builds_no_torch_network(
    runtime, runtime_cache, small_frames, float32_predictions, monkeypatch
):
    S.FastTransNetV2("cpu", "float32", runtime=runtime)  # exported (or already cached by the test above)
    assert len(list(runtime_cache.glob("transnetv2-*.onnx"))) == 1 and not list(runtime_cache.glob(".*tmp*"))

    def refused(*args, **kwargs):
        raise AssertionError("a warm start built or exported the network")

    monkeypatch.setattr(torch.onnx, "export", refused)
    monkeypatch.setattr(transnetv2, "build_transnetv2_package_model", refused)
    model = S.FastTransNetV2("cpu", "float32", runtime=runtime)
    assert model.net is None and model.network.path.parent == runtime_cache
    assert np.abs(model.predict_frames(small_frames) - float32_predictions).max() < 1e-4


def json_keys(params: dict) -> set:
    keys = set()
    for k, v in params.items():
        keys.add(k)
        if isinstance(v, dict):
            keys |= json_keys(v)
    return keys


def test_a_runtime_that_is_not_installed_runs_transnetv2_in_torch(monkeypatch, capsys, small_frames):
    def not_installed(name):
        raise ImportError(f"No module named '{name}'")

    monkeypatch.setattr(R, "import_runtime", not_installed)
    monkeypatch.setattr(R, "_fallbacks_said", set())
    model = S.FastTransNetV2("cpu", "float32", runtime="onnxruntime")
    assert model.runtime == "torch" and model.network is None
    reference = S.FastTransNetV2("cpu", "float32").predict_frames(small_frames[:120])
    assert np.array_equal(model.predict_frames(small_frames[:120]), reference)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "runtime onnxruntime is not installed" in lines[0]


def test_an_unknown_runtime_is_refused_by_the_detector():
    with pytest.raises(DivitaError, match="unknown runtime 'tensorrt'"):
        S.ShotDetector("transnetv2", runtime="tensorrt")
