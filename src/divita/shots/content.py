"""PySceneDetect's ``ContentDetector`` (``--detector content``): HSV and edge differences between frames."""

from __future__ import annotations

import numpy as np

from divita.shots.base import ShotStream


class ContentStream(ShotStream):
    """PySceneDetect's ContentDetector; a cut at frame c is the gap (c - 1, c).

    ``lag``: how many frames behind the last pushed one a cut may still be reported (its flash filter may
    report a cut up to ``min_scene_len`` frames late), so frames ``[0, n - lag)`` are decided.
    """

    implementation_name = "scenedetect.ContentDetector"

    def __init__(self, fps: float, threshold: float, min_scene_len: int):
        super().__init__()
        from scenedetect.detectors import ContentDetector

        self.fps = float(fps)
        self.min_scene_len = int(min_scene_len)
        self.lag = self.min_scene_len + 2
        self.detector = ContentDetector(threshold=threshold, min_scene_len=min_scene_len)

    @classmethod
    def from_detector(cls, detector, **params) -> ContentStream:
        return cls(detector.fps, **params)

    @classmethod
    def implementation(cls, detector) -> dict:
        return {"implementation": cls.implementation_name}

    def _cuts(self, cuts) -> None:
        for c in cuts:
            c = int(getattr(c, "frame_num", c))
            if 0 < c and (not self.gaps or c > self.gaps[-1][1]):
                self.gaps.append((c - 1, c))

    def push(self, frames: np.ndarray) -> None:
        import cv2
        from scenedetect import FrameTimecode

        for img in frames:
            bgr = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2BGR)
            self._cuts(self.detector.process_frame(FrameTimecode(self.n, self.fps), bgr))
            self.n += 1
        self.final = max(0, self.n - self.lag)

    def finish(self, num_frames: int | None = None) -> None:
        from scenedetect import FrameTimecode

        self._cuts(self.detector.post_process(FrameTimecode(max(self.n - 1, 0), self.fps)))
        self.n = self.n if num_frames is None else num_frames
        self.final, self.finished = self.n, True
