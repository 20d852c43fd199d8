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

__all__ = [
    "DEFAULT_FPS",
    "VIDEO_EXTENSIONS",
    "DecodeStats",
    "OutputSize",
    "VideoDecoder",
    "VideoError",
    "VideoInfo",
    "decode_video",
    "find_videos",
    "probe_video",
    "read_frames",
]
