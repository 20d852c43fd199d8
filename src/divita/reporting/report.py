"""Visual reports: PNG figures and a markdown page for a training run or a Table-6 results directory.

``make_report(path)`` accepts

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
``errors.png``         the prediction-error matrix (:func:`prediction_error_matrix`).
``training.png``       losses, validation μAP and learning rate per epoch, the selected epoch marked.

Results figures: ``summary_vs_paper.png`` (μAP/mAP/wAP/sAP per Table 6 row, ours mean ± std over
splits next to the paper's), ``ap_per_genre_rows.png`` (per-genre test AP per row, mean ± std; the paper
reports none), ``cooccurrence.png`` (all val/test trailers of all runs), and the run figures of one
representative run per row (the split whose test μAP is closest to the row's mean) under ``runs/``.

Figures are drawn on :class:`matplotlib.figure.Figure` objects with the Agg canvas (no pyplot, no global
backend change, never a window) and written atomically.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from divita.errors import DivitaError
from divita.fileio import atomic_write_bytes, atomic_write_text
from divita.genres import GENRES

METRICS = ("uap", "map", "wap", "sap")
LABELS = {"uap": "μAP", "map": "mAP", "wap": "wAP", "sap": "sAP"}
CONVENTION_LABELS = {"paper": "paper (trapezoid AP)", "sklearn": "step-wise AP (scikit-learn)"}
DPI = 100
OURS_COLOR, PAPER_COLOR = "#1f77b4", "#bbbbbb"
RUN_FILES = ("metrics.csv", "predictions_tst.npz")

__all__ = ["make_report", "detect", "load_run", "prediction_error_matrix", "cooccurrence_matrix", "RunData"]


# ---------------------------------------------------------------------------------------------------
# inputs


@dataclass
class RunData:
    """What a report needs from one run directory."""

    run_dir: Path
    metrics: object  # pandas DataFrame of metrics.csv
    selection: str  # "loss" or "uap": the checkpoint the predictions come from
    mids: np.ndarray
    y_true: np.ndarray  # (N, 10) test labels
    y_prob: np.ndarray  # (N, 10) test probabilities
    thresholds: np.ndarray  # (10,) decision thresholds
    threshold_source: str  # where the thresholds came from, for captions
    val: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # mids, y_true, y_prob of validation
    history: object | None = None  # DataFrame of history.csv
    hparams: dict = field(default_factory=dict)

    def row(self, subset: str, convention: str):
        m = self.metrics
        sel = m[(m.subset == subset) & (m.convention == convention) & (m.selection == self.selection)]
        return sel.iloc[0] if len(sel) else None

    def epoch(self, selection: str) -> int | None:
        m = self.metrics
        sel = m[m.selection == selection]
        if "epoch" not in m.columns or not len(sel):
            return None
        return int(sel["epoch"].iloc[0])


def _read_predictions(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as d:
            missing = [k for k in ("mids", "y_true", "y_prob") if k not in d.files]
            if missing:
                raise DivitaError(path, f"predictions file lacks array(s) {', '.join(missing)}")
            mids, y_true, y_prob = d["mids"], d["y_true"], d["y_prob"]
    except DivitaError:
        raise
    except Exception as e:  # zip/npy errors
        raise DivitaError(path, f"not a readable predictions file ({type(e).__name__})") from None
    g = len(GENRES)
    if y_true.ndim != 2 or y_true.shape[1] != g or y_prob.shape != y_true.shape or len(mids) != len(y_true):
        raise DivitaError(
            path,
            f"expected y_true and y_prob of shape (N, {g}) and N mids, got {y_true.shape}, {y_prob.shape}, {len(mids)}",
        )
    if len(y_true) == 0:
        raise DivitaError(path, "no trailers in the predictions file")
    if not np.isin(y_true, (0, 1)).all():
        raise DivitaError(path, "y_true must hold 0/1 labels")
    if not np.isfinite(y_prob).all():
        raise DivitaError(path, "y_prob holds non-finite values")
    return mids.astype(str), y_true.astype(np.int8), y_prob.astype(np.float64)


def _read_metrics(path: Path):
    import pandas as pd

    try:
        m = pd.read_csv(path)
    except Exception as e:
        raise DivitaError(path, f"not a readable CSV ({type(e).__name__})") from None
    need = ["subset", "convention", "selection", *METRICS, *GENRES]
    missing = [c for c in need if c not in m.columns]
    if missing:
        raise DivitaError(path, f"not a divita metrics file: missing column(s) {', '.join(missing)}")
    if not (m.subset == "tst").any():
        raise DivitaError(path, "no test-set rows (subset 'tst')")
    return m


def _read_thresholds(run_dir: Path, val) -> tuple[np.ndarray, str]:
    """Thresholds from best.ckpt; else tuned on the validation predictions as training does; else 0.5."""
    ckpt = run_dir / "best.ckpt"
    if ckpt.is_file():
        try:
            import torch

            payload = torch.load(ckpt, map_location="cpu", weights_only=True)
            t = np.asarray(payload["thresholds"], dtype=np.float64)
            if t.shape == (len(GENRES),) and np.isfinite(t).all():
                return t, "F1-optimal on validation, from best.ckpt"
        except Exception:
            pass
    if val is not None:
        from divita.training import tune_thresholds

        return np.asarray(
            tune_thresholds(val[1], val[2])
        ), "F1-optimal on the validation predictions (recomputed: best.ckpt unreadable or missing)"
    return np.full(len(GENRES), 0.5), "0.5 (no checkpoint and no validation predictions)"


def load_run(run_dir: str | Path) -> RunData:
    """Read and check a finished run directory."""
    import pandas as pd

    run_dir = Path(run_dir)
    for name in RUN_FILES:
        if not (run_dir / name).is_file():
            raise DivitaError(run_dir, f"not a finished run directory: {name} missing")
    metrics = _read_metrics(run_dir / "metrics.csv")
    mids, y_true, y_prob = _read_predictions(run_dir / "predictions_tst.npz")
    val = _read_predictions(run_dir / "predictions_val.npz") if (run_dir / "predictions_val.npz").is_file() else None
    hparams: dict = {}
    if (run_dir / "hparams.json").is_file():
        try:
            hparams = json.loads((run_dir / "hparams.json").read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            hparams = {}
    selection = hparams.get("select_by") if hparams.get("select_by") in set(metrics.selection) else None
    if selection is None:
        selection = "loss" if "loss" in set(metrics.selection) else str(metrics.selection.iloc[0])
    thresholds, source = _read_thresholds(run_dir, val)
    history = None
    if (run_dir / "history.csv").is_file():
        try:
            history = pd.read_csv(run_dir / "history.csv")
            if "epoch" not in history.columns or history.empty:
                history = None
        except Exception:
            history = None
    return RunData(run_dir, metrics, selection, mids, y_true, y_prob, thresholds, source, val, history, hparams)


def _find_transfer(path: Path) -> Path | None:
    if (path / "tst.csv").is_file() or ((path / "runs").is_dir() and path.name == "transfer"):
        return path
    if (path / "transfer").is_dir():
        return path / "transfer"
    below = sorted(p for p in path.glob("*/transfer") if p.is_dir())
    if len(below) == 1:
        return below[0]
    if len(below) > 1:
        raise DivitaError(
            path, f"holds several results directories ({', '.join(str(p.parent.name) for p in below)}); name one"
        )
    return None


def detect(path: str | Path) -> tuple[str, Path]:
    """("run", run_dir) or ("results", transfer_dir); DivitaError naming ``path`` when it is neither."""
    path = Path(path)
    if not path.exists():
        raise DivitaError(path, "no such directory")
    if not path.is_dir():
        raise DivitaError(path, "not a directory (give a run directory or a results directory)")
    if (path / "metrics.csv").is_file():
        return "run", path
    transfer = _find_transfer(path)
    if transfer is not None:
        return "results", transfer
    raise DivitaError(
        path,
        "neither a run directory (metrics.csv, predictions_tst.npz from `divita train`) nor a results directory "
        "(transfer/tst.csv, transfer/runs/ from `divita reproduce` or `divita demo`)",
    )


# ---------------------------------------------------------------------------------------------------
# matrices


def cooccurrence_matrix(y_true: np.ndarray) -> np.ndarray:
    """(G, G) counts: [g, h] = trailers labelled both g and h; the diagonal = trailers labelled g."""
    y = np.asarray(y_true, dtype=np.int64)
    return y.T @ y


def prediction_error_matrix(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Multi-label confusion as rates -> (rates (G+1, G), denominators (G+1, G)).

    Rows are true genres g, columns predicted genres h (predicted = probability ≥ the genre's threshold):

    * diagonal [g, g]: among trailers labelled g, the share predicted g (recall of g);
    * off-diagonal [g, h]: among trailers labelled g but **not** h, the share predicted h: how often
      a g-trailer gets the wrong genre h (false positives of h, by the genre the trailer really has);
    * the last row [h]: among all trailers not labelled h, the share predicted h (h's false-positive
      rate overall, the baseline each column's off-diagonal cells compare with).

    A cell with an empty denominator is nan.
    """
    t = np.asarray(y_true, dtype=bool)
    p = np.asarray(y_pred, dtype=bool)
    g = t.shape[1]
    num = np.zeros((g + 1, g))
    den = np.zeros((g + 1, g))
    for i in range(g):
        rows = t[:, i]
        for j in range(g):
            base = rows if i == j else rows & ~t[:, j]
            den[i, j] = base.sum()
            num[i, j] = (base & p[:, j]).sum()
    neg = ~t
    den[g] = neg.sum(0)
    num[g] = (neg & p).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = np.where(den > 0, num / np.maximum(den, 1), np.nan)
    return rates, den


