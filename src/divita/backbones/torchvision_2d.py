"""torchvision's ImageNet-1k image networks: ShuffleNetV2 x1.0, ResNet-50, Swin-T.

A 2D backbone's clip feature is the mean of its frame features over frames sampled evenly in the clip; the
default weights come from torchvision's weights API (see :mod:`divita.backbones.weights`).
"""

from __future__ import annotations

from torch import nn

from divita.backbones._registry import BackboneSpec, register_backbone


@register_backbone(
    BackboneSpec(
        "shufflenet",
        "2d",
        1024,
        (224, 224),
        "imagenet-1k",
        "ShuffleNet_V2_X1_0_Weights.IMAGENET1K_V1",
        None,
        "i",
        architecture="ShuffleNetV2 x1.0 (torchvision)",
        resize_side=256,
    ),
    classifier="fc",
    channels_last=True,
)
def build_shufflenet() -> nn.Module:
    import torchvision.models as tvm

    return tvm.shufflenet_v2_x1_0(weights=None)


@register_backbone(
    BackboneSpec(
        "resnet",
        "2d",
        2048,
        (224, 224),
        "imagenet-1k",
        "ResNet50_Weights.IMAGENET1K_V1",
        None,
        "i",
        architecture="ResNet-50 (torchvision)",
        resize_side=256,
        notes=(
            "IMAGENET1K_V1 = the classic weights (pretrained=True); "
            "--weights ResNet50_Weights.IMAGENET1K_V2 for the newer recipe"
        ),
    ),
    classifier="fc",
    channels_last=True,
)
def build_resnet() -> nn.Module:
    import torchvision.models as tvm

    return tvm.resnet50(weights=None)


@register_backbone(
    BackboneSpec(
        "swin",
        "2d",
        768,
        (224, 224),
        "imagenet-1k",
        "Swin_T_Weights.IMAGENET1K_V1",
        None,
        "i",
        architecture="Swin Transformer Tiny (torchvision)",
        resize_side=232,
        interpolation="bicubic",
    ),
    classifier="head",
    channels_last=False,
)
def build_swin() -> nn.Module:
    import torchvision.models as tvm

    return tvm.swin_t(weights=None)
