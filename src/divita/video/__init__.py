"""Video: decode a trailer at a fixed frame rate into the frame sizes each later stage needs."""

from __future__ import annotations

from divita.lazy import lazy_exports

_EXPORTS = {
    "DEFAULT_FPS": "decode",
    "VIDEO_EXTENSIONS": "decode",
    "DecodeStats": "decode",
    "OutputSize": "decode",
    "VideoDecoder": "decode",
    "VideoError": "decode",
    "VideoInfo": "decode",
    "decode_video": "decode",
    "find_videos": "decode",
    "probe_video": "decode",
    "read_frames": "decode",
    "VideoLimitError": "limits",
    "VideoLimits": "limits",
    "active_limits": "limits",
    "video_limits": "limits",
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
