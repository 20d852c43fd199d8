"""Video: decode a trailer at a fixed frame rate into the frame sizes each later stage needs."""

from divita.video.decode import (
    DEFAULT_FPS,
    VIDEO_EXTENSIONS,
    DecodeStats,
    OutputSize,
    VideoDecoder,
    VideoError,
    VideoInfo,
    decode_video,
    find_videos,
    probe_video,
    read_frames,
)
from divita.video.limits import VideoLimitError, VideoLimits, active_limits, video_limits

__all__ = [
    "DEFAULT_FPS",
    "VIDEO_EXTENSIONS",
    "DecodeStats",
    "OutputSize",
    "VideoDecoder",
    "VideoError",
    "VideoInfo",
    "VideoLimitError",
    "VideoLimits",
    "active_limits",
    "decode_video",
    "find_videos",
    "probe_video",
    "read_frames",
    "video_limits",
]
