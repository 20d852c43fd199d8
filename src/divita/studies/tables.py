"""Step 4 of a study (see :mod:`divita.studies.running`): its table from the runs' metrics, in markdown, and the
three files it writes (``OUT/<study>.csv``, ``.md`` and ``.png``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from divita.studies.base import Study
    from divita.studies.options import StudyOptions
    from divita.studies.variants import Row

METRICS = ("uap", "map", "wap", "sap")
METRIC_LABELS = {"uap": "μAP", "map": "mAP", "wap": "wAP", "sap": "sAP"}
CONVENTION_SUFFIX = {"paper": "", "sklearn": "_sklearn"}


@dataclass
class StudyResult:
    """What a study wrote: ``csv``, ``md`` and ``png`` paths, the table (a DataFrame) and its markdown text."""

    name: str
    csv: Path
    md: Path
    png: Path
    table: Any
    markdown: str
    runs: dict = field(default_factory=dict)


def summarise(rows: Sequence[Row], files: dict[tuple[Row, int], Path], splits: Sequence[int], select_by: str):
    """The study table: one row per (variant, backbone), test-set mean and std (ddof=1; 0 for one split) over
    ``splits``, in percent, of μAP, mAP, wAP, sAP in the paper's AP convention (``uap_mean``...) and the step-wise
    one (``uap_mean_sklearn``...)."""
    import numpy as np
    import pandas as pd

    records = []
    for row in rows:
        rec: dict[str, Any] = {"variant": row.variant, "backbone": row.backbone, "splits": len(splits)}
        frames = {s: pd.read_csv(files[(row, s)]) for s in splits}
        for convention, suffix in CONVENTION_SUFFIX.items():
            vals = []
            for s in splits:
                m = frames[s]
                m = m[(m.subset == "tst") & (m.convention == convention) & (m.selection == select_by)]
                vals.append(100 * m[list(METRICS)].to_numpy(float)[0])
            a = np.stack(vals)
            for j, k in enumerate(METRICS):
                rec[f"{k}_mean{suffix}"] = float(a[:, j].mean())
                rec[f"{k}_std{suffix}"] = float(a[:, j].std(ddof=1)) if len(a) > 1 else 0.0
        records.append(rec)
    return pd.DataFrame(records)


def table_markdown(table: pd.DataFrame) -> str:
    """The study table in markdown: mean ± std per metric, paper convention then step-wise."""
    head = [
        "variant",
        "backbone",
        *(METRIC_LABELS[m] for m in METRICS),
        *(f"{METRIC_LABELS[m]} (step-wise)" for m in METRICS),
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in table.iterrows():
        cells = [str(r["variant"]), str(r["backbone"])]
        for suffix in CONVENTION_SUFFIX.values():
            cells += [f"{r[f'{m}_mean{suffix}']:.2f} ± {r[f'{m}_std{suffix}']:.2f}" for m in METRICS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def gain(
    table: pd.DataFrame, backbone: str, better: str, worse: str, metric: str = "uap"
) -> tuple[float, float] | None:
    """(difference in points, relative difference in percent) of ``metric`` between two variants on ``backbone``."""
    t = table.set_index(["variant", "backbone"])
    if (better, backbone) not in t.index or (worse, backbone) not in t.index:
        return None
    a, b = t.loc[(better, backbone), f"{metric}_mean"], t.loc[(worse, backbone), f"{metric}_mean"]
    return float(a - b), float(100 * (a - b) / b) if b else float("nan")


def write_outputs(
    study: Study,
    opts: StudyOptions,
    table: pd.DataFrame,
    log: Callable[[str], None],
    extra_md: str = "",
    plot: Callable | None = None,
) -> StudyResult:
    """``OUT/<name>.csv``, ``OUT/<name>.md`` and ``OUT/<name>.png`` of a study table."""
    from divita.fileio import atomic_write_text
    from divita.studies.plots import grouped_bars

    opts.out.mkdir(parents=True, exist_ok=True)
    csv = opts.out / f"{study.name}.csv"
    md = opts.out / f"{study.name}.md"
    png = opts.out / f"{study.name}.png"
    atomic_write_text(csv, table.to_csv(index=False, float_format="%.2f"))
    base = opts.base_config()
    parts = [
        f"# Study: {study.name}",
        "",
        study.compared(opts),
        "",
        f"Test set of split(s) {', '.join(map(str, opts.splits))}; the epoch selected by validation "
        f"{'loss' if base.select_by == 'loss' else 'μAP'}; mean ± std over splits, in percent. The paper's columns "
        "use its trapezoid AP; the step-wise ones scikit-learn's average precision (see docs/training.md).",
        "",
        table_markdown(table),
        "",
        "## Next to the paper",
        "",
        *study.paper_lines(table, opts),
        "",
    ]
    if extra_md:
        parts += [extra_md, ""]
    text = "\n".join(parts)
    atomic_write_text(md, text)
    (plot or grouped_bars)(table, png, title=f"divita study {study.name}")
    log(f"study {study.name}: {csv}, {md}, {png}")
    return StudyResult(study.name, csv, md, png, table, text)


__all__ = ["METRICS", "METRIC_LABELS", "StudyResult", "gain", "summarise", "table_markdown", "write_outputs"]
