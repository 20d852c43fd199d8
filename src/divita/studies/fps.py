"""``fps``: the frame rate the trailers are decoded at before clips are cut (the abstract: frame rate changes
transferability). The paper's frame rates could not be found here; the default compares 6, 12 and 24 fps."""

from __future__ import annotations

from divita.errors import DivitaError
from divita.studies.base import Study
from divita.studies.variants import Row, single_stream

DEFAULT_RATES = (6.0, 12.0, 24.0)


def rate_label(fps: float) -> str:
    return f"{fps:g} fps"


class FrameRateStudy(Study):
    name = "fps"
    summary = "frame rates compared (default 6, 12 and 24 fps)"
    description = (
        "For each backbone, extract one feature variant per frame rate (--rates, default 6 12 24: the paper's values "
        "could not be found) with the same clip rules, train each on every split and compare. Clips keep --fpc frames "
        "(a clip then spans fpc/fps seconds) unless --clip-seconds fixes their duration instead."
    )
    default_backbones = ("shufflenet", "r2plus1d")

    def add_arguments(self, parser):
        parser.add_argument(
            "--rates",
            type=float,
            nargs="+",
            default=list(DEFAULT_RATES),
            metavar="FPS",
            help="frame rates to compare (default: 6 12 24)",
        )
        parser.add_argument(
            "--clip-seconds",
            type=float,
            default=None,
            metavar="S",
            help="clips of S seconds at every rate (fpc = round(S x fps)) instead of --fpc frames",
        )

    def configure(self, args):
        return {"rates": args.rates, "clip_seconds": args.clip_seconds}

    def defaults(self):
        return {"rates": list(DEFAULT_RATES), "clip_seconds": None}

    def _fpc(self, opts, fps: float) -> int:
        seconds = opts.extra.get("clip_seconds")
        return opts.extraction.fpc if not seconds else max(1, round(seconds * fps))

    def rows(self, opts):
        rates = [float(r) for r in opts.extra.get("rates", DEFAULT_RATES)]
        if len(set(rates)) != len(rates) or any(r <= 0 for r in rates):
            raise DivitaError(
                None, f"--rates must be distinct positive frame rates, got {' '.join(f'{r:g}' for r in rates)}"
            )
        rows = []
        for b in self.check_backbones(opts.backbones):
            for fps in rates:
                features = opts.variant(b, fps=fps, fpc=self._fpc(opts, fps))
                rows.append(Row(rate_label(fps), b, single_stream(opts, rate_label(fps), b, features)))
        return rows

    def compared(self, opts):
        rates = ", ".join(f"{float(r):g}" for r in opts.extra.get("rates", DEFAULT_RATES))
        seconds = opts.extra.get("clip_seconds")
        clips = f"clips of {seconds:g} s" if seconds else f"clips of {opts.extraction.fpc} frames"
        detector = opts.extraction.detector
        return f"The trailers decoded at {rates} fps, {clips} inside the shots {detector} finds, for each backbone."

    def paper_lines(self, table, opts):
        lines = [
            "The abstract says frame rate changes transferability but gives no figure, and the frame rates the paper "
            "compares could not be found here: this study compares 6, 12 and 24 fps by default (24 fps is divita's, "
            "and the release's, rate), not the paper's values.",
            "",
            "| backbone | best rate | its μAP | μAP at the other rates |",
            "|---|---|---|---|",
        ]
        for b, group in table.groupby("backbone", sort=False):
            best = group.loc[group["uap_mean"].idxmax()]
            others = ", ".join(
                f"{r['variant']}: {r['uap_mean']:.2f}" for _, r in group.iterrows() if r["variant"] != best["variant"]
            )
            lines.append(f"| {b} | {best['variant']} | {best['uap_mean']:.2f} | {others} |")
        return lines
