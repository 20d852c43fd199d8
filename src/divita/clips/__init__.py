"""Clips: shots cut into clips of ``fpc`` frames that never cross a cut (see :mod:`divita.clips.partition`)."""

from __future__ import annotations

from divita.lazy import lazy_exports

_EXPORTS = {
    "ClipStream": "partition",
    "clip_frame_indices": "partition",
    "default_min_frames": "partition",
    "fallback_clip": "partition",
    "partition_shot": "partition",
    "partition_shots": "partition",
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
