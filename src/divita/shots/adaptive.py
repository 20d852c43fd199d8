"""PySceneDetect's ``AdaptiveDetector`` (``--detector adaptive``): ContentDetector's frame scores compared with
their rolling average over ``window_width`` frames on each side, so fast camera motion is not taken for cuts."""

from __future__ import annotations

from divita.shots.base import ShotStream
from divita.shots.content import ContentStream


class AdaptiveStream(ContentStream):
    """PySceneDetect's AdaptiveDetector; a cut at frame c is the gap (c - 1, c).

    A cut is reported ``window_width`` frames after it, so frames ``[0, n - window_width - 2)`` are decided.
    Pushing and finishing are :class:`ContentStream`'s.
    """

    implementation_name = "scenedetect.AdaptiveDetector"

    def __init__(
        self,
        fps: float,
        adaptive_threshold: float,
        min_scene_len: int,
        window_width: int,
        min_content_val: float,
    ):
        ShotStream.__init__(self)
        from scenedetect.detectors import AdaptiveDetector

        self.fps = float(fps)
        self.min_scene_len = int(min_scene_len)
        self.lag = int(window_width) + 2
        self.detector = AdaptiveDetector(
            adaptive_threshold=adaptive_threshold,
            min_scene_len=min_scene_len,
            window_width=window_width,
            min_content_val=min_content_val,
        )
