"""Inference precision of a clip encoder: batch-norm folding, reduced precision, and the check against float32.

Precision ``"auto"``: batch norms folded into the preceding convolutions (verified exact), then on CPU
bfloat16 autocast (plus channels-last memory format for convolutional networks) where the CPU has native
bfloat16 support, on CUDA float16 autocast (+ channels-last). At load the encoder checks that this keeps the
feature of a smooth synthetic clip (:func:`smooth_test_clip`) at cosine >= :data:`PRECISION_COSINE_MIN` to plain
float32 and falls back to float32 (BN still folded) otherwise -- EfficientNet-Lite0's real weights do (bfloat16
gives ~0.998 there). ``"float32"`` is the plain reference network; ``"bfloat16"`` and ``"float16"`` force a
reduced precision without the check.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from divita.hardware import auto_reduced_precision, precision_name

PRECISION_COSINE_MIN = 0.999  # read at each check: setting divita.backbones.precision.PRECISION_COSINE_MIN applies
DTYPES: dict[str, torch.dtype | None] = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}
FOLD_COSINE_MIN = 0.99999  # a folded network must match the original this closely, else it is not used

_CONVS = (nn.Conv2d, nn.Conv3d)
_BNS = (nn.BatchNorm2d, nn.BatchNorm3d)


def check_precision(precision: str) -> None:
    """One-line :class:`~divita.errors.DivitaError` unless ``precision`` is one of
    :data:`divita.hardware.PRECISIONS` (the canonical names of the precision vocabulary)."""
    precision_name(precision)


def reduced_precision_for(device: torch.device) -> str | None:
    """The fast reduced precision ``"auto"`` tries on ``device`` (:func:`divita.hardware.auto_reduced_precision`)."""
    return auto_reduced_precision(device)


def precision_ok(cosine: float) -> bool:
    """Whether a reduced precision whose features are at ``cosine`` to float32 is close enough to keep."""
    return math.isfinite(cosine) and cosine >= PRECISION_COSINE_MIN


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """The smallest cosine similarity between the rows of (N, ...) ``a`` and ``b``, in float64."""
    return float(F.cosine_similarity(a.double().flatten(1), b.double().flatten(1), dim=1).min())


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, _BNS) for m in model.modules())


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


# --------------------------------------------------------------------------------------------- BN folding


def _conv_bn_pairs(model: nn.Module, example: torch.Tensor) -> tuple[list[tuple[str, str]], torch.Tensor]:
    """(conv name, BN name) pairs where the BN alone reads the conv's output, each called once, observed on a
    forward of ``example``; and that forward's float output."""
    produced: dict[int, tuple[str, torch.Tensor]] = {}
    consumers: dict[int, list[str]] = {}
    calls: dict[str, int] = {}
    names = {mod: name for name, mod in model.named_modules()}
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
        output = model(example).float()
    finally:
        for h in hooks:
            h.remove()
    modules = dict(model.named_modules())
    pairs = []
    for key, (conv_name, _) in produced.items():
        users = consumers.get(key, [])
        if len(users) == 1 and isinstance(modules[users[0]], _BNS) and modules[users[0]].running_var is not None:
            pairs.append((conv_name, users[0]))
    bn_uses = [bn for _, bn in pairs]
    return [(c, bn) for c, bn in pairs if calls[c] == 1 and bn_uses.count(bn) == 1], output  # shared modules stay


def _fold_into_conv(conv: nn.Module, bn: nn.Module) -> None:
    """conv <- bn(conv(.)) for an eval-mode BN: scale the weights per output channel, shift the bias."""
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


def _bn_replacement(bn: nn.Module) -> nn.Module | None:
    """What stands in for a folded BN: an identity (timm's fused BN+activation keeps its activation); None for an
    unknown BN subclass, which is instead turned into an exact identity affine map in place."""
    if type(bn) in _BNS:
        return nn.Identity()
    if hasattr(bn, "act") and hasattr(bn, "drop"):  # timm BatchNormAct
        return nn.Sequential(bn.drop, bn.act)
    bn.running_mean.zero_()
    bn.running_var.fill_(1.0 - bn.eps)
    if bn.weight is not None:
        bn.weight.fill_(1.0)
    if bn.bias is not None:
        bn.bias.zero_()
    return None


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
    pairs, before = _conv_bn_pairs(folded, example)
    if not pairs:
        return model, 0
    modules = dict(folded.named_modules())
    for conv_name, bn_name in pairs:
        _fold_into_conv(modules[conv_name], modules[bn_name])
        replacement = _bn_replacement(modules[bn_name])
        if replacement is not None:
            parent_name, _, child = bn_name.rpartition(".")
            setattr(modules[parent_name] if parent_name else folded, child, replacement)
    after = folded(example).float()
    if before.shape != after.shape:
        return model, 0
    if cosine(before.reshape(len(before), -1), after.reshape(len(after), -1)) < FOLD_COSINE_MIN:
        return model, 0
    return folded, len(pairs)


def example_input(
    kind: str, input_size: tuple[int, int], clip_frames: int | None, device: torch.device
) -> torch.Tensor:
    """A seeded random network input, (1, 3, h, w) for 2D and (1, 3, T, h, w) for 3D, to trace BN folding with."""
    h, w = input_size
    shape = (1, 3, h, w) if kind == "2d" else (1, 3, clip_frames or 16, h, w)
    return torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(device)