# ---------------------------------------------------------------------------------------------------
# figures


def _figure(w: float, h: float, **kw):
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), dpi=DPI, **kw)


def _save(fig, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_bytes(path, lambda f: fig.savefig(f, format="png", dpi=DPI))


def _png_saver(folder: Path, pngs: list[Path], log=None):
    """``save(fig, name)``: write ``folder/name`` (atomically), record it in ``pngs``, log it; returns the path."""

    def save(fig, name: str) -> Path:
        p = _save(fig, folder / name)
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


# ---------------------------------------------------------------------------------------------------
# markdown


def _pct(v) -> str:
    v = float(v)
    return f"{100 * v:.2f}" if np.isfinite(v) else "n/a"


def _image(md: list[str], out: Path, png: Path, alt: str, caption: str) -> None:
    md += [f"![{alt}]({png.relative_to(out).as_posix()})", "", f"*{caption}*", ""]


def _run_sections(
    run: RunData, out: Path, sub: Path, md: list[str], level: str = "##", log=None, with_cooccurrence: bool = True
) -> list[Path]:
    """Draw the run figures into ``sub`` and append their markdown; returns the PNG paths."""
    pngs: list[Path] = []
    n = len(run.y_true)
    sel = LABELS.get(run.selection, run.selection)
    save = _png_saver(sub, pngs, log)

    md += [f"{level} Per-genre test AP", ""]
    p = save(fig_run_ap(run), "ap_per_genre.png")
    _image(
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
            md.append("| " + " | ".join([conv, *[_pct(r[c]) for c in (*METRICS, *GENRES)]]) + " |")
    md.append("")

    md += [f"{level} Precision-recall curves", ""]
    p = save(fig_pr_curves(run), "pr_curves.png")
    _image(
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
        y, what = _labels_of_run(run)
        p = save(fig_cooccurrence(y, f"True-label co-occurrence, {what}"), "cooccurrence.png")
        _image(
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
    _image(
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
        _image(
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


def _labels_of_run(run: RunData) -> tuple[np.ndarray, str]:
    if run.val is None:
        return run.y_true, f"{len(run.y_true)} test trailers"
    mids = np.r_[run.val[0], run.mids]
    y = np.r_[run.val[1], run.y_true]
    _, first = np.unique(mids, return_index=True)
    return y[np.sort(first)], f"{len(first)} validation and test trailers"


def _run_summary(run: RunData) -> list[str]:
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
                    + " | ".join([{"val": "validation", "tst": "test"}[subset], conv, *[_pct(r[m]) for m in METRICS]])
                    + " |"
                )
    return lines + [""]


def _write_md(path: Path, md: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, "\n".join(md).rstrip() + "\n")


# ---------------------------------------------------------------------------------------------------
# reports


def report_run(run_dir: Path, out: Path, log=None) -> Path:
    run = load_run(run_dir)
    md = [f"# divita report: run `{run_dir}`", ""] + _run_summary(run)
    _run_sections(run, out, out, md, log=log)
    return _write_md(out / "report.md", md)


def _read_results(transfer: Path):
    """(tst DataFrame in percent indexed by row name, {row name: {split: run_dir}}, select_by, grid config)."""
    import pandas as pd

    from divita.datasets.release import TABLE6_BY_NAME
    from divita.evaluation.reproduce import slug, summarise

    grid = {}
    if (transfer / "grid.json").is_file():
        try:
            grid = json.loads((transfer / "grid.json").read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            grid = {}
    select_by = (grid.get("config") or {}).get("select_by", "loss")
    runs: dict[str, dict[int, Path]] = {}
    runs_dir = transfer / "runs"
    by_slug = {}
    tst = None
    if (transfer / "tst.csv").is_file():
        try:
            tst = pd.read_csv(transfer / "tst.csv", index_col="model")
        except Exception as e:
            raise DivitaError(transfer / "tst.csv", f"not a readable results table ({type(e).__name__}: {e})") from None
        need = [f"{k}_{s}" for k in (*METRICS, *GENRES) for s in ("mean", "std")]
        missing = [c for c in need if c not in tst.columns]
        if missing:
            raise DivitaError(
                transfer / "tst.csv",
                "not a divita results table: missing column(s) "
                f"{', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''}",
            )
        if tst.empty:
            raise DivitaError(transfer / "tst.csv", "the results table has no rows")
        by_slug = {slug(str(n)): str(n) for n in tst.index}
    else:
        by_slug = {slug(n): n for n in TABLE6_BY_NAME}
    if runs_dir.is_dir():
        for d in sorted(runs_dir.glob("*/split*")):
            name = by_slug.get(d.parent.name)
            if name is None or not all((d / f).is_file() for f in RUN_FILES):
                continue
            try:
                split = int(d.name.removeprefix("split"))
            except ValueError:
                continue
            runs.setdefault(name, {})[split] = d
    if tst is None:
        if not runs:
            raise DivitaError(transfer, "no tst.csv and no finished runs under runs/: nothing to report")
        # an interrupted reproduce: summarise the finished runs as reproduce would
        rows = [TABLE6_BY_NAME[n] for n in TABLE6_BY_NAME if n in runs]
        flat = {(n, s): d for n in runs for s, d in runs[n].items()}
        tst = summarise(flat, rows, "tst", "paper", select_by)
    return tst, runs, select_by, grid


def _representative(run_dirs: dict[int, Path], mean_uap: float, select_by: str) -> tuple[int, float] | None:
    """The split whose test μAP (paper convention, selected checkpoint) is closest to the row mean."""
    best = None
    for split, d in sorted(run_dirs.items()):
        try:
            m = _read_metrics(d / "metrics.csv")
        except DivitaError:
            continue
        r = m[(m.subset == "tst") & (m.convention == "paper") & (m.selection == select_by)]
        if not len(r):
            continue
        u = 100 * float(r["uap"].iloc[0])
        if best is None or abs(u - mean_uap) < abs(best[1] - mean_uap):
            best = (split, u)
    return best


def _non_paper_settings(grid: dict) -> str:
    from divita.training import TrainConfig

    cfg = grid.get("config") or {}
    ref = TrainConfig(data_dir=".", image_store="x", video_store=None).identity()
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


def report_results(transfer: Path, out: Path, log=None) -> Path:
    from divita.datasets.release import TABLE6_BY_NAME
    from divita.evaluation.reproduce import slug

    tst, runs, select_by, grid = _read_results(transfer)
    paper = {n: TABLE6_BY_NAME[n].paper for n in tst.index if n in TABLE6_BY_NAME}
    pngs: list[Path] = []
    save = _png_saver(out, pngs, log)

    md = [f"# divita report: results `{transfer}`", ""]
    splits = sorted({int(s) for s in tst["splits"]}) if "splits" in tst else []
    md.append(
        f"{len(tst)} model(s) ({', '.join(map(str, tst.index))}); test-set metrics in %, mean ± sample std over "
        f"{'/'.join(map(str, splits)) or '?'} split(s), paper AP convention, "
        f"checkpoint selected by validation {LABELS.get(select_by, select_by)}."
    )
    md.append(f"Training protocol: {(grid.get('config') or {}).get('protocol', 'divita')}.")
    diff = _non_paper_settings(grid)
    if diff:
        md.append(f"Trained with settings other than the paper's: {diff}.")
    md.append(
        "The paper's numbers are Table 6 of Montalvo-Lezama et al. (2023) on the real Trailers12k; "
        "on other data (such as the `divita demo` synthetic set) they show the paper's scale only, "
        "not a like-for-like comparison."
    )
    md.append("")

    md += ["## Table 6: ours vs the paper", ""]
    p = save(fig_summary_vs_paper(tst, paper), "summary_vs_paper.png")
    _image(
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

    md += ["## Per-genre test AP", ""]
    p = save(fig_genre_ap_rows(tst), "ap_per_genre_rows.png")
    _image(
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

    sel_path = transfer / "selection.csv"
    if sel_path.is_file():
        import pandas as pd

        try:
            sel = pd.read_csv(sel_path)
            if {"model", "selected_by", "tst_uap_mean", "tst_uap_std"} <= set(sel.columns):
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

    # label co-occurrence over every val/test trailer any run saw (the splits' test sets overlap: unique ids)
    labels: dict[str, np.ndarray] = {}
    for _name, by_split in runs.items():
        for _split, d in by_split.items():
            for f in ("predictions_val.npz", "predictions_tst.npz"):
                if (d / f).is_file():
                    mids, y, _ = _read_predictions(d / f)
                    labels.update(zip(mids, y))
    if labels:
        y = np.stack(list(labels.values()))
        md += ["## Label co-occurrence", ""]
        p = save(
            fig_cooccurrence(y, f"True-label co-occurrence, {len(y)} trailers (validation and test sets of all runs)"),
            "cooccurrence.png",
        )
        _image(
            md,
            out,
            p,
            "label co-occurrence",
            f"Number of trailers (the {len(y)} distinct trailers of the runs' validation and test sets) labelled "
            "with both the row and the column genre; the diagonal (bold) is the number labelled with the genre. "
            "Colour: the share of the row genre's trailers that also carry the column genre.",
        )

    md += [
        "## One run per model",
        "",
        "For each model, the split whose test μAP is closest to the model's mean over splits (the representative run).",
        "",
    ]
    for name in tst.index:
        by_split = runs.get(str(name), {})
        rep = _representative(by_split, float(tst.loc[name, "uap_mean"]), select_by) if by_split else None
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
        pngs += _run_sections(
            run,
            out,
            out / "runs" / f"{slug(str(name))}-split{split}",
            md,
            level="####",
            log=log,
            with_cooccurrence=False,
        )
    return _write_md(out / "report.md", md)


def make_report(path: str | Path, out: str | Path | None = None, log: Callable[[str], None] | None = None) -> Path:
    """Write PNG figures and ``report.md`` for a run or results directory; returns the markdown file.

    ``out`` defaults to ``<path>/report``. ``log`` receives a line per picture written.
    """
    kind, where = detect(path)
    out = Path(out) if out is not None else Path(path) / "report"
    if out.exists() and not out.is_dir():
        raise DivitaError(out, "output path exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    if kind == "run":
        return report_run(where, out, log)
    return report_results(where, out, log)
