"""What a study trains: feature variants (an :class:`~divita.features.plan.ExtractionSettings` without backbones)
keyed by every setting that changes their features, the streams and runs made of them, and its table's rows.

Two variants with equal :func:`variant_settings` make the same features: they share one directory,
:func:`variant_key` (``<detector>_fps<fps>_fpc<fpc>[_random|_weights]_<hash of the settings>``). The settings hold
the shot detector's registry fingerprint (:func:`divita.shots.detector_fingerprint`: its name and every registered
parameter of its member detectors, so a new detector parameter enters the key by itself), the frame rate, the clip
rules, the frames a 2D backbone averages and the weights.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from divita.features.plan import ExtractionSettings

if TYPE_CHECKING:
    from divita.studies.options import StudyOptions
    from divita.training import TrainConfig

EVALUATIONS = ("all", "central")  # every snippet of a trailer, averaged | only its central snippet


def slug(text: str) -> str:
    """A file-name-safe form of a row label: lower case, runs of other characters as one ``-``."""
    return re.sub(r"[^a-z0-9._]+", "-", str(text).lower()).strip("-") or "x"


def variant_settings(features: ExtractionSettings) -> dict[str, Any]:
    """The settings of a feature variant that change its features, canonical (what :func:`variant_key` hashes and
    ``variant.json`` holds): :meth:`ExtractionSettings.features_fingerprint`."""
    return features.features_fingerprint()


def variant_key(features: ExtractionSettings) -> str:
    """A feature variant's directory name: ``<detector>_fps<fps>_fpc<fpc>[_random|_weights]_<hash of settings>``."""
    digest = hashlib.sha1(json.dumps(variant_settings(features), sort_keys=True).encode()).hexdigest()[:8]
    w = features.weights
    weights = "" if w == "default" else ("_random" if w == "random" else "_weights")
    detector = getattr(features.detector, "name", features.detector)
    return f"{slug(detector)}_fps{float(features.fps):g}_fpc{int(features.fpc)}{weights}_{digest}"


@dataclass(frozen=True)
class Stream:
    """One input stream of a run: the DIViTA modality slot (``image`` or ``video``), its features and backbone."""

    modality: str
    features: ExtractionSettings  # a feature variant: no backbones
    backbone: str


@dataclass(frozen=True)
class RunSpec:
    """One training configuration of a study (trained once per split): ``variant`` and ``backbone`` name its
    directory; ``streams`` its stores; ``overrides`` the TrainConfig fields it sets (aggregator, fusion, ...)."""

    variant: str
    backbone: str
    streams: tuple[Stream, ...]
    overrides: tuple[tuple[str, Any], ...] = ()

    @property
    def path(self) -> str:
        return f"{slug(self.variant)}/{slug(self.backbone)}"


@dataclass(frozen=True)
class Row:
    """One line of a study's table: ``variant`` x ``backbone``, from ``run`` scored on ``evaluation`` snippets."""

    variant: str
    backbone: str
    run: RunSpec
    evaluation: str = "all"


@dataclass
class RunJob:
    """A RunSpec on one split: its TrainConfig and directory."""

    spec: RunSpec
    split: int
    cfg: TrainConfig
    run_dir: Path

    @property
    def label(self) -> str:
        return f"{self.spec.variant} {self.spec.backbone} split{self.split}"


def single_stream(
    opts: StudyOptions, variant: str, backbone: str, features: ExtractionSettings | None = None, **overrides
) -> RunSpec:
    """A run on one backbone's features (``features``, default the options' variant of ``backbone``): a 2D
    backbone in the image slot, a 3D one in the video slot; ``overrides``: TrainConfig fields."""
    from divita.backbones import get_spec

    modality = "image" if get_spec(backbone).kind == "2d" else "video"
    features = features or opts.variant(backbone)
    return RunSpec(variant, backbone, (Stream(modality, features, backbone),), tuple(sorted(overrides.items())))


__all__ = [
    "EVALUATIONS",
    "Row",
    "RunJob",
    "RunSpec",
    "Stream",
    "single_stream",
    "slug",
    "variant_key",
    "variant_settings",
]
