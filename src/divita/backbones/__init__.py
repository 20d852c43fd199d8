"""Backbone registry and clip encoders: uint8 video clips -> one feature vector per clip.

Laid out as timm's ``timm/models``:

- :mod:`.registry`: :class:`BackboneSpec` (what the network is and what it sees), :class:`BackboneEntry` (how to
  build it), the registry :data:`BACKBONES` with one registration per backbone (in the order ``divita backbones``
  lists them), :func:`list_backbones`, :func:`get_spec`, :func:`get_entry`; importable without torch;
- one module per family, holding the builders the registry names: :mod:`.torchvision_2d` (shufflenet, resnet,
  swin), :mod:`.torchvision_3d` (r2plus1d, swin3d), :mod:`.shufflenet3d`, :mod:`.efficientnet_lite`
  (efficientnet_lite0);
- :mod:`.weights`: default/torchvision/package/checkpoint/random weights, read safely (:func:`read_checkpoint`,
  :func:`weights_status`);
- :mod:`.preprocess` (frame sampling, resize, crop, normalisation), :mod:`.precision` (batch-norm folding,
  reduced precision checked against float32), :mod:`.encoder` (:class:`ClipEncoder`, :func:`load_encoder`).

The names below are importable from ``divita.backbones``, each loaded with its module on first use.
"""

from __future__ import annotations

from divita.lazy import lazy_exports

_EXPORTS = {
    "ACTIVITYNET_MEAN": "registry",
    "BACKBONES": "registry",
    "IMAGENET_MEAN": "registry",
    "IMAGENET_STD": "registry",
    "KINETICS_MEAN": "registry",
    "KINETICS_STD": "registry",
    "LITE0_PACKAGE": "registry",
    "SHUFFLENET3D_HINT": "registry",
    "UNIT_STD_255": "registry",
    "BackboneEntry": "registry",
    "BackboneSpec": "registry",
    "KeyRemap": "registry",
    "get_entry": "registry",
    "get_spec": "registry",
    "list_backbones": "registry",
    "LITE0_KEY_REMAP": "efficientnet_lite",
    "efficientnet_lite0_package_file": "efficientnet_lite",
    "efficientnet_lite0_package_state_dict": "efficientnet_lite",
    "lite0_keys_to_timm": "efficientnet_lite",
    "timm_keys_to_lite0": "efficientnet_lite",
    "ShuffleNetV2_3D": "shufflenet3d",
    "ClipEncoder": "encoder",
    "load_encoder": "encoder",
    "PRECISIONS": "divita.hardware",
    "PRECISION_COSINE_MIN": "precision",
    "fold_batchnorm": "precision",
    "smooth_test_clip": "precision",
    "sample_frame_indices": "preprocess",
    "RANDOM_SEED": "weights",
    "read_checkpoint": "weights",
    "weights_status": "weights",
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
