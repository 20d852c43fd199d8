"""A study (:class:`Study`, the base class every study module subclasses) and what it wrote (:class:`StudyResult`).

A study lists :class:`~divita.studies.variants.Row` s (one line of its table: a variant of what it compares, on a
backbone), each naming the run that trains it; :func:`divita.studies.running.run_training_study` extracts the
feature variants, trains the runs and writes the table. Its pieces: :mod:`divita.studies.variants` (feature
variants and their keys, streams, runs, rows), :mod:`divita.studies.options` (:class:`StudyOptions`),
:mod:`divita.studies.running` (extraction, labels, training) and :mod:`divita.studies.tables`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from divita.errors import DivitaError

if TYPE_CHECKING:
    import argparse

    import pandas as pd

    from divita.studies.options import StudyOptions
    from divita.studies.tables import StudyResult
    from divita.studies.variants import Row, RunJob


class Study(abc.ABC):
    """One study: what it compares (``rows``) and what the paper says of it (``paper_lines``).

    Subclasses set ``name``, ``summary`` (one line), ``description`` and ``default_backbones``, add their own
    options (``add_arguments``, read back by ``configure`` into ``StudyOptions.extra``) and list their rows."""

    name = ""
    summary = ""
    description = ""
    default_backbones: tuple[str, ...] = ("shufflenet",)
    trains = True  # False: no videos, labels or training (cost)
    min_backbones = 1
    max_backbones: int | None = None

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:  # noqa: B027 - most studies add none
        """The study's own command-line options."""

    def configure(self, args: argparse.Namespace) -> dict[str, Any]:
        """``StudyOptions.extra`` from the parsed options of :meth:`add_arguments`."""
        return {}

    def defaults(self) -> dict[str, Any]:
        """``StudyOptions.extra`` when the study runs from Python without options."""
        return {}

    @abc.abstractmethod
    def rows(self, opts: StudyOptions) -> list[Row]:
        """The lines of the study's table under ``opts``, each with the run that trains it."""

    def compared(self, opts: StudyOptions) -> str:
        """One sentence: what the rows compare."""
        return ""

    def paper_lines(self, table: pd.DataFrame, opts: StudyOptions) -> list[str]:
        """Markdown lines: the differences the paper reports, next to ours (or why there are none)."""
        return []

    def metrics_file(self, row: Row, job: RunJob, cache) -> Path:
        """The metrics.csv-shaped file a row is scored from (``evaluation == "all"``: the run's own)."""
        if row.evaluation != "all":
            raise DivitaError(None, f"study {self.name}: no evaluation {row.evaluation!r}")
        return job.run_dir / "metrics.csv"

    def check_backbones(self, backbones: Sequence[str]) -> list[str]:
        from divita.backbones import get_spec

        names = list(backbones or self.default_backbones)
        for b in names:
            get_spec(b)
        if len(set(names)) != len(names):
            raise DivitaError(None, f"backbone listed twice: {', '.join(names)}")
        if len(names) < self.min_backbones or (self.max_backbones is not None and len(names) > self.max_backbones):
            want = (
                f"exactly {self.min_backbones}"
                if self.max_backbones == self.min_backbones
                else f"at least {self.min_backbones}"
            )
            raise DivitaError(None, f"study {self.name} needs {want} backbone(s), got {len(names)}: {', '.join(names)}")
        return names

    def run(self, opts: StudyOptions, log: Callable[[str], None] | None = None) -> StudyResult:
        """Extract, train and tabulate the rows (:func:`divita.studies.running.run_training_study`)."""
        from divita.studies.running import run_training_study

        return run_training_study(self, opts, log)


__all__ = ["Study"]
