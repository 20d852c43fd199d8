"""torchvision's Kinetics-400 video networks: R(2+1)D-18, Video Swin-T (swin3d_t).

A 3D backbone sees each clip resampled evenly to ``clip_frames`` frames; the default weights come from
torchvision's weights API (see :mod:`divita.backbones.weights`).
"""

from __future__ import annotations

from torch import nn


def build_r2plus1d() -> nn.Module:
    import torchvision.models.video as tvv

    return tvv.r2plus1d_18(weights=None)


def build_swin3d() -> nn.Module:
    import torchvision.models.video as tvv

    return tvv.swin3d_t(weights=None)
