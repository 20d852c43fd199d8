"""torchvision's ImageNet-1k image networks: ShuffleNetV2 x1.0, ResNet-50, Swin-T.

A 2D backbone's clip feature is the mean of its frame features over frames sampled evenly in the clip; the
default weights come from torchvision's weights API (see :mod:`divita.backbones.weights`).
"""

from __future__ import annotations

from torch import nn


def build_shufflenet() -> nn.Module:
    import torchvision.models as tvm

    return tvm.shufflenet_v2_x1_0(weights=None)


def build_resnet() -> nn.Module:
    import torchvision.models as tvm

    return tvm.resnet50(weights=None)


def build_swin() -> nn.Module:
    import torchvision.models as tvm

    return tvm.swin_t(weights=None)
