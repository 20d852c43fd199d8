"""The studies' pictures, drawn on :class:`matplotlib.figure.Figure` objects with the Agg canvas (no pyplot, no
window) and written atomically, as :mod:`divita.reporting.report` does."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from divita.fileio import atomic_write_bytes

DPI = 100
METRICS = ("uap", "map", "wap", "sap")
LABELS = {"uap": "μAP", "map": "mAP", "wap": "wAP", "sap": "sAP"}
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def _save(fig, path: Path, layout: bool = True) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    if layout:
        fig.tight_layout()
    return atomic_write_bytes(path, lambda f: fig.savefig(f, format="png", dpi=DPI))


def _unique(values) -> list:
    return list(dict.fromkeys(values))


def grouped_bars(table, path: str | Path, title: str = "", metrics: Sequence[str] = METRICS) -> Path:
    """One panel per metric: the test mean (bar) ± std (error bar) over splits of each variant (colour), grouped
    by backbone; the value written on each bar. ``table``: a study table (``variant``, ``backbone``,
    ``<metric>_mean``, ``<metric>_std``)."""
    from matplotlib.figure import Figure

    variants, backbones = _unique(table["variant"]), _unique(table["backbone"])
    width = 0.8 / max(1, len(variants))
    fig = Figure(figsize=(max(6.0, 1.2 + 0.55 * len(variants) * len(backbones)) * 2, 7.5))
    axes = fig.subplots(2, 2).ravel()
    by = table.set_index(["variant", "backbone"])
    lows = [by[f"{m}_mean"].min() - by[f"{m}_std"].max() for m in metrics]
    handles = []
    for ax, metric, low in zip(axes, metrics, lows, strict=False):
        for i, v in enumerate(variants):
            xs, ys, es = [], [], []
            for j, b in enumerate(backbones):
                if (v, b) in by.index:
                    xs.append(j + (i - (len(variants) - 1) / 2) * width)
                    ys.append(by.loc[(v, b), f"{metric}_mean"])
                    es.append(by.loc[(v, b), f"{metric}_std"])
            bars = ax.bar(xs, ys, width * 0.92, yerr=es, capsize=3, color=COLOURS[i % len(COLOURS)], label=str(v))
            ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=2)
            if metric == metrics[0]:
                handles.append(bars)
        ax.set_xticks(range(len(backbones)), [str(b) for b in backbones], fontsize=8)
        ax.set_ylabel(f"test {LABELS[metric]} (%)")
        ax.set_ylim(max(0.0, 5 * np.floor((low - 5) / 5)), 104)  # room above 100 % for the values
        ax.set_yticks([t for t in ax.get_yticks() if t <= 100])
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    fig.suptitle(f"{title}: test set, mean ± std over splits" if title else "test set, mean ± std over splits")
    fig.legend(
        handles, [str(v) for v in variants], loc="lower center", ncol=min(len(variants), 6), fontsize=8, frameon=False
    )
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return _save(fig, Path(path), layout=False)


def cost_bars(table, path: str | Path, title: str = "") -> Path:
    """Parameters, GFLOPs per clip and clips/s of each backbone (log scales), the share of the largest written on
    each bar."""
    from matplotlib.figure import Figure

    names = list(table["backbone"])
    panels = [
        ("params_m", "parameters (millions)", "params_share"),
        ("gflops_per_clip", "GFLOPs per clip", "flops_share"),
    ]
    speed = [c for c in ("clips_per_s_cpu", "clips_per_s_gpu") if c in table and table[c].notna().any()]
    fig = Figure(figsize=(4.2 * (len(panels) + bool(speed)), 4.8))
    axes = np.atleast_1d(fig.subplots(1, len(panels) + bool(speed)))
    ys = np.arange(len(names))
    for ax, (col, label, share) in zip(axes, panels, strict=False):
        bars = ax.barh(ys, table[col], color=COLOURS[0])
        labels = [f"{v:.3g} ({s:.2f} %)" for v, s in zip(table[col], table[share], strict=True)]
        ax.bar_label(bars, labels=labels, fontsize=7, padding=2)
        ax.set_xscale("log")
        ax.set_xlabel(label + " (log)")
        ax.set_yticks(ys, names, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(float(table[col].min()) / 5, float(table[col].max()) * 40)
    if speed:
        ax = axes[-1]
        h = 0.8 / len(speed)
        for i, col in enumerate(speed):
            vals = table[col].fillna(0).to_numpy(float)
            bars = ax.barh(
                ys + (i - (len(speed) - 1) / 2) * h, vals, h * 0.9, color=COLOURS[1 + i], label=col.split("_")[-1]
            )
            ax.bar_label(bars, fmt="%.3g", fontsize=7, padding=2)
        ax.set_xscale("log")
        ax.set_xlabel("clips per second (log)")
        ax.set_yticks(ys, names, fontsize=8)
        ax.invert_yaxis()
        measured = table[speed].to_numpy(float)
        ax.set_xlim(float(np.nanmin(measured)) / 5, float(np.nanmax(measured)) * 20)
        ax.legend(fontsize=8)
    fig.suptitle(title or "backbone cost")
    return _save(fig, Path(path))


__all__ = ["cost_bars", "grouped_bars"]
