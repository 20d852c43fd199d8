"""The report's figures, each a :class:`matplotlib.figure.Figure` drawn with the Agg canvas (no pyplot, no global
backend change, never a window) and written atomically by :func:`save_png`.

Run figures (test set, the checkpoint the run selected): :func:`fig_run_ap`, :func:`fig_pr_curves`,
:func:`fig_cooccurrence`, :func:`fig_errors`, :func:`fig_training`. Results figures (one bar group per Table 6
row): :func:`fig_summary_vs_paper`, :func:`fig_genre_ap_rows`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from divita.fileio import atomic_write_bytes
from divita.genres import GENRES
from divita.reporting.matrices import cooccurrence_matrix, prediction_error_matrix
from divita.reporting.readers import LABELS, METRICS, RunData

CONVENTION_LABELS = {"paper": "paper (trapezoid AP)", "sklearn": "step-wise AP (scikit-learn)"}
DPI = 100
OURS_COLOR, PAPER_COLOR = "#1f77b4", "#bbbbbb"


def _figure(w: float, h: float, **kw):
    """A ``w`` × ``h`` inch figure at :data:`DPI` (:func:`save_png` attaches the Agg canvas)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), dpi=DPI, **kw)


def save_png(fig, path: Path) -> Path:
    """Write ``fig`` as a PNG at ``path`` (atomically, its folder created); returns ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_bytes(path, lambda f: fig.savefig(f, format="png", dpi=DPI))


def png_saver(folder: Path, pngs: list[Path], log: Callable[[str], None] | None = None) -> Callable[..., Path]:
    """``save(fig, name)``: write ``folder/name`` (atomically), record it in ``pngs``, log it; returns the path."""

    def save(fig, name: str) -> Path:
        p = save_png(fig, folder / name)
        pngs.append(p)
        if log:
            log(f"  {p}")
        return p

    return save


def _text_color(value: float, vmax: float = 1.0) -> str:
    return "white" if np.isfinite(value) and value > 0.6 * vmax else "black"


def fig_run_ap(run: RunData):
    """Grouped bars: summary metrics then per-genre test AP, both conventions."""
    keys = [*METRICS, *GENRES]
    xs = np.r_[np.arange(4), np.arange(len(GENRES)) + 4.8]
    fig = _figure(15, 5.2, layout="constrained")
    ax = fig.add_subplot()
    width = 0.4
    prev = 100 * run.y_true.mean(0)
    floor = np.r_[np.zeros(len(METRICS)), prev]  # labels go above the positive-rate mark too
    for k, (conv, color) in enumerate((("paper", OURS_COLOR), ("sklearn", "#ff7f0e"))):
        row = run.row("tst", conv)
        if row is None:
            continue
        vals = np.array([100 * float(row[c]) for c in keys])
        bars = ax.bar(xs + (k - 0.5) * width, np.nan_to_num(vals), width, color=color, label=CONVENTION_LABELS[conv])
        for b, v, f in zip(bars, vals, floor):
            txt = "n/a" if not np.isfinite(v) else f"{v:.1f}"
            ax.text(
                b.get_x() + b.get_width() / 2,
                max(b.get_height(), f) + 1,
                txt,
                ha="center",
                va="bottom",
                fontsize=8,
                rotation=90,
            )
    ax.scatter(
        xs[4:],
        prev,
        marker="_",
        s=500,
        color="black",
        linewidths=2,
        zorder=3,
        label="positive rate (step AP of a random ranking)",
    )
    ax.set_xticks(xs, [LABELS[m] for m in METRICS] + list(GENRES), fontsize=10)
    ax.axvline(3.9, color="grey", lw=0.8, ls=":")
    ax.set_ylim(0, 118)
    ax.set_yticks(range(0, 101, 20))
    ax.set_ylabel("test AP (%)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper center", ncol=3, fontsize=9, frameon=False, bbox_to_anchor=(0.5, 1.0))
    ax.set_title(
        f"Test AP, {len(run.y_true)} trailers "
        f"(checkpoint selected by validation {LABELS.get(run.selection, run.selection)})"
    )
    return fig


def fig_pr_curves(run: RunData):
    """Per genre (2×5): the test-set precision-recall curve, AP in both conventions in the title, the positive
    rate (dashed) and the operating point of the run's decision threshold."""
    from divita.metrics import multilabel_metrics, pr_curves

    curves = pr_curves(run.y_true, run.y_prob)
    ap = {c: multilabel_metrics(run.y_true, run.y_prob, convention=c) for c in ("paper", "sklearn")}
    pred = run.y_prob >= run.thresholds
    fig = _figure(16, 7.6, layout="constrained")
    axes = fig.subplots(2, 5, sharex=True, sharey=True)
    for j, (g, ax) in enumerate(zip(GENRES, axes.ravel())):
        precision, recall = curves[g]
        n = int(run.y_true[:, j].sum())
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.05)
        ax.grid(alpha=0.3)
        if n == 0:
            ax.set_title(f"{g} (0 positives)", fontsize=10)
            ax.text(
                0.5,
                0.5,
                "no positive trailer\nin the test set:\nno curve",
                ha="center",
                va="center",
                fontsize=10,
                color="grey",
            )
            continue
        prev = n / len(run.y_true)
        ax.plot(recall, precision, color=OURS_COLOR, lw=1.6, label="precision-recall")
        ax.axhline(prev, color="grey", ls="--", lw=1, label="positive rate")
        tp = (pred[:, j] & (run.y_true[:, j] == 1)).sum()
        npred = pred[:, j].sum()
        p_at = tp / npred if npred else 1.0
        ax.plot([tp / n], [p_at], "o", color="#d62728", ms=7, label="tuned threshold")
        ax.set_title(f"{g} (n={n})\nAP {100 * ap['paper'][g]:.1f} · step AP {100 * ap['sklearn'][g]:.1f}", fontsize=10)
    for ax in axes[1]:
        ax.set_xlabel("recall")
    for ax in axes[:, 0]:
        ax.set_ylabel("precision")
    handles = {}
    for ax in axes.ravel():
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncol=3, fontsize=9, frameon=False)
    fig.suptitle(f"Precision-recall per genre, test set ({len(run.y_true)} trailers)", fontsize=12)
    return fig


