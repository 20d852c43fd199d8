"""What one extraction makes, checked once: :class:`ExtractionSettings`.

The local driver (:func:`divita.features.extract.extract`), the Ray driver
(:func:`divita.distributed.extract.extract_ray`) and ``divita extract`` all build one; its constructor rejects a
bad value with a one-line :class:`DivitaError`, and :meth:`ExtractionSettings.extraction` gives the
``extraction`` attribute every store of the run records. (:class:`divita.inference.predict.ExtractionPlan` is
the other direction: it reads those attributes back from a checkpoint to rebuild the extraction.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from divita.errors import DivitaError

CLIPS_NOTE = "shots cut into fpc-frame clips that never cross a cut (see divita.clips)"


def backbone_name(backbone: Any) -> str:
    """A backbone's name: the string itself, or a ready encoder's ``spec.name``."""
    if isinstance(backbone, str):
        return backbone
    name = getattr(getattr(backbone, "spec", None), "name", None)
    if name is None:
        raise DivitaError(None, f"backbone {backbone!r} is neither a backbone name nor an encoder (with spec.name)")
    return str(name)


@dataclass(frozen=True)
class ExtractionSettings:
    """Backbones, frame rate, clip rules, shot detector, precision and batching of one extraction run.

    ``backbones``: names (see ``divita backbones``) or ready encoder objects (``spec.name``, ``min_side``,
    ``encode(uint8 (B, T, H, W, 3)) -> (B, F)``). ``detector``: a detector name, built with ``threshold`` /
    ``content_threshold`` by the driver, or a ready :class:`divita.shots.ShotDetector`. ``min_clip_frames`` None:
    fpc // 2 (:attr:`min_frames`). ``batch_size``: clips per encoder call.
    """

    backbones: tuple
    weights: str = "default"
    fps: float = 24.0
    fpc: int = 24
    min_clip_frames: int | None = None
    detector: Any = "transnetv2"
    threshold: float = 0.5
    content_threshold: float = 27.0
    precision: str = "auto"
    frames_per_clip_2d: int = 3
    batch_size: int = 16

    def __post_init__(self):
        object.__setattr__(self, "backbones", tuple(self.backbones))
        fpc, fps, m = self.fpc, self.fps, self.min_clip_frames
        if fpc < 1:
            raise DivitaError(None, f"frames per clip must be at least 1, got {fpc}")
        if not fps or fps <= 0:
            raise DivitaError(None, f"fps must be positive, got {fps}")
        if m is not None and not 1 <= m <= fpc:
            raise DivitaError(None, f"--min-clip-frames must be between 1 and fpc={fpc}, got {m}")
        if self.batch_size < 1:
            raise DivitaError(None, f"--batch-size must be at least 1, got {self.batch_size}")
        names = self.names
        if not names:
            raise DivitaError(None, "no backbone given")
        if len(set(names)) != len(names):
            raise DivitaError(None, f"backbone listed twice: {', '.join(names)}")
        from divita.backbones import PRECISIONS, get_spec

        for b in self.backbones:
            if isinstance(b, str):
                get_spec(b)  # unknown names: a usage error before anything is loaded
        if self.precision not in PRECISIONS:
            raise DivitaError(None, f"unknown precision {self.precision!r}; choose from: {', '.join(PRECISIONS)}")
        if int(self.frames_per_clip_2d) < 1:
            raise DivitaError(None, f"frames per clip must be at least 1, got {self.frames_per_clip_2d}")

    @property
    def names(self) -> tuple[str, ...]:
        """Backbone names, in the order given."""
        return tuple(backbone_name(b) for b in self.backbones)

    @property
    def min_frames(self) -> int:
        """Shortest shot (or shot remainder) that still makes a clip."""
        from divita.clips import default_min_frames

        return default_min_frames(self.fpc) if self.min_clip_frames is None else int(self.min_clip_frames)

    def store_name(self, prefix: str, backbone: str) -> str:
        """``trailers_{prefix}_{backbone}_fps{fps}_fpc{fpc}.zarr``, the release-style name of a backbone's store."""
        from divita.features.store import store_dir_name

        return store_dir_name(prefix, backbone, self.fps, self.fpc)

    def extraction(self, backbone: dict, detector: dict) -> dict:
        """The ``extraction`` attribute of a store: how its features were made (read back by ``divita predict``).

        ``backbone``: the encoder's ``settings()``; ``detector``: the detector's ``params()``.
        """
        from divita import __version__

        return {
            "backbone": backbone,
            "fps": float(self.fps),
            "fpc": int(self.fpc),
            "min_clip_frames": self.min_frames,
            "detector": detector,
            "divita": __version__,
            "clips": CLIPS_NOTE,
        }

    def array_attrs(self, record: dict, source: str) -> dict:
        """Attributes of one video's array: its shots, clips and their seconds, from ``VideoResult.record()``."""
        return {
            "shots": record["shots"],
            "clips": record["clips"],
            "clip_seconds": record["clip_seconds"],
            "fps": float(self.fps),
            "source": source,
            "num_frames": record["num_frames"],
        }


__all__ = ["CLIPS_NOTE", "ExtractionSettings", "backbone_name"]
