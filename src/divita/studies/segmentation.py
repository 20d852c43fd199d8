"""``segmentation``: clips cut inside shots vs fixed-length clips that ignore shots (the paper's DIViTA claim).

Two feature variants per backbone, at the same frame rate and clip length: ``shots`` (the clips of the shots the
``--detector`` finds, TransNetV2 by default: a clip never crosses a cut) and ``fixed`` (constant ``fpc``-frame
segments, one clip each: the paper's non-shot baseline, :class:`divita.shots.FixedStream`). The abstract: shot
segmentation improves transfer by 1.83 % for ImageNet features and 3.75 % for Kinetics features.
"""

from __future__ import annotations

from divita.errors import DivitaError
from divita.studies.base import Study
from divita.studies.tables import gain
from divita.studies.variants import Row, single_stream

PAPER_GAIN = {"2d": ("ImageNet", 1.83), "3d": ("Kinetics", 3.75)}  # the abstract's μAP gains of shot segmentation


class SegmentationStudy(Study):
    name = "segmentation"
    summary = "clips inside shots (a shot detector) vs fixed-length clips that ignore shots"
    description = (
        "For each backbone, extract two feature variants at the same --fps and --fpc: 'shots' (clips inside the shots "
        "--detector finds, TransNetV2 by default) and 'fixed' (constant fpc-frame segments that ignore shots), train "
        "each on every split and compare, next to the abstract's gains (+1.83 % for ImageNet features, +3.75 % for "
        "Kinetics)."
    )
    default_backbones = ("shufflenet", "r2plus1d")

    def rows(self, opts):
        if opts.extraction.detector == "fixed":
            raise DivitaError(
                None,
                "study segmentation compares a shot detector with fixed segments: --detector "
                "must name a shot detector, not fixed",
            )
        rows = []
        for b in self.check_backbones(opts.backbones):
            for variant, detector in (("shots", opts.extraction.detector), ("fixed", "fixed")):
                rows.append(Row(variant, b, single_stream(opts, variant, b, opts.variant(b, detector=detector))))
        return rows

    def compared(self, opts):
        e = opts.extraction
        return (
            f"Clips of {e.fpc} frames at {e.fps:g} fps, cut inside the shots {e.detector} finds (**shots**: "
            f"a clip never crosses a cut) vs constant {e.fpc}-frame segments that ignore shots (**fixed**, the "
            "paper's baseline), for each backbone; everything else equal."
        )

    def paper_lines(self, table, opts):
        from divita.backbones import get_spec

        lines = [
            "The abstract: shot-based segmentation improves transferability by 1.83 % for ImageNet features and by "
            "3.75 % for Kinetics features. It does not say whether in μAP points or relative to the fixed-clip μAP, so "
            "both of ours are shown.",
            "",
            "| backbone | features | μAP shots | μAP fixed | gain (points) | gain (relative %) | paper |",
            "|---|---|---|---|---|---|---|",
        ]
        t = table.set_index(["variant", "backbone"])
        for b in dict.fromkeys(table["backbone"]):
            g = gain(table, b, "shots", "fixed")
            if g is None:
                continue
            source, paper = PAPER_GAIN[get_spec(b).kind]
            lines.append(
                f"| {b} | {source} | {t.loc[('shots', b), 'uap_mean']:.2f} | {t.loc[('fixed', b), 'uap_mean']:.2f} "
                f"| {g[0]:+.2f} | {g[1]:+.2f} | +{paper:.2f} |"
            )
        return lines
