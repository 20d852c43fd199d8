"""What one extraction makes, checked once: :class:`ExtractionSettings`, the one source of the extraction's options.

Each field carries its command-line help in ``field(metadata=...)`` (``help``, ``metavar``, ``choices``; a
callable is asked when the parser is built, ``default_text`` replaces the shown default); the flags of ``divita
extract``, ``divita shots`` and ``divita study`` are generated from it (:mod:`divita.cli._extraction_options`), and
the local driver (:func:`divita.features.extract.extract`), the Ray driver
(:func:`divita.distributed.extract.extract_ray`) and the studies (:mod:`divita.studies.variants`) take the object.
Every default is written here once; the shot detectors' come from their registry
(:func:`divita.shots.registry.param_default`). The constructor rejects a bad value with a one-line
:class:`DivitaError`, and :meth:`ExtractionSettings.extraction` gives the ``extraction`` attribute every store of
the run records. (:class:`divita.inference.predict.ExtractionPlan` is the other direction: it reads those
attributes back from a checkpoint to rebuild the extraction.)
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from divita.backbones.runtime import DEFAULT_RUNTIME, RUNTIME_HELP, RUNTIMES, check_runtime
from divita.errors import DivitaError
from divita.shots.registry import DEFAULT_DETECTOR, detector_fingerprint, detector_help, list_detectors, param_default

CLIPS_NOTE = "shots cut into fpc-frame clips that never cross a cut (see divita.clips)"
PRECISION_CHOICES = ("auto", "float32", "bfloat16", "float16")  # divita.backbones.PRECISIONS (which imports torch)


def backbone_name(backbone: Any) -> str:
    """A backbone's name: the string itself, or a ready encoder's ``spec.name``."""
    if isinstance(backbone, str):
        return backbone
    name = getattr(getattr(backbone, "spec", None), "name", None)
    if name is None:
        raise DivitaError(None, f"backbone {backbone!r} is neither a backbone name nor an encoder (with spec.name)")
    return str(name)


def _option(default: Any, help: Any, hash: bool | None = None, **metadata) -> Any:
    """A field with its default and the metadata its command-line flag is generated from."""
    return field(default=default, hash=hash, metadata={"help": help, **metadata})


@dataclass(frozen=True)
class ExtractionSettings:
    """Backbones, frame rate, clip rules, shot detector, precision and batching of one extraction run: the one
    source of the extraction's options (each field's metadata gives its command-line flag, help and choices).

    Frozen; `build` gives a changed copy. Every value is checked by the constructor, before anything loads.

    Attributes:
        backbones: names (see ``divita backbones``) or ready encoder objects (``spec.name``, ``min_side``,
            ``encode(uint8 (B, T, H, W, 3)) -> (B, F)``); empty in a template (a study's feature variant, the
            settings a command parsed before its backbones are known: `require_backbones` refuses it to a driver).
        weights: ``"default"`` (pretrained), a checkpoint path, or ``"random"`` (tests only).
        fps: the frame rate videos are resampled to.
        fpc: frames per clip.
        min_clip_frames: the shortest shot (or shot remainder) that still makes a clip; None: fpc // 2.
        detector: a name of `list_detectors()` (built with ``threshold`` / ``content_threshold`` by
            `shot_detector`), or a ready ``divita.shots.ShotDetector``.
        threshold: TransNetV2's transition probability threshold.
        content_threshold: PySceneDetect ContentDetector's threshold.
        precision: ``"auto"``, ``"float32"``, ``"bfloat16"`` or ``"float16"``, for backbones and TransNetV2.
        runtime: ``"torch"``, ``"onnxruntime"`` or ``"openvino"``: what runs the backbones and TransNetV2
            (:mod:`divita.backbones.runtime`). Like the device and precision it changes no feature beyond the
            float tolerance, so it enters no fingerprint.
        frames_per_clip_2d: frames a 2D backbone averages per clip.
        batch_size: clips per encoder call.

    Raises:
        DivitaError: a bad value (fpc or batch size below 1, fps not positive, min_clip_frames outside 1..fpc, a
            backbone listed twice, an unknown backbone, detector, precision or runtime), in one line.
    """

    backbones: tuple = field(default=(), metadata={"flag": None})  # `--backbone NAME[,NAME...]`: each command's own
    weights: str = _option(
        "default",
        "weights for the backbone(s): default (pretrained), a checkpoint PATH, or random (tests only)",
        metavar="PATH|random|default",
        default_text=None,
    )
    fps: float = _option(24.0, "frame rate the video is resampled to")
    fpc: int = _option(24, "frames per clip")
    min_clip_frames: int | None = _option(
        None, "shortest shot (or shot remainder) that still makes a clip", metavar="N", default_text="fpc/2"
    )
    detector: Any = _option(  # not hashed: a ready ShotDetector is unhashable (equality still compares it)
        DEFAULT_DETECTOR, detector_help, hash=False, metavar="NAME", choices=list_detectors, type=str, default_text=None
    )
    threshold: float = _option(
        param_default("transnetv2", "threshold"), "TransNetV2 transition probability threshold", metavar="P"
    )
    content_threshold: float = _option(
        param_default("content", "threshold"), "PySceneDetect ContentDetector threshold", metavar="T"
    )
    precision: str = _option("auto", "inference precision for backbones and TransNetV2", choices=PRECISION_CHOICES)
    runtime: str = _option(DEFAULT_RUNTIME, RUNTIME_HELP, choices=RUNTIMES)
    frames_per_clip_2d: int = _option(3, "frames a 2D backbone averages per clip", metavar="K")
    batch_size: int = _option(16, "clips per inference batch", metavar="B")

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
        if len(set(names)) != len(names):
            raise DivitaError(None, f"backbone listed twice: {', '.join(names)}")
        if self.backbones:
            from divita.backbones import get_spec

            for b in self.backbones:
                if isinstance(b, str):
                    get_spec(b)  # unknown names: a usage error before anything is loaded
        if self.precision not in PRECISION_CHOICES:
            raise DivitaError(
                None, f"unknown precision {self.precision!r}; choose from: {', '.join(PRECISION_CHOICES)}"
            )
        check_runtime(self.runtime)
        if int(self.frames_per_clip_2d) < 1:
            raise DivitaError(None, f"frames per clip must be at least 1, got {self.frames_per_clip_2d}")
        if isinstance(self.detector, str):
            from divita.shots.registry import members

            members(self.detector)  # an unknown name: the registry's one-line error, before anything loads

    @classmethod
    def build(cls, backbones: Any = None, settings: ExtractionSettings | None = None, **extraction) -> Any:
        """The settings a driver's keywords ask for.

        Args:
            backbones: the backbones (None: those of ``settings``).
            settings: the settings to start from (None: the defaults).
            **extraction: fields to change, by name (``fps=12``, ``detector="content"``, ...).

        Returns:
            ExtractionSettings: new settings (``settings`` itself is frozen).

        Raises:
            TypeError: a keyword that is not a field.
            DivitaError: a bad value.
        """
        names = {f.name for f in fields(cls)} - {"backbones"}
        unknown = sorted(set(extraction) - names)
        if unknown:
            raise TypeError(f"not an extraction setting: {', '.join(unknown)} (settings: {', '.join(sorted(names))})")
        if backbones is not None:
            extraction["backbones"] = backbones
        if settings is None:
            return cls(**extraction)
        from dataclasses import replace

        return replace(settings, **extraction)

    def require_backbones(self) -> ExtractionSettings:
        """``self``, once it names at least one backbone.

        Raises:
            DivitaError: "no backbone given" (a template).
        """
        if not self.backbones:
            raise DivitaError(None, "no backbone given")
        return self

    @property
    def names(self) -> tuple[str, ...]:
        """Backbone names, in the order given."""
        return tuple(backbone_name(b) for b in self.backbones)

    @property
    def min_frames(self) -> int:
        """Shortest shot (or shot remainder) that still makes a clip."""
        from divita.clips import default_min_frames

        return default_min_frames(self.fpc) if self.min_clip_frames is None else int(self.min_clip_frames)

    def shot_detector(self, device: str = "cpu") -> Any:
        """The run's ``divita.shots.ShotDetector``: the ready one given as ``detector`` (moved to ``device``
        when it is another), or the named one with this run's thresholds, precision, fps and ``segment_frames=fpc``
        (``fixed``'s segments are clips).

        Args:
            device: where TransNetV2 runs (``"cpu"``, ``"cuda"``, ...).
        """
        from dataclasses import replace

        from divita.shots import ShotDetector

        if not isinstance(self.detector, str):
            return self.detector if self.detector.device == device else replace(self.detector, device=device)
        return ShotDetector(
            self.detector,
            threshold=self.threshold,
            content_threshold=self.content_threshold,
            device=device,
            precision=self.precision,
            runtime=self.runtime,
            fps=self.fps,
            segment_frames=self.fpc,
        )

    def detector_fingerprint(self) -> dict:
        """The part of the detector that decides the shots, as ``divita.shots.detector_fingerprint`` reads it
        from a recorded ``params()``: its name and each member detector's registered parameters (a new parameter
        of the registry enters it by itself). Computed without loading a network.

        Returns:
            dict: JSON-able, e.g. ``{"name": "content", "content": {"threshold": 27.0, "min_scene_len": 15}}``.
        """
        return detector_fingerprint(self.shot_detector("cpu").params(implementation=False))

    def features_fingerprint(self) -> dict:
        """Every setting that changes a backbone's features, canonical: a store made under other values is not
        reused, and a study's feature variant key hashes it.

        Returns:
            dict: JSON-able, ``detector`` (`detector_fingerprint`), ``fps``, ``fpc``, ``min_clip_frames``,
            ``frames_per_clip_2d``, ``weights``.
        """
        return {
            "detector": self.detector_fingerprint(),
            "fps": float(self.fps),
            "fpc": int(self.fpc),
            "min_clip_frames": self.min_frames,
            "frames_per_clip_2d": int(self.frames_per_clip_2d),
            "weights": str(self.weights),
        }

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


__all__ = ["CLIPS_NOTE", "PRECISION_CHOICES", "ExtractionSettings", "backbone_name"]
