"""``fusion``: image features only, video features only, late fusion and early fusion of both (the abstract:
ImageNet and Kinetics features are complementary, +2.91 % over the best single pretraining)."""

from __future__ import annotations

from divita.errors import DivitaError
from divita.studies.base import Study
from divita.studies.variants import Row, RunSpec, Stream

FUSIONS = ("image", "video", "late", "early")
LABELS = {"image": "image only", "video": "video only", "late": "late fusion", "early": "early fusion"}
PAPER_GAIN = 2.91  # the abstract: fusing ImageNet and Kinetics features, over the best single pretraining


class FusionStudy(Study):
    name = "fusion"
    summary = "image only, video only, late fusion, early fusion (complementarity)"
    description = (
        "Two backbones, --backbone IMAGE,VIDEO (default shufflenet,r2plus1d): train the image stream alone, the video "
        "stream alone, both fused late (mean of two heads' logits) and early (one head over the concatenated "
        "features), on every split, and compare with the abstract's +2.91 % of fusion over the best single stream."
    )
    default_backbones = ("shufflenet", "r2plus1d")
    min_backbones = max_backbones = 2

    def add_arguments(self, parser):
        parser.add_argument(
            "--fusions",
            nargs="+",
            choices=FUSIONS,
            default=list(FUSIONS),
            help="what to compare (default: image video late early)",
        )

    def configure(self, args):
        return {"fusions": args.fusions}

    def defaults(self):
        return {"fusions": list(FUSIONS)}

    def rows(self, opts):
        image, video = self.check_backbones(opts.backbones)
        fusions = list(dict.fromkeys(opts.extra.get("fusions", FUSIONS)))
        if not fusions or any(f not in FUSIONS for f in fusions):
            raise DivitaError(None, f"--fusions: choose from {', '.join(FUSIONS)}")
        si = Stream("image", opts.variant(image), image)
        sv = Stream("video", opts.variant(video), video)
        both = f"{image}+{video}"
        runs = {
            "image": (image, RunSpec("image", image, (si,))),
            "video": (video, RunSpec("video", video, (sv,))),
            "late": (both, RunSpec("late", both, (si, sv), (("fusion", "late"),))),
            "early": (both, RunSpec("early", both, (si, sv), (("fusion", "early"),))),
        }
        return [Row(LABELS[f], runs[f][0], runs[f][1]) for f in fusions]

    def compared(self, opts):
        image, video = (list(opts.backbones) or list(self.default_backbones))[:2]
        return (
            f"{image} features in the image stream, {video} features in the video stream (same clips): each alone, "
            "fused late (the mean of the two heads' logits, DIViTA's fusion) and fused early (one head over the "
            "concatenated features)."
        )

    def paper_lines(self, table, opts):
        lines = [
            "The abstract: ImageNet and Kinetics features are complementary; combining them gains 2.91 % over the "
            "top single pretraining (whether in μAP points or relative is not said, so both of ours are shown).",
            "",
        ]
        single = table[table["variant"].isin([LABELS["image"], LABELS["video"]])]
        fused = table[table["variant"].isin([LABELS["late"], LABELS["early"]])]
        if single.empty or fused.empty:
            return lines + ["Run both a single stream and a fusion to compare."]
        s = single.loc[single["uap_mean"].idxmax()]
        f = fused.loc[fused["uap_mean"].idxmax()]
        points = f["uap_mean"] - s["uap_mean"]
        lines += [
            "| best fusion | its μAP | best single stream | its μAP | gain (points) | gain (relative %) | paper |",
            "|---|---|---|---|---|---|---|",
            f"| {f['variant']} | {f['uap_mean']:.2f} | {s['variant']} ({s['backbone']}) | {s['uap_mean']:.2f} | "
            f"{points:+.2f} | {100 * points / s['uap_mean']:+.2f} | +{PAPER_GAIN:.2f} |",
        ]
        return lines
