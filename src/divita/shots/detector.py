"""A shot detector configuration (:class:`ShotDetector`) and :func:`detect`, both driven by the registry."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from divita.backbones.runtime import check_runtime
from divita.errors import DivitaError
from divita.shots.base import TRANSNET_SIZE, ShotStream, Span
from divita.shots.combined import CombinedStream
from divita.shots.registry import DEFAULT_DETECTOR, DETECTORS, DetectorSpec, Param, members, param_default


@dataclass
class ShotDetector:
    """A shot detector configuration; :meth:`stream` starts detection over one video.

    ``name``: a name of :func:`~divita.shots.list_detectors`. The fields below hold the settings with CLI
    flags of their own; a detector's other settings are ``options[detector name][key]`` (see its registry
    entry's parameters), e.g. ``ShotDetector("dips", options={"dips": {"black": 16.0}})``.
    """

    name: str = DEFAULT_DETECTOR
    threshold: float = param_default("transnetv2", "threshold")  # transnetv2 probability threshold
    content_threshold: float = param_default("content", "threshold")
    min_scene_len: int = param_default("content", "min_scene_len")
    segment_frames: int = param_default("fixed", "segment_frames")
    tolerance: int = 3  # combinations: secondary transitions within this many frames of a primary one are dropped
    device: str = "cpu"
    precision: str = "auto"
    runtime: str = "torch"  # what runs TransNetV2: torch, onnxruntime or openvino (divita.backbones.runtime)
    fps: float = 24.0
    options: dict = field(default_factory=dict)

    def __post_init__(self):
        if str(self.device) == "auto":
            import torch

            self.device = "cuda" if torch.cuda.is_available() else "cpu"
        specs = members(self.name)
        check_runtime(self.runtime)
        if not 0.0 < self.threshold < 1.0:
            raise DivitaError(None, f"threshold must be in (0, 1), got {self.threshold}")
        self.options = {k: dict(v) for k, v in (self.options or {}).items()}
        for det, values in self.options.items():
            if det not in DETECTORS:
                raise DivitaError(
                    None, f"options for unknown shot detector {det!r}; choose from: {', '.join(DETECTORS)}"
                )
            spec = DETECTORS.get(det)
            free = {p.key: p for p in spec.params if p.field is None}
            for key, value in values.items():
                if key not in free:
                    raise DivitaError(
                        None, f"shot detector {det} has no option {key!r}; it has: {', '.join(free) or 'none'}"
                    )
                values[key] = _typed(free[key], value, det)
        for spec in specs:
            for p in spec.params:
                v = self.value(spec, p)
                if p.minimum is not None and v < p.minimum:
                    raise DivitaError(None, f"{spec.name} {p.key} must be at least {p.minimum:g}, got {v}")

    # -- the registry's view --------------------------------------------------------------------------
    @property
    def specs(self) -> tuple[DetectorSpec, ...]:
        """The registry entries this configuration runs: one, or a combination's (primary, secondary)."""
        return members(self.name)

    def _known_specs(self) -> tuple[DetectorSpec, ...]:
        """:attr:`specs`, or none for a name the registry does not know (a subclass with its own ``stream()``)."""
        try:
            return self.specs
        except DivitaError:
            return ()

    @property
    def needs_transnet(self) -> bool:
        return any(s.needs_transnet for s in self._known_specs())

    @property
    def looks_at_frames(self) -> bool:
        """Whether the stream reads pixels (``fixed`` does not: no 48x27 frames need decoding for it)."""
        specs = self._known_specs()
        return not specs or any(s.looks_at_frames for s in specs)

    def value(self, spec: DetectorSpec, param: Param) -> Any:
        """The value of one registered parameter in this configuration."""
        if param.field is not None:
            return getattr(self, param.field)
        return self.options.get(spec.name, {}).get(param.key, param.default)

    def settings(self, spec: DetectorSpec) -> dict:
        """``{param key: value}`` of one member detector."""
        return {p.key: self.value(spec, p) for p in spec.params}

    # -- running --------------------------------------------------------------------------------------
    def load(self) -> ShotDetector:
        """Load the network now (once per run), so the first video does not pay for it."""
        if self.needs_transnet:
            from divita.shots.transnetv2 import get_transnetv2

            get_transnetv2(self.device, self.precision, self.runtime)
        return self

    def stream(self) -> ShotStream:
        """A new :class:`ShotStream` for one video: the registered detector's, or a combination's
        :class:`~divita.shots.combined.CombinedStream`. Raises :class:`DivitaError` for an unknown name."""
        streams = [s.stream_class().from_detector(self, **self.settings(s)) for s in self.specs]
        return streams[0] if len(streams) == 1 else CombinedStream(*streams, self.tolerance)

    def params(self, implementation: bool = True) -> dict:
        """JSON-able description (recorded in stores): the name, each member's registered parameters (plus,
        with ``implementation``, how it computes, e.g. TransNetV2's precision and device: that loads the
        network) under its name, a combination's tolerance."""
        out: dict = {"name": self.name}
        for spec in self.specs:
            values = self.settings(spec)
            if implementation:
                values = {**values, **spec.stream_class().implementation(self)}
            if spec.nested:
                out[spec.name] = values
            else:
                out.update(values)
        if len(self.specs) > 1:
            out["tolerance"] = self.tolerance
        return out

    # -- building one ---------------------------------------------------------------------------------
    @classmethod
    def from_args(cls, args: argparse.Namespace, **overrides) -> ShotDetector:
        """The detector that parsed command-line arguments ask for (``--detector`` and every flag named like
        a field: ``--threshold``, ``--content-threshold``, ``--device``, ``--fps``, ...); ``overrides`` win
        (``divita extract`` passes ``segment_frames=args.fpc``)."""
        kw = {
            f.name: getattr(args, f.name)
            for f in fields(cls)
            if f.name not in ("name", "options") and getattr(args, f.name, None) is not None
        }
        return cls(name=args.detector, **{**kw, **overrides})

    @classmethod
    def from_params(cls, recorded: dict, **settings) -> ShotDetector:
        """The detector whose ``params()`` were ``recorded`` (e.g. in a checkpoint's stores), to detect shots
        again the same way. ``settings``: fields the record does not hold (``fps``, ``device``, ...) and
        fallbacks for those it lacks; recorded parameters win."""
        name = recorded.get("name") or DEFAULT_DETECTOR
        kw: dict[str, Any] = dict(settings)
        options: dict[str, dict] = {}
        for spec in members(name):
            section = (recorded.get(spec.name) or {}) if spec.nested else recorded
            for p in spec.params:
                if p.key in section:
                    value = _typed(p, section[p.key], spec.name)
                    if p.field is not None:
                        kw[p.field] = value
                    else:
                        options.setdefault(spec.name, {})[p.key] = value
        if "tolerance" in recorded:
            kw["tolerance"] = int(recorded["tolerance"])
        return cls(name=name, options=options, **kw)