def fig_cooccurrence(y_true: np.ndarray, title: str):
    """Co-occurrence of the (N, G) labels ``y_true``: counts in the cells, coloured by P(column genre | row
    genre), the diagonal (trailers per genre) in bold on grey."""
    c = cooccurrence_matrix(y_true)
    n = np.diag(c).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        cond = np.where(n[:, None] > 0, c / np.maximum(n[:, None], 1), np.nan)
    shown = cond.copy()
    np.fill_diagonal(shown, np.nan)
    fig = _figure(9.5, 8, layout="constrained")
    ax = fig.add_subplot()
    vmax = max(float(np.nanmax(shown)) if np.isfinite(shown).any() else 1.0, 0.05)
    im = ax.imshow(np.ma.masked_invalid(shown), cmap="Blues", vmin=0, vmax=vmax)
    g = len(GENRES)
    for i in range(g):
        ax.add_patch(_square(i, i, "#eeeeee"))
        for j in range(g):
            if i == j:
                ax.text(j, i, f"{c[i, j]}", ha="center", va="center", fontsize=10, fontweight="bold")
            else:
                ax.text(j, i, f"{c[i, j]}", ha="center", va="center", fontsize=9, color=_text_color(shown[i, j], vmax))
    ax.set_xticks(range(g), GENRES, rotation=40, ha="right")
    ax.set_yticks(range(g), [f"{x} (n={int(k)})" for x, k in zip(GENRES, n)])
    ax.set_xlabel("also labelled")
    ax.set_ylabel("trailers labelled")
    cb = fig.colorbar(im, ax=ax, shrink=0.8)
    cb.set_label("P(column genre | row genre)")
    ax.set_title(title, fontsize=11)
    return fig


