"""torchvision's Kinetics-400 video networks: R(2+1)D-18, Video Swin-T (swin3d_t).

A 3D backbone sees each clip resampled evenly to ``clip_frames`` frames; the default weights come from
torchvision's weights API (see :mod:`divita.backbones.weights`).
"""

from __future__ import annotations

from torch import nn

from divita.backbones._registry import BackboneSpec, register_backbone

KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)


@register_backbone(
    BackboneSpec(
        "r2plus1d",
        "3d",
        512,
        (112, 112),
        "kinetics-400",
        "R2Plus1D_18_Weights.KINETICS400_V1",
        16,
        "k",
        architecture="R(2+1)D-18 (torchvision)",
        resize_side=128,
        mean=KINETICS_MEAN,
        std=KINETICS_STD,
        notes="16 frames per 1 s clip ~ the weights' 16 frames at 15 fps; shorter side 128 (aspect kept), crop 112",
    ),
    classifier="fc",
    channels_last=True,
)
def build_r2plus1d() -> nn.Module:
    import torchvision.models.video as tvv

    return tvv.r2plus1d_18(weights=None)


@register_backbone(
    BackboneSpec(
        "swin3d",
        "3d",
        768,
        (224, 224),
        "kinetics-400+imagenet-1k",
        "Swin3D_T_Weights.KINETICS400_V1",
        16,
        "ik",
        architecture="Video Swin Transformer Tiny (torchvision swin3d_t)",
        resize_side=256,
        notes=(
            "tiny = the release's 768-d ik_swin; torchvision's ImageNet-22K Kinetics weights exist only for "
            "swin3d_b (1024-d); 16 frames per 1 s clip ~ the weights' 15 fps (they were evaluated on 32 frames)"
        ),
    ),
    classifier="head",
    channels_last=False,
    cast_weights=True,  # memory-bound: autocast's casts cost more than they save
)
def build_swin3d() -> nn.Module:
    import torchvision.models.video as tvv

    return tvv.swin3d_t(weights=None)
