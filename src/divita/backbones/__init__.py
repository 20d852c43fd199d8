"""Backbone registry and clip encoders: uint8 video clips -> one feature vector per clip.

Laid out as timm's ``timm/models``:

- :mod:`._registry`: :class:`BackboneSpec` (what the network is and what it sees), :func:`register_backbone`,
  :func:`list_backbones`, :func:`get_spec`;
- one module per family, each registering its backbones: :mod:`.torchvision_2d` (shufflenet, resnet, swin),
  :mod:`.torchvision_3d` (r2plus1d, swin3d), :mod:`.shufflenet3d`, :mod:`.efficientnet_lite`
  (efficientnet_lite0);
- :mod:`.weights`: default/torchvision/package/checkpoint/random weights, read safely (:func:`read_checkpoint`,
  :func:`weights_status`);
- :mod:`.preprocess` (frame sampling, resize, crop, normalisation), :mod:`.precision` (batch-norm folding,
  reduced precision checked against float32), :mod:`.encoder` (:class:`ClipEncoder`, :func:`load_encoder`).

Every name below is importable from ``divita.backbones`` as before the split.
"""

from __future__ import annotations

# isort: off
# The family modules register their backbones as they are imported: this order is the registry order (the
# order `divita backbones` lists them in), so it is kept by hand.
from divita.backbones import torchvision_2d  # noqa: F401
from divita.backbones import torchvision_3d  # noqa: F401
from divita.backbones import shufflenet3d  # noqa: F401
from divita.backbones import efficientnet_lite  # noqa: F401

# isort: on
from divita.backbones._registry import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    BackboneEntry,
    BackboneSpec,
    KeyRemap,
    get_entry,
    get_spec,
    list_backbones,
    register_backbone,
)
from divita.backbones.efficientnet_lite import (
    efficientnet_lite0_package_file,
    efficientnet_lite0_package_state_dict,
    lite0_keys_to_timm,
    timm_keys_to_lite0,
)
from divita.backbones.encoder import ClipEncoder, load_encoder
from divita.backbones.precision import PRECISION_COSINE_MIN, PRECISIONS, fold_batchnorm, smooth_test_clip
from divita.backbones.preprocess import sample_frame_indices
from divita.backbones.shufflenet3d import ACTIVITYNET_MEAN, SHUFFLENET3D_HINT, UNIT_STD_255, ShuffleNetV2_3D
from divita.backbones.torchvision_3d import KINETICS_MEAN, KINETICS_STD
from divita.backbones.weights import RANDOM_SEED, read_checkpoint, weights_status

__all__ = [
    "ACTIVITYNET_MEAN",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "KINETICS_MEAN",
    "KINETICS_STD",
    "PRECISIONS",
    "PRECISION_COSINE_MIN",
    "RANDOM_SEED",
    "SHUFFLENET3D_HINT",
    "UNIT_STD_255",
    "BackboneEntry",
    "BackboneSpec",
    "ClipEncoder",
    "KeyRemap",
    "ShuffleNetV2_3D",
    "efficientnet_lite0_package_file",
    "efficientnet_lite0_package_state_dict",
    "fold_batchnorm",
    "get_entry",
    "get_spec",
    "lite0_keys_to_timm",
    "list_backbones",
    "load_encoder",
    "read_checkpoint",
    "register_backbone",
    "sample_frame_indices",
    "smooth_test_clip",
    "timm_keys_to_lite0",
    "weights_status",
]
