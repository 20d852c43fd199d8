"""Inference runtimes (src/divita/backbones/runtime.py): every registered backbone exported to ONNX and run by ONNX
Runtime and OpenVINO gives torch's float32 features (cosine >= 0.999 per clip), the export is cached, a runtime that
is not installed falls back to torch with one line, and `divita predict --runtime` gives torch's genres.

The tests of a runtime are skipped only when its package (``divita[onnx]`` / ``divita[openvino]``) is not installed.
"""

from __future__ import annotations

import json
import zlib

import pytest
import torch
import torch.nn.functional as F

from builders.runtimes import RUNTIME_PARAMS
from divita import DivitaError
from divita import backbones as B
from divita.backbones import runtime as R


@pytest.fixture
def fresh_fallback_notes(monkeypatch):
    """Forget which fallbacks were already said in this process."""
    monkeypatch.setattr(R, "_fallbacks_said", set())


def _clips() -> torch.Tensor:
    """(3, 8, 96, 128, 3) uint8: three different clips (a batch other than the export's 2)."""
    return torch.stack([B.smooth_test_clip(8, 96, 128, seed=s) for s in (1, 2, 3)])


def _min_cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(F.cosine_similarity(a.double(), b.double(), dim=1).min())


@pytest.mark.parametrize("runtime", RUNTIME_PARAMS)
@pytest.mark.parametrize("name", B.list_backbones())
def test_every_backbone_in_every_runtime_matches_torch_float32(name, runtime, runtime_cache):
    """Random weights, 3D backbones on 4-frame clips; each clip's feature within cosine 0.999 of torch's."""
    frames = 4 if B.get_spec(name).kind == "3d" else None
    reference = B.load_encoder(name, weights="random", precision="float32", clip_frames=frames)
    enc = B.load_encoder(name, weights="random", precision="auto", clip_frames=frames, runtime=runtime)
    assert enc.runtime == runtime and enc.network is not None and enc.precision == "float32"
    clips = _clips()
    want, got = reference.encode(clips), enc.encode(clips)
    assert got.shape == want.shape == (3, B.get_spec(name).num_features) and got.dtype == torch.float32
    assert _min_cosine(got, want) >= 0.999
    assert _min_cosine(enc.encode(clips[:1]), want[:1]) >= 0.999  # the batch dimension is free
    assert "runtime" not in enc.settings()  # the runtime is not part of what the store records


@pytest.mark.parametrize("runtime", RUNTIME_PARAMS)
def test_the_export_is_cached_by_weights_and_read_back_without_exporting(runtime, runtime_cache, monkeypatch):
    B.load_encoder("shufflenet", weights="random", precision="float32", runtime=runtime)
    files = sorted(p.name for p in runtime_cache.glob("shufflenet-*.onnx"))
    assert files and not list(runtime_cache.glob(".*tmp*"))  # written atomically: no temporary left
    key = json.loads((runtime_cache / files[0]).with_suffix(".json").read_text())
    assert key["name"] == "shufflenet" and len(key["weights_sha256"]) == 64 and key["torch"] == torch.__version__

    def no_export(*args, **kwargs):
        raise AssertionError("exported again although the cache holds the network")

    monkeypatch.setattr(torch.onnx, "export", no_export)
    again = B.load_encoder("shufflenet", weights="random", precision="float32", runtime=runtime)
    assert again.network.path.name in files
    # other weights: another file (exporting it is refused here, so it fails with one line)
    other = B.load_encoder("shufflenet", weights="random", precision="float32")
    with torch.no_grad():
        next(other.model.parameters()).add_(1.0)
    with pytest.raises(DivitaError, match="cannot be exported to ONNX"):
        other.use_runtime(runtime)


def test_a_runtime_that_is_not_installed_falls_back_to_torch_with_one_line(monkeypatch, capsys, fresh_fallback_notes):
    def not_installed(name):
        raise ImportError(f"No module named '{name}'")

    monkeypatch.setattr(R, "import_runtime", not_installed)
    clips = _clips()
    want = B.load_encoder("shufflenet", weights="random", precision="float32").encode(clips)
    for _ in range(2):
        enc = B.load_encoder("shufflenet", weights="random", precision="float32", runtime="openvino")
        assert enc.runtime == "torch" and enc.network is None
        assert torch.equal(enc.encode(clips), want)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines  # said once per process
    assert "runtime openvino is not installed" in lines[0] and "running torch" in lines[0]
    assert "divita[openvino]" in lines[0]


def test_an_unknown_runtime_is_a_one_line_error():
    with pytest.raises(DivitaError, match="unknown runtime 'tensorrt'; choose from: torch, onnxruntime, openvino"):
        B.load_encoder("shufflenet", weights="random", runtime="tensorrt")
    from divita.features.plan import ExtractionSettings

    with pytest.raises(DivitaError, match="unknown runtime"):
        ExtractionSettings(runtime="tensorrt")


def test_the_runtime_enters_no_fingerprint():
    from divita.features.plan import ExtractionSettings

    torch_settings = ExtractionSettings(("shufflenet",), detector="fixed")
    other = ExtractionSettings.build(settings=torch_settings, runtime="onnxruntime")
    assert other.runtime == "onnxruntime" and other.shot_detector().runtime == "onnxruntime"
    assert other.features_fingerprint() == torch_settings.features_fingerprint()
    assert "runtime" not in json.dumps(other.features_fingerprint())


@pytest.fixture(scope="module")
def genre_checkpoint(tmp_path_factory):
    """A checkpoint trained on `divita extract` stores of generated genre videos (EfficientNet-Lite0, real ImageNet
    weights), and three held-out videos."""
    from builders.genre_videos import train_genre_checkpoint

    root = tmp_path_factory.mktemp("predict")
    seed = lambda g, k, mid: zlib.crc32(mid.encode()) % 1000  # noqa: E731
    ckpt = train_genre_checkpoint(root, [0, 0, 0, 1, 2], seed, max_epochs=15, batch_size=8)
    return ckpt, sorted(str(p) for p in (root / "new").iterdir())[:3]


@pytest.mark.parametrize("runtime", RUNTIME_PARAMS)
def test_predict_with_a_runtime_gives_torchs_genres(runtime, runtime_cache, genre_checkpoint, capsys):
    """`divita predict` by torch and by the runtime: the same top and predicted genres, probabilities within 1e-3."""
    from divita.cli import main

    ckpt, videos = genre_checkpoint
    capsys.readouterr()  # what training printed
    results = {}
    for rt in ("torch", runtime):
        code = main(["predict", *videos, "--checkpoint", str(ckpt), "--json", "--no-progress", "--runtime", rt])
        assert code == 0
        results[rt] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    for want, got in zip(results["torch"], results[runtime], strict=True):
        assert next(iter(got["genres"])) == next(iter(want["genres"])) and got["predicted"] == want["predicted"]
        for genre, p in want["genres"].items():
            assert got["genres"][genre] == pytest.approx(p, abs=1e-3)
