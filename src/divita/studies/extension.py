"""``extension``: how much of a trailer the model sees (the abstract: input video extension changes
transferability): clips per snippet in training and evaluation (``--clips``, default 10 20 30 40) and, at
evaluation, every snippet of a trailer averaged (``all``, divita's and the paper's evaluation) or only its
central snippet (``central``). One feature variant; one training run per snippet length, scored both ways."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from divita.errors import DivitaError
from divita.studies.base import Study
from divita.studies.variants import EVALUATIONS, Row, single_stream

DEFAULT_CLIPS = (10, 20, 30, 40)
CENTRAL_METRICS = "metrics_central.csv"  # a run's metrics with one central snippet per trailer
EVALUATION_LABELS = {"all": "all snippets", "central": "central snippet"}


def central_windows(lengths: np.ndarray, num_clips: int) -> tuple[np.ndarray, np.ndarray]:
    """One window of ``num_clips`` per trailer, in its middle: (trailer index (N,), starts (M, N)) for the clip
    counts ``lengths`` (M, N) of M modalities; a trailer shorter than a window gets one padded window from its
    first clip."""
    lengths = np.asarray(lengths, dtype=np.int64)
    return np.arange(lengths.shape[1]), np.maximum(lengths - num_clips, 0) // 2


def central_snippets(snippets):
    """The snippet set ``snippets`` (a :class:`~divita.features.snippets.SnippetSet`) evaluated on each trailer's
    central window only."""
    from divita.features.snippets import SnippetSet

    class CentralSnippets(SnippetSet):
        def eval_windows(self):
            if self._eval_windows is None:
                self._eval_windows = central_windows(self.lengths, self.num_clips)
            return self._eval_windows

    return CentralSnippets(snippets.tables, snippets.labels, snippets.num_clips)


def central_metrics(run_dir: Path, cfg, cache=None) -> Path:
    """``run_dir/metrics_central.csv``: the finished run's checkpoint scored on the central snippet of each val and
    test trailer (metrics.csv's columns); computed once, kept."""
    import pandas as pd

    from divita.fileio import atomic_write_text
    from divita.training import load_checkpoint, load_split, metric_rows, predict_snippets

    path = Path(run_dir) / CENTRAL_METRICS
    if path.is_file():
        return path
    model, ckpt = load_checkpoint(Path(run_dir) / "best.ckpt")
    sets, _ = load_split(cfg, cache)
    rows = []
    for subset in ("val", "tst"):
        snippets = central_snippets(sets[subset])
        probs = predict_snippets(model, snippets, cfg.eval_batch_size)
        rows += metric_rows(
            snippets.labels, probs, subset=subset, split=cfg.split, selection=cfg.select_by, epoch=ckpt.get("epoch")
        )
    atomic_write_text(path, pd.DataFrame(rows).to_csv(index=False, float_format="%.6f"))
    return path


class ExtensionStudy(Study):
    name = "extension"
    summary = "clips per snippet (10, 20, 30, 40) and snippets per trailer at evaluation (all vs one central)"
    description = (
        "For each backbone and snippet length (--clips, default 10 20 30 40), train on every split; score each run "
        "on all snippets of a trailer (averaged, as divita and the paper do) and on its central snippet only "
        "(--evaluations). One feature variant (--fps, --fpc, --detector)."
    )
    default_backbones = ("shufflenet",)

    def add_arguments(self, parser):
        parser.add_argument(
            "--clips",
            type=int,
            nargs="+",
            default=list(DEFAULT_CLIPS),
            metavar="N",
            help="clips per snippet to compare (default: 10 20 30 40)",
        )
        parser.add_argument(
            "--evaluations",
            nargs="+",
            choices=EVALUATIONS,
            default=list(EVALUATIONS),
            help="snippets per trailer at evaluation: all (averaged) and/or central (default: both)",
        )

    def configure(self, args):
        return {"clips": args.clips, "evaluations": args.evaluations}

    def defaults(self):
        return {"clips": list(DEFAULT_CLIPS), "evaluations": list(EVALUATIONS)}

    def rows(self, opts):
        clips = [int(c) for c in opts.extra.get("clips", DEFAULT_CLIPS)]
        evaluations = list(dict.fromkeys(opts.extra.get("evaluations", EVALUATIONS)))
        if len(set(clips)) != len(clips) or any(c < 1 for c in clips):
            raise DivitaError(None, f"--clips must be distinct positive numbers, got {' '.join(map(str, clips))}")
        bad = [e for e in evaluations if e not in EVALUATIONS]
        if bad or not evaluations:
            raise DivitaError(None, f"--evaluations: choose from {', '.join(EVALUATIONS)}")
        rows = []
        for b in self.check_backbones(opts.backbones):
            for n in clips:
                spec = single_stream(opts, f"{n} clips", b, num_clips=n)
                for e in evaluations:
                    rows.append(Row(f"{n} clips, {EVALUATION_LABELS[e]}", b, spec, e))
        return rows

    def metrics_file(self, row, job, cache):
        if row.evaluation == "central":
            return central_metrics(job.run_dir, job.cfg, cache)
        return super().metrics_file(row, job, cache)

    def compared(self, opts):
        e = opts.extraction
        return (
            "Snippets of " + ", ".join(map(str, opts.extra.get("clips", DEFAULT_CLIPS))) + " clips (each clip "
            f"{e.fpc} frames at {e.fps:g} fps) in training and evaluation; at evaluation, the mean over all "
            "snippets of a trailer (all snippets) or its central snippet alone (central snippet)."
        )

    def paper_lines(self, table, opts):
        lines = [
            "The abstract says input video extension changes transferability but gives no figure, and the snippet "
            "lengths the paper compares could not be found here; its models train and evaluate on 30-clip snippets, "
            "every snippet of a trailer averaged (divita's defaults).",
            "",
            "| backbone | best | its μAP | 30 clips, all snippets (the paper's setting) |",
            "|---|---|---|---|",
        ]
        for b, group in table.groupby("backbone", sort=False):
            best = group.loc[group["uap_mean"].idxmax()]
            ref = group[group["variant"] == "30 clips, all snippets"]
            ref_text = f"{ref['uap_mean'].iloc[0]:.2f}" if len(ref) else "not run"
            lines.append(f"| {b} | {best['variant']} | {best['uap_mean']:.2f} | {ref_text} |")
        return lines