def _square(i: int, j: int, color: str):
    from matplotlib.patches import Rectangle

    return Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor=color, edgecolor="none", zorder=0.5)


def fig_errors(run: RunData):
    """The prediction-error matrix of the test set (:func:`~divita.reporting.matrices.prediction_error_matrix`) at
    the run's thresholds: recall on the diagonal, false-positive rates off it, the overall rate in a last row."""
    pred = run.y_prob >= run.thresholds
    rates, den = prediction_error_matrix(run.y_true, pred)
    g = len(GENRES)
    off = rates.copy()
    off[np.arange(g), np.arange(g)] = np.nan
    fig = _figure(10.5, 8.6, layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(np.ma.masked_invalid(100 * off), cmap="Reds", vmin=0, vmax=100)
    for i in range(g + 1):
        for j in range(g):
            v = rates[i, j]
            if i == j:
                ax.add_patch(_square(i, j, "#c7e9c0" if np.isfinite(v) else "#eeeeee"))
                ax.text(
                    j,
                    i,
                    f"R {100 * v:.0f}" if np.isfinite(v) else "–",
                    ha="center",
                    va="center",
                    fontsize=9,
                    fontweight="bold",
                )
            else:
                ax.text(
                    j,
                    i,
                    f"{100 * v:.0f}" if np.isfinite(v) else "–",
                    ha="center",
                    va="center",
                    fontsize=9,
                    color=_text_color(v),
                )
    ax.axhline(g - 0.5, color="black", lw=1.5)
    ax.set_xticks(
        range(g), [f"{x}\n(thr {t:.2f})" for x, t in zip(GENRES, run.thresholds)], rotation=40, ha="right", fontsize=9
    )
    n = run.y_true.sum(0)
    ax.set_yticks(range(g + 1), [f"{x} (n={int(k)})" for x, k in zip(GENRES, n)] + ["all without the column genre"])
    ax.set_xlabel("predicted genre (probability ≥ its threshold)")
    ax.set_ylabel("true genre")
    cb = fig.colorbar(im, ax=ax, shrink=0.8)
    cb.set_label("false positives: % of the row's trailers lacking the column genre")
    tp = (pred & (run.y_true == 1)).sum()
    fp = (pred & (run.y_true == 0)).sum()
    fn = (~pred & (run.y_true == 1)).sum()
    ax.set_title(
        f"Prediction errors, test set: diagonal = recall (%), off-diagonal = false positives (%)\n"
        f"{tp} correct genre predictions, {fp} false positives, {fn} missed genres",
        fontsize=11,
    )
    return fig


def fig_training(run: RunData):
    """Per epoch of ``run.history``: losses, validation μAP and learning rate, the best epochs marked."""
    h = run.history
    fig = _figure(15, 4.4, layout="constrained")
    ax_loss, ax_uap, ax_lr = fig.subplots(1, 3)
    ep = h["epoch"].to_numpy()
    if "train_loss" in h:
        ax_loss.plot(ep, h["train_loss"], "o-", ms=3, label="train (snippets)")
    if "val_loss" in h:
        ax_loss.plot(ep, h["val_loss"], "o-", ms=3, label="validation (snippets)")
    ax_loss.set_title("BCE loss")
    if "val_uap" in h:
        ax_uap.plot(ep, 100 * h["val_uap"], "o-", ms=3, color="#2ca02c", label="validation μAP")
    ax_uap.set_title("validation μAP (%, paper convention)")
    if "lr" in h:
        ax_lr.plot(ep, h["lr"], "o-", ms=3, color="#9467bd")
        ax_lr.set_yscale("log")
    ax_lr.set_title("learning rate")
    for sel, style in (("loss", "-"), ("uap", ":")):
        e = run.epoch(sel)
        if e is None:
            continue
        chosen = sel == run.selection
        for ax in (ax_loss, ax_uap, ax_lr):
            ax.axvline(
                e,
                color="black" if chosen else "grey",
                ls=style,
                lw=1.2,
                label=f"best val {LABELS.get(sel, sel)} (epoch {e}){', selected' if chosen else ''}"
                if ax is not ax_lr
                else None,
            )
    for ax in (ax_loss, ax_uap, ax_lr):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    ax_loss.legend(fontsize=8)
    ax_uap.legend(fontsize=8, loc="lower right")
    return fig


def fig_summary_vs_paper(tst, paper: dict[str, dict]):
    """μAP, mAP, wAP and sAP (2×2) per row of ``tst`` (the test table in %, ``<metric>_mean``/``_std`` columns):
    ours, mean ± std, next to ``paper[row][metric]`` = (mean, std) of Table 6 where the row has one."""
    names = list(tst.index)
    fig = _figure(max(11, 1.3 * len(names) + 4), 8.5, layout="constrained")
    axes = fig.subplots(2, 2, sharey=True).ravel()
    x = np.arange(len(names))
    width = 0.38
    for ax, m in zip(axes, METRICS):
        mean = tst[f"{m}_mean"].to_numpy(float)
        std = tst[f"{m}_std"].to_numpy(float)
        ours = ax.bar(
            x - width / 2, mean, width, yerr=std, capsize=3, color=OURS_COLOR, label="ours (mean ± std over splits)"
        )
        pm = np.array([paper[n][m][0] if n in paper else np.nan for n in names])
        ps = np.array([paper[n][m][1] if n in paper else np.nan for n in names])
        has = np.isfinite(pm)
        theirs = ax.bar(
            x[has] + width / 2,
            pm[has],
            width,
            yerr=ps[has],
            capsize=3,
            color=PAPER_COLOR,
            hatch="//",
            edgecolor="#777777",
            label="paper, Table 6",
        )
        for b, v in [*zip(ours, mean), *zip(theirs, pm[has])]:
            mine = b in ours
            ax.text(
                b.get_x() + b.get_width() / 2,
                2,
                f"{v:.1f}",
                ha="center",
                va="bottom",
                fontsize=8,
                rotation=90,
                color="white" if mine else "black",
                bbox=None if mine else {"facecolor": PAPER_COLOR, "edgecolor": "none", "pad": 1},
            )
        ax.set_title(f"test {LABELS[m]}", fontsize=11)
        ax.set_xticks(x, names, rotation=30 if len(names) > 3 else 0, ha="right" if len(names) > 3 else "center")
        ax.set_ylim(0, 100)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("%")
    axes[2].set_ylabel("%")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncol=2, fontsize=10, frameon=False)
    return fig


def fig_genre_ap_rows(tst):
    """Per-genre test AP, one bar per row of ``tst`` (``<genre>_mean``/``_std`` columns, in %), mean ± std."""
    names = list(tst.index)
    k = len(names)
    fig = _figure(16, 5.8, layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(GENRES))
    width = 0.8 / k
    colors = _palette(k)
    for i, name in enumerate(names):
        mean = np.array([tst.loc[name, f"{g}_mean"] for g in GENRES], dtype=float)
        std = np.array([tst.loc[name, f"{g}_std"] for g in GENRES], dtype=float)
        ax.bar(
            x - 0.4 + (i + 0.5) * width,
            np.nan_to_num(mean),
            width,
            yerr=np.nan_to_num(std),
            capsize=2 if k <= 4 else 1,
            color=colors[i],
            label=name,
            error_kw={"lw": 0.8},
        )
    ax.set_xticks(x, GENRES, fontsize=10)
    ax.set_ylim(0, 105)
    ax.set_ylabel("test AP (%, paper convention)")
    ax.grid(axis="y", alpha=0.3)
    fig.legend(loc="outside upper center", ncol=min(k, 8), fontsize=9, frameon=False)
    return fig


def _palette(k: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if k <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(k)]
