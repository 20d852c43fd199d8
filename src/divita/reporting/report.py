"""Visual reports: PNG figures and a markdown page for a training run or a Table-6 results directory.

:func:`make_report` (``divita report``) accepts

* a **run directory** (``divita train``): ``metrics.csv``, ``predictions_{val,tst}.npz``, ``best.ckpt``
  (its per-genre decision ``thresholds``), ``history.csv``, ``hparams.json``;
* a **results directory** (``divita reproduce`` / ``divita demo``): ``transfer/tst.csv`` and
  ``transfer/runs/<row>/split<k>/`` run directories. The ``transfer/`` directory itself, or a directory
  holding exactly one ``*/transfer/`` (``results/`` after ``divita demo --out results/demo``) work too.

and writes ``report.md`` plus PNGs into ``<path>/report/`` (or ``out``).

Run figures (test set, the checkpoint the run selected, ``select_by`` in hparams.json):

``ap_per_genre.png``   μAP, mAP, wAP, sAP and per-genre AP in both AP conventions, the genre's positive
                       rate marked (the step-wise AP of a random ranking).
``pr_curves.png``      2×5 precision-recall curves, the AP in each title, the tuned threshold's point.
``cooccurrence.png``   true-label co-occurrence: counts, coloured by P(column genre | row genre).
``errors.png``         the prediction-error matrix (:func:`~divita.reporting.matrices.prediction_error_matrix`).
``training.png``       losses, validation μAP and learning rate per epoch, the selected epoch marked.

Results figures: ``summary_vs_paper.png`` (μAP/mAP/wAP/sAP per Table 6 row, ours mean ± std over
splits next to the paper's), ``ap_per_genre_rows.png`` (per-genre test AP per row, mean ± std; the paper
reports none), ``cooccurrence.png`` (all val/test trailers of all runs), and the run figures of one
representative run per row (the split whose test μAP is closest to the row's mean) under ``runs/``.

Figures are drawn on :class:`matplotlib.figure.Figure` objects with the Agg canvas (no pyplot, no global
backend change, never a window) and written atomically.

Modules: :mod:`.readers` (the directories, checked), :mod:`.matrices`, :mod:`.figures`, :mod:`.markdown` (the
page's sections); this one picks the kind of directory and puts the page together.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from divita.errors import DivitaError
from divita.reporting.figures import png_saver
from divita.reporting.markdown import (
    cooccurrence_section,
    genre_ap_section,
    representative_runs_section,
    results_header,
    run_sections,
    run_summary,
    selection_section,
    table6_section,
    write_md,
)
from divita.reporting.readers import classify_directory, labels_of_runs, load_run, read_results, read_selection

__all__ = ["make_report", "report_results", "report_run"]


def report_run(run_dir: Path, out: Path, log: Callable[[str], None] | None = None) -> Path:
    """The report of the run directory ``run_dir`` into ``out``; returns its ``report.md``. DivitaError naming the
    file when the run directory is not a finished, readable one."""
    run = load_run(run_dir)
    md = [f"# divita report: run `{run_dir}`", ""] + run_summary(run)
    run_sections(run, out, out, md, log=log)
    return write_md(out / "report.md", md)


def report_results(transfer: Path, out: Path, log: Callable[[str], None] | None = None) -> Path:
    """The report of the results directory ``transfer`` (its ``transfer/``) into ``out``; returns its
    ``report.md``. DivitaError naming the file when a table or run in it is damaged."""
    from divita.datasets.release import TABLE6_BY_NAME

    tst, runs, select_by, grid = read_results(transfer)
    paper = {n: TABLE6_BY_NAME[n].paper for n in tst.index if n in TABLE6_BY_NAME}
    save = png_saver(out, [], log)
    md = results_header(transfer, tst, select_by, grid)
    table6_section(md, out, save, tst, paper)
    genre_ap_section(md, out, save, tst)
    selection_section(md, read_selection(transfer / "selection.csv"))
    y = labels_of_runs(runs)
    if y is not None:
        cooccurrence_section(md, out, save, y)
    representative_runs_section(md, out, transfer, tst, runs, select_by, log)
    return write_md(out / "report.md", md)


def make_report(path: str | Path, out: str | Path | None = None, log: Callable[[str], None] | None = None) -> Path:
    """Write PNG figures and ``report.md`` for a run or results directory; returns the markdown file.

    ``out`` defaults to ``<path>/report``. ``log`` receives a line per picture written. Raises DivitaError naming
    the path when it is neither kind of directory, ``out`` is a file, or a file in it is missing or damaged.
    """
    kind, where = classify_directory(path)
    out = Path(out) if out is not None else Path(path) / "report"
    if out.exists() and not out.is_dir():
        raise DivitaError(out, "output path exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    if kind == "run":
        return report_run(where, out, log)
    return report_results(where, out, log)