def _typed(param: Param, value: Any, detector: str) -> Any:
    """``value`` as the type of the parameter's default (a DivitaError when it is not one)."""
    kind = type(param.default)
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            return kind(value)
        except ValueError:
            pass
    raise DivitaError(None, f"shot detector {detector} setting {param.key} must be a {kind.__name__}, got {value!r}")


def detect(
    frames: np.ndarray | Iterable[np.ndarray],
    detector: ShotDetector | str = DEFAULT_DETECTOR,
    fps: float = 24.0,
    chunk: int = 200,
) -> list[Span]:
    """Shots of a video file, or of its 48x27 frames, with one of the registered shot detectors.

    Available as `divita.detect_shots`. The frames are pushed to the detector's stream ``chunk`` frames at a
    time (the result does not depend on ``chunk``).

    Args:
        frames: a video file path (decoded at ``fps`` and resized to 48x27), a uint8 RGB array (N, 27, 48, 3),
            or an iterable of uint8 RGB frames (27, 48, 3).
        detector: a name of `list_detectors()` (built with its default settings and ``fps``), or a ready
            `divita.shots.ShotDetector` (its own settings).
        fps: the frame rate the video is decoded at (a path only), and the detector's frame rate.
        chunk: frames per push.

    Returns:
        The shots, 0-based inclusive frame spans ``(start, end)`` at ``fps``, in order.

    Raises:
        DivitaError: an unknown detector name (the message lists the valid ones), a bad detector setting, or a
            video file that cannot be decoded.
    """
    if isinstance(detector, str):
        detector = ShotDetector(detector, fps=fps)
    if isinstance(frames, (str, bytes)) or hasattr(frames, "__fspath__"):
        from divita.video import OutputSize, VideoDecoder

        frames = (f["small"] for f in VideoDecoder(frames, fps, {"small": OutputSize(exact=TRANSNET_SIZE)}))
    stream = detector.stream()
    if isinstance(frames, np.ndarray):
        for i in range(0, len(frames), chunk):
            stream.push(frames[i : i + chunk])
    else:
        buf: list[np.ndarray] = []
        for f in frames:
            buf.append(f)
            if len(buf) == chunk:
                stream.push(np.stack(buf))
                buf = []
        if buf:
            stream.push(np.stack(buf))
    stream.finish()
    return stream.shots()
