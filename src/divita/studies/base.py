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
    """One study (an abstract base): what it compares (`rows`) and what the paper says of it (`paper_lines`).

    A subclass sets the attributes below and implements `rows`; it may add options of its own
    (`add_arguments`, read back by `configure` into ``StudyOptions.extra``, `defaults` from Python). It is
    registered in `STUDIES` by a `StudySpec`; `run` then extracts each distinct feature variant once, trains
    every row's run on every split and writes ``OUT/<name>.csv``, ``.md`` and ``.png``.

    Attributes:
        name: ``divita study NAME`` (the `StudySpec`'s name).
        summary: one line, for ``divita study --help``.
        description: the subcommand's description.
        default_backbones: the backbones without ``--backbone``.
        trains: False for a study that needs no videos, labels or training (``cost``).
        min_backbones: the fewest backbones it accepts.
        max_backbones: the most it accepts, or None.
    """

    name = ""
    summary = ""
    description = ""
    default_backbones: tuple[str, ...] = ("shufflenet",)
    trains = True  # False: no videos, labels or training (cost)
    min_backbones = 1
    max_backbones: int | None = None

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:  # noqa: B027 - most studies add none
        """Add the study's own command-line options to its subcommand's ``parser`` (default: none)."""

    def configure(self, args: argparse.Namespace) -> dict[str, Any]:
        """``StudyOptions.extra`` from the parsed options of `add_arguments` (default: empty)."""
        return {}

    def defaults(self) -> dict[str, Any]:
        """``StudyOptions.extra`` when the study runs from Python without options."""
        return {}

    @abc.abstractmethod
    def rows(self, opts: StudyOptions) -> list[Row]:
        """The lines of the study's table.

        Args:
            opts: the run's `StudyOptions` (its ``extraction`` settings, ``backbones``, ``extra`` options);
                ``opts.variant(backbone, **changes)`` is a feature variant.

        Returns:
            list[Row]: one ``Row(variant, backbone, run)`` per line (``divita.studies.variants``), each with the
            run that trains it (``single_stream(opts, variant, backbone, features)`` for one backbone's features).

        Raises:
            DivitaError: options the study cannot compare.
        """

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
        """The backbones a study runs on: ``backbones``, or `default_backbones` when empty.

        Raises:
            DivitaError: an unknown name, a name listed twice, or too few or too many for the study.
        """
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
        """Extract, train and tabulate the rows (``divita.studies.running.run_training_study``).

        Args:
            opts: the run's `StudyOptions`.
            log: where progress lines go (default: stderr).

        Returns:
            StudyResult: the paths written and the table.
        """
        from divita.studies.running import run_training_study

        return run_training_study(self, opts, log)


__all__ = ["Study"]
