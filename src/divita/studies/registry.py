"""The study registry: :data:`STUDIES`, name -> :class:`StudySpec`, one ``STUDIES.register(StudySpec(...))`` per
study below, in the order ``divita study --help`` lists them. Importable without torch.

A study is one module holding a :class:`~divita.studies.base.Study` subclass plus one registration here, which
names the class as ``"module:Class"``; :func:`get_study` imports it and keeps one instance per study.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from divita.registry import Registry, load_ref

if TYPE_CHECKING:
    from divita.studies.base import Study


@dataclass(frozen=True)
class StudySpec:
    """A study's entry in `STUDIES`.

    Attributes:
        name: ``divita study NAME``; the class's ``name`` must be the same.
        study: ``"module:Class"`` of its `Study` subclass, imported on first use.
    """

    name: str
    study: str

    def study_class(self) -> type[Study]:
        """The `Study` subclass ``study`` names (its module is imported now).

        Raises:
            ValueError: the class's ``name`` is not the entry's.
            ImportError: its module cannot be imported.
        """
        cls = load_ref(self.study)
        if getattr(cls, "name", None) != self.name:
            raise ValueError(f"study {self.name!r}: {self.study} is named {getattr(cls, 'name', None)!r}")
        return cls


STUDIES: Registry[StudySpec] = Registry("study")
_INSTANCES: dict[str, Study] = {}


def list_studies() -> list[str]:
    """Names of the registered studies, in registration order (the order ``divita study --help`` lists them
    in); imports no study module."""
    return STUDIES.names()


def get_study(name: str) -> Study:
    """The study ``name``, one instance per study (its module is imported on first use).

    Raises:
        DivitaError: "unknown study 'x'; choose from: ..." for another name.
    """
    spec = STUDIES.get(name)
    if name not in _INSTANCES:
        _INSTANCES[name] = spec.study_class()()
    return _INSTANCES[name]


# ------------------------------------------------------------------------------------------ the studies

STUDIES.register(StudySpec("segmentation", "divita.studies.segmentation:SegmentationStudy"))
STUDIES.register(StudySpec("fps", "divita.studies.fps:FrameRateStudy"))
STUDIES.register(StudySpec("extension", "divita.studies.extension:ExtensionStudy"))
STUDIES.register(StudySpec("aggregation", "divita.studies.aggregation:AggregationStudy"))
STUDIES.register(StudySpec("fusion", "divita.studies.fusion:FusionStudy"))
STUDIES.register(StudySpec("cost", "divita.studies.cost:CostStudy"))
