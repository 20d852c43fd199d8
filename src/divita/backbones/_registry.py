"""The backbone registry: name -> what the network is and sees (:class:`BackboneSpec`) and how to build it and
read its weights (:class:`BackboneEntry`).

Each family module (``torchvision_2d``, ``torchvision_3d``, ``shufflenet3d``, ``efficientnet_lite``) registers
its backbones with the :func:`register_backbone` decorator on their builders; ``divita.backbones`` imports the
family modules in registry order, so importing any part of the package fills the registry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from divita.errors import DivitaError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

StateDict = dict  # str -> torch.Tensor


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
class KeyRemap:
    """A checkpoint naming other than the network's: ``remap(sd)`` renames a state dict read from such a file to
    the network's keys; ``inverse`` renames the network's keys back (to write checkpoints in that naming)."""

    source: str  # whose naming, e.g. "efficientnet_lite_pytorch"
    to_network: Callable[[StateDict], StateDict]
    inverse: Callable[[StateDict], StateDict]

    def __call__(self, state_dict: StateDict) -> StateDict:
        return self.to_network(state_dict)


@dataclass(frozen=True)
class BackboneEntry:
    """One registered backbone: its spec and how to build it and load its weights."""

    spec: BackboneSpec
    build: Callable[[], nn.Module]  # randomly initialised network, classifier included
    classifier: str  # attribute holding the classifier (replaced by Identity; its checkpoint keys are ignored)
    channels_last: bool  # convolutional: worth the channels-last memory format under "auto"
    cast_weights: bool = False  # reduced precision by casting the whole network (not autocast): fewer casts
    remap_state_dict: KeyRemap | None = None  # applied to every checkpoint read for this backbone
    weights_hint: str = ""  # where the weights come from, when --weights PATH is needed

    @property
    def name(self) -> str:
        return self.spec.name


_ENTRIES: dict[str, BackboneEntry] = {}


def register_backbone(
    spec: BackboneSpec,
    *,
    classifier: str,
    channels_last: bool,
    cast_weights: bool = False,
    remap_state_dict: KeyRemap | None = None,
    weights_hint: str = "",
) -> Callable[[Callable[[], nn.Module]], Callable[[], nn.Module]]:
    """Decorator registering a builder (no arguments -> the randomly initialised network) under ``spec.name``."""

    def register(build: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
        if spec.name in _ENTRIES:
            raise ValueError(f"backbone {spec.name!r} is registered twice")
        if spec.kind not in ("2d", "3d") or (spec.clip_frames is None) != (spec.kind == "2d"):
            raise ValueError(f"backbone {spec.name!r}: kind {spec.kind!r} with clip_frames {spec.clip_frames!r}")
        _ENTRIES[spec.name] = BackboneEntry(
            spec, build, classifier, channels_last, cast_weights, remap_state_dict, weights_hint
        )
        return build

    return register


def list_backbones() -> list[str]:
    """Names of the registered backbones, in registry order."""
    return list(_ENTRIES)


def get_entry(name: str) -> BackboneEntry:
    """The registry entry of backbone ``name``; :class:`DivitaError` listing the valid names otherwise."""
    try:
        return _ENTRIES[name]
    except (KeyError, TypeError):
        raise DivitaError(None, f"unknown backbone {name!r}; choose from: {', '.join(_ENTRIES)}") from None


def get_spec(name: str) -> BackboneSpec:
    """The spec of backbone ``name``; :class:`DivitaError` listing the valid names otherwise."""
    return get_entry(name).spec
