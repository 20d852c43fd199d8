"""Clips: shots cut into clips of ``fpc`` frames that never cross a cut (see :mod:`divita.clips.partition`)."""

from divita.clips.partition import (
    ClipStream,
    clip_frame_indices,
    default_min_frames,
    fallback_clip,
    partition_shot,
    partition_shots,
)

__all__ = [
    "ClipStream",
    "clip_frame_indices",
    "default_min_frames",
    "fallback_clip",
    "partition_shot",
    "partition_shots",
]
