"""The report's markdown: a page of sections, each a heading, its figure (drawn and written here), a caption and
a table. The section functions append lines to a page ``md`` (a list of lines) and :func:`write_md` writes it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from divita.fileio import atomic_write_text
from divita.genres import GENRES
from divita.reporting.figures import (
    fig_cooccurrence,
    fig_errors,
    fig_genre_ap_rows,
    fig_pr_curves,
    fig_run_ap,
    fig_summary_vs_paper,
    fig_training,
    png_saver,
)
from divita.reporting.readers import LABELS, METRICS, RunData, labels_of_run, load_run, representative_split

Save = Callable[..., Path]  # save(fig, name) -> the PNG's path (figures.png_saver)


def pct(v) -> str:
    """A fraction as a percentage with two decimals ("n/a" when not finite)."""
    v = float(v)
    return f"{100 * v:.2f}" if np.isfinite(v) else "n/a"


def image(md: list[str], out: Path, png: Path, alt: str, caption: str) -> None:
    """Append the picture ``png`` (linked relative to the page's folder ``out``) and its caption to ``md``."""
    md += [f"![{alt}]({png.relative_to(out).as_posix()})", "", f"*{caption}*", ""]


def write_md(path: Path, md: list[str]) -> Path:
    """Write the page ``md`` to ``path`` atomically (its folder created); returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, "\n".join(md).rstrip() + "\n")


# ----------------------------------------------------------------------------------------------------- runs


def run_summary(run: RunData) -> list[str]:
    """The opening lines of a run's page: its settings, the selected checkpoint, the metrics table."""
    hp = run.hparams
    stores = ", ".join(
        f"{k}: `{v}`"
        for k, v in (("image", hp.get("image_store", hp.get("ix"))), ("video", hp.get("video_store", hp.get("vx"))))
        if v
    )
    lines = []
    if hp:
        lines.append(
            f"Split {hp.get('split', '?')}; stores {stores or '?'}; fusion {hp.get('fusion', '?')}, "
            f"aggregator {hp.get('aggregator', '?')}, "
            f"lr {hp.get('lr', '?')}, batch {hp.get('batch_size', '?')}, at most {hp.get('max_epochs', '?')} epochs."
        )
    e = run.epoch(run.selection)
    epochs = len(run.history) if run.history is not None else "?"
    lines.append(
        f"Checkpoint selected by validation {LABELS.get(run.selection, run.selection)}: epoch {e} of {epochs} trained. "
        f"{len(run.y_true)} test trailers"
        + (f", {len(run.val[0])} validation trailers." if run.val is not None else ".")
    )
    lines.append("")
    head = ["subset", "convention", *[LABELS[m] for m in METRICS]]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for subset in ("val", "tst"):
        for conv in ("paper", "sklearn"):
            r = run.row(subset, conv)
            if r is not None:
                lines.append(
                    "| "
                    + " | ".join([{"val": "validation", "tst": "test"}[subset], conv, *[pct(r[m]) for m in METRICS]])
                    + " |"
                )
    return lines + [""]


def run_sections(
    run: RunData, out: Path, sub: Path, md: list[str], level: str = "##", log=None, with_cooccurrence: bool = True
) -> list[Path]:
    """Draw the run figures into ``sub`` and append their sections to ``md``, headed at ``level``, the pictures
    linked relative to the page's folder ``out``; ``log`` receives a line per picture. ``with_cooccurrence``: the
    run's label co-occurrence too (a results page draws one over all runs instead). Returns the PNG paths."""
    pngs: list[Path] = []
    n = len(run.y_true)
    sel = LABELS.get(run.selection, run.selection)
    save = png_saver(sub, pngs, log)

    md += [f"{level} Per-genre test AP", ""]
    p = save(fig_run_ap(run), "ap_per_genre.png")
    image(
        md,
        out,
        p,
        "per-genre test AP",
        f"Test AP in % ({n} trailers) of the checkpoint selected by validation {sel}: the summary metrics, "
        "then each genre, in the paper's convention (area under the precision-recall curve by the trapezoid rule, "
        "what Table 6 reports) and the standard step-wise AP. The black mark is the genre's positive rate, "
        "the step-wise AP a random ranking would get.",
    )
    head = ["convention", *[LABELS[m] for m in METRICS], *GENRES]
    md += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for conv in ("paper", "sklearn"):
        r = run.row("tst", conv)
        if r is not None:
            md.append("| " + " | ".join([conv, *[pct(r[c]) for c in (*METRICS, *GENRES)]]) + " |")
    md.append("")

    md += [f"{level} Precision-recall curves", ""]
    p = save(fig_pr_curves(run), "pr_curves.png")
    image(
        md,
        out,
        p,
        "precision-recall curves",
        "Test-set precision-recall curve of each genre, AP (paper convention) and step-wise AP in the title. "
        "The dashed line is the positive rate; the red dot is the operating point of the decision threshold "
        f"({run.threshold_source}).",
    )

    if with_cooccurrence:
        md += [f"{level} Label co-occurrence", ""]
        y, what = labels_of_run(run)
        p = save(fig_cooccurrence(y, f"True-label co-occurrence, {what}"), "cooccurrence.png")
        image(
            md,
            out,
            p,
            "label co-occurrence",
            f"Number of trailers ({what}) labelled with both the row and the column genre; the diagonal (bold) "
            "is the number labelled with the genre. Colour: the share of the row genre's trailers that also carry "
            "the column genre.",
        )

    md += [f"{level} Prediction errors", ""]
    p = save(fig_errors(run), "errors.png")
    image(
        md,
        out,
        p,
        "prediction-error matrix",
        "A genre counts as predicted when its probability reaches its threshold (under each column). "
        "Diagonal: recall, the % of the row genre's test trailers that get that genre. Off-diagonal: of the test "
        "trailers labelled with the row genre but not the column genre, the % that get the column genre predicted "
        "(false positives, broken down by a genre the trailer really has). Last row: the column genre's "
        "false-positive rate over all trailers without it, the baseline for its column. '–': no such trailer.",
    )

    if run.history is not None:
        md += [f"{level} Training curves", ""]
        p = save(fig_training(run), "training.png")
        e = run.epoch(run.selection)
        image(
            md,
            out,
            p,
            "training curves",
            "Per epoch: training and validation loss (binary cross-entropy over snippets), "
            f"validation μAP over trailers, learning rate (ReduceLROnPlateau). {len(run.history)} epochs; "
            f"the selected checkpoint (best validation {sel}) is epoch {e}.",
        )
    else:
        md += [
            f"{level} Training curves",
            "",
            "*No readable history.csv in the run directory: no training curves.*",
            "",
        ]
    return pngs


# -------------------------------------------------------------------------------------------------- results


def non_paper_settings(grid: dict) -> str:
    """The grid settings (``grid.json``'s config) that differ from the paper's defaults, as ``k=v, ...``."""
    from divita.training import TrainConfig

    cfg = grid.get("config") or {}
    from divita.training.protocol import parse_protocol

    ref = TrainConfig(data_dir=".", image_store="x", video_store=None).identity()
    ref["select_by"] = parse_protocol("paper").select_by  # divita's default keeps the best-μAP epoch; the paper, loss
    diff = [
        f"{k}={cfg[k]}"
        for k in (
            "num_clips",
            "batch_size",
            "max_epochs",
            "lr",
            "weight_decay",
            "scheduler_patience",
            "stop_patience",
            "select_by",
            "fusion",
            "aggregator",
            "hidden",
            "heads",
            "ff_mult",
            "dropout",
        )
        if k in cfg and cfg[k] != ref[k]
    ]
    return ", ".join(diff)


def results_header(transfer: Path, tst, select_by: str, grid: dict) -> list[str]:
    """The opening lines of a results page: the models, splits and settings, what the paper's numbers are."""
    md = [f"# divita report: results `{transfer}`", ""]
    splits = sorted({int(s) for s in tst["splits"]}) if "splits" in tst else []
    md.append(
        f"{len(tst)} model(s) ({', '.join(map(str, tst.index))}); test-set metrics in %, mean ± sample std over "
        f"{'/'.join(map(str, splits)) or '?'} split(s), paper AP convention, "
        f"checkpoint selected by validation {LABELS.get(select_by, select_by)}."
    )
    md.append(f"Training protocol: {(grid.get('config') or {}).get('protocol', 'divita')}.")
    diff = non_paper_settings(grid)
    if diff:
        md.append(f"Trained with settings other than the paper's: {diff}.")
    md.append(
        "The paper's numbers are Table 6 of Montalvo-Lezama et al. (2023) on the real Trailers12k; "
        "on other data (such as the `divita demo` synthetic set) they show the paper's scale only, "
        "not a like-for-like comparison."
    )
    md.append("")
    return md


def table6_section(md: list[str], out: Path, save: Save, tst, paper: dict[str, dict]) -> None:
    """Append ours-vs-paper for each row of ``tst`` (test table in %): the figure and a table with the deltas."""
    md += ["## Table 6: ours vs the paper", ""]
    p = save(fig_summary_vs_paper(tst, paper), "summary_vs_paper.png")
    image(
        md,
        out,
        p,
        "Table 6 ours vs paper",
        "Test μAP, mAP, wAP and sAP per model: ours (blue, mean ± std over splits) next to the paper's Table 6 "
        "(grey, hatched, mean ± std over its 3 splits)"
        + ("" if len(paper) == len(tst) else "; models outside Table 6 have no paper bar")
        + ".",
    )
    head = [
        "model",
        "splits",
        *[f"{LABELS[m]} ours" for m in METRICS],
        *[f"{LABELS[m]} paper" for m in METRICS],
        *[f"Δ{LABELS[m]}" for m in METRICS],
    ]
    md += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in tst.index:
        r = tst.loc[name]
        ours = [f"{r[f'{m}_mean']:.2f} ± {r[f'{m}_std']:.2f}" for m in METRICS]
        if name in paper:
            theirs = [f"{paper[name][m][0]:.2f} ± {paper[name][m][1]:.2f}" for m in METRICS]
            delta = [f"{r[f'{m}_mean'] - paper[name][m][0]:+.2f}" for m in METRICS]
        else:
            theirs = delta = ["–"] * 4
        md.append("| " + " | ".join([str(name), str(int(r.get("splits", 0))), *ours, *theirs, *delta]) + " |")
    md.append("")


def genre_ap_section(md: list[str], out: Path, save: Save, tst) -> None:
    """Append the per-genre test AP of each row of ``tst``: the figure and a table."""
    md += ["## Per-genre test AP", ""]
    p = save(fig_genre_ap_rows(tst), "ap_per_genre_rows.png")
    image(
        md,
        out,
        p,
        "per-genre AP per model",
        "Test AP of each genre per model (paper convention, mean ± std over splits). "
        "The paper reports no per-genre AP for Table 6, so there is nothing of theirs to compare with here.",
    )
    head = ["model", *GENRES]
    md += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in tst.index:
        r = tst.loc[name]
        md.append(
            "| " + " | ".join([str(name), *[f"{r[f'{g}_mean']:.1f} ± {r[f'{g}_std']:.1f}" for g in GENRES]]) + " |"
        )
    md.append("")


def selection_section(md: list[str], sel) -> None:
    """Append the test μAP by checkpoint selection of ``sel`` (:func:`~divita.reporting.readers.read_selection`;
    None: no section)."""
    if sel is None:
        return
    try:  # a value that is not a number ends the table there: a side table, no reason to fail the report
        md += [
            "## Checkpoint selection",
            "",
            "Test μAP (%) when the epoch is picked by validation loss (the paper) or by validation μAP:",
            "",
            "| model | by val loss | by val μAP |",
            "|---|---|---|",
        ]
        for name, grp in sel.groupby("model", sort=False):
            v = {s: f"{a:.2f} ± {b:.2f}" for s, a, b in zip(grp.selected_by, grp.tst_uap_mean, grp.tst_uap_std)}
            md.append(f"| {name} | {v.get('loss', '–')} | {v.get('uap', '–')} |")
        md.append("")
    except Exception:
        pass


def cooccurrence_section(md: list[str], out: Path, save: Save, y: np.ndarray) -> None:
    """Append the label co-occurrence of ``y`` (N, G), the labels of every validation and test trailer of the runs."""
    md += ["## Label co-occurrence", ""]
    p = save(
        fig_cooccurrence(y, f"True-label co-occurrence, {len(y)} trailers (validation and test sets of all runs)"),
        "cooccurrence.png",
    )
    image(
        md,
        out,
        p,
        "label co-occurrence",
        f"Number of trailers (the {len(y)} distinct trailers of the runs' validation and test sets) labelled "
        "with both the row and the column genre; the diagonal (bold) is the number labelled with the genre. "
        "Colour: the share of the row genre's trailers that also carry the column genre.",
    )


def representative_runs_section(
    md: list[str], out: Path, transfer: Path, tst, runs: dict[str, dict[int, Path]], select_by: str, log=None
) -> list[Path]:
    """Append, for each row of ``tst``, the run sections of its representative run
    (:func:`~divita.reporting.readers.representative_split`), drawn under ``out/runs/<row>-split<k>/``; returns
    their PNGs."""
    from divita.evaluation.reproduce import slug

    pngs: list[Path] = []
    md += [
        "## One run per model",
        "",
        "For each model, the split whose test μAP is closest to the model's mean over splits (the representative run).",
        "",
    ]
    for name in tst.index:
        by_split = runs.get(str(name), {})
        rep = representative_split(by_split, float(tst.loc[name, "uap_mean"]), select_by) if by_split else None
        md += [f"### {name}", ""]
        if rep is None:
            md += [f"*No finished run directory for {name} under `{transfer / 'runs'}`.*", ""]
            continue
        split, u = rep
        run = load_run(by_split[split])
        md += [
            f"Split {split} (`{by_split[split]}`): test μAP {u:.2f} "
            f"against the mean {float(tst.loc[name, 'uap_mean']):.2f}.",
            "",
        ]
        pngs += run_sections(
            run,
            out,
            out / "runs" / f"{slug(str(name))}-split{split}",
            md,
            level="####",
            log=log,
            with_cooccurrence=False,
        )
    return pngs
