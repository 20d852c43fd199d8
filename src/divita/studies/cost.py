"""``cost``: what each backbone and the DIViTA head cost, no training (the abstract: a light ConvNet loses only
3.46 % against the top Transformer with 11.82 % of its parameters and 0.81 % of its FLOPs).

For every backbone in the registry (or ``--backbone``): parameters without the ImageNet/Kinetics classifier (the
network divita runs, :func:`divita.backbones.encoder.build_network`), FLOPs per clip as divita feeds it (a 2D
backbone sees ``frames_per_clip_2d`` frames of a clip, a 3D one the clip resampled to its ``clip_frames``; counted by
torch's :class:`~torch.utils.flop_counter.FlopCounterMode` on shapes only, a multiply-add = 2 FLOPs), measured clips/s
of the clip encoder on this machine's CPU (and on CUDA when there is one; random weights, same speed), each
backbone's share of the largest one's parameters and FLOPs, and the DIViTA head over its features (parameters,
FLOPs per clip of a ``num_clips`` snippet). Writes ``OUT/cost.csv``, ``OUT/cost.md``, ``OUT/cost.png``; ``divita
backbones --cost`` prints the same table.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from divita.studies.base import Study
from divita.studies.tables import StudyResult

PAPER = {"params_share": 11.82, "flops_share": 0.81, "uap_drop": 3.46}  # the abstract
LIGHT, TOP = ("shufflenet", "shufflenet3d"), "swin3d"  # our reading of the abstract's pair (see paper_lines)
COLUMNS = (
    "backbone",
    "kind",
    "pretraining",
    "features",
    "input",
    "params",
    "params_m",
    "gflops_per_clip",
    "clips_per_s_cpu",
    "clips_per_s_gpu",
    "params_share",
    "flops_share",
    "head_params",
    "head_mflops_per_clip",
)


def network_input_shape(spec, frames_per_clip_2d: int = 3, clip_frames: int | None = None) -> tuple[int, ...]:
    """The network's input for one clip as divita feeds it: 2D (frames_per_clip_2d, 3, H, W); 3D (1, 3, T, H, W)."""
    h, w = spec.input_size
    if spec.kind == "2d":
        return (int(frames_per_clip_2d), 3, h, w)
    return (1, 3, int(clip_frames or spec.clip_frames), h, w)


def count_flops(model, *inputs_shapes: Sequence[int], **kwargs) -> int:
    """FLOPs of ``model(*inputs)`` for inputs of these shapes, counted by :class:`FlopCounterMode` on the meta device
    (shapes only: nothing is computed, the model is not changed)."""
    import copy

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    meta = copy.deepcopy(model).to("meta").eval()
    inputs = [torch.zeros(s, device="meta") for s in inputs_shapes]
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        meta(*inputs, **kwargs)
    return int(counter.get_total_flops())


def head_cost(num_features: int, num_clips: int = 30, aggregator: str = "tsfm") -> tuple[int, float]:
    """(parameters, FLOPs per clip) of one DIViTA head over ``num_features`` features, a snippet of ``num_clips``."""
    import torch

    from divita.model import DIViTA, ModelConfig, count_parameters

    model = DIViTA(ModelConfig([num_features], aggregator=aggregator)).eval()
    x = torch.zeros(1, num_clips, num_features)
    mask = torch.ones(1, num_clips, dtype=torch.bool)
    from torch.utils.flop_counter import FlopCounterMode

    # with gradients on, the encoder layer runs its submodules (its fused inference kernel has no FLOP formula)
    with torch.enable_grad(), FlopCounterMode(display=False) as counter:
        model([x], [mask])
    return count_parameters(model), counter.get_total_flops() / num_clips


def measure_speed(
    name: str,
    device: str,
    seconds: float = 2.0,
    batch: int | None = None,
    fpc: int = 24,
    frames_per_clip_2d: int = 3,
    precision: str = "auto",
) -> float:
    """Clips per second of backbone ``name``'s clip encoder (random weights; preprocessing included) on ``device``,
    on uint8 clips of ``fpc`` frames decoded at the backbone's resize side, 16:9: one warm-up batch, then batches
    for at least ``seconds``."""
    import numpy as np
    import torch

    from divita.backbones import load_encoder

    enc = load_encoder(
        name, weights="random", device=device, precision=precision, frames_per_clip_2d=frames_per_clip_2d
    )
    batch = batch or (16 if str(device).startswith("cuda") else 4)
    side = enc.min_side
    clips = np.random.default_rng(0).integers(0, 256, (batch, fpc, side, side * 16 // 9, 3), dtype=np.uint8)

    def sync():
        if str(device).startswith("cuda"):
            torch.cuda.synchronize()

    enc.encode(clips)
    sync()
    n, t0 = 0, time.perf_counter()
    while True:
        enc.encode(clips)
        sync()
        n += batch
        if time.perf_counter() - t0 >= seconds:
            break
    return n / (time.perf_counter() - t0)


def cost_table(
    backbones: Sequence[str] | None = None,
    speed: bool = True,
    seconds: float = 2.0,
    devices: Sequence[str] | None = None,
    num_clips: int = 30,
    frames_per_clip_2d: int = 3,
    batch: int | None = None,
    log=None,
):
    """The cost table (a DataFrame, one row per backbone, :data:`COLUMNS`); ``speed`` False leaves clips/s empty.

    ``devices``: where clips/s is measured (default: cpu, and cuda when torch sees one)."""
    import pandas as pd
    import torch

    from divita.backbones import get_entry, list_backbones
    from divita.backbones.encoder import build_network

    log = log or (lambda s: None)
    names = list(backbones or list_backbones())
    if devices is None:
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for name in names:
        entry = get_entry(name)
        spec = entry.spec
        model = build_network(entry).eval()  # the classifier is an Identity: the features divita stores
        shape = network_input_shape(spec, frames_per_clip_2d)
        params = sum(p.numel() for p in model.parameters())
        flops = count_flops(model, shape)
        del model
        h_params, h_flops = head_cost(spec.num_features, num_clips)
        h, w = spec.input_size
        row = {
            "backbone": name,
            "kind": spec.kind.upper(),
            "pretraining": spec.pretraining,
            "features": spec.num_features,
            "input": f"{shape[0]}x{h}x{w} frames" if spec.kind == "2d" else f"{shape[2]}x{h}x{w} clip",
            "params": params,
            "params_m": params / 1e6,
            "gflops_per_clip": flops / 1e9,
            "clips_per_s_cpu": float("nan"),
            "clips_per_s_gpu": float("nan"),
            "head_params": h_params,
            "head_mflops_per_clip": h_flops / 1e6,
        }
        if speed:
            for device in devices:
                col = "clips_per_s_gpu" if str(device).startswith("cuda") else "clips_per_s_cpu"
                row[col] = measure_speed(name, device, seconds, batch, frames_per_clip_2d=frames_per_clip_2d)
                log(f"cost {name}: {row[col]:.1f} clips/s on {device}")
        rows.append(row)
    table = pd.DataFrame(rows)
    ref = table.loc[table["params"].idxmax()]
    table["params_share"] = 100 * table["params"] / ref["params"]
    table["flops_share"] = 100 * table["gflops_per_clip"] / ref["gflops_per_clip"]
    table.attrs["reference"] = ref["backbone"]
    return table[list(COLUMNS)]


def format_table(table) -> str:
    """The cost table as aligned text (``divita backbones --cost``)."""
    header = [
        "backbone",
        "kind",
        "params (M)",
        "GFLOPs/clip",
        "clips/s CPU",
        "clips/s GPU",
        "% params",
        "% FLOPs",
        "head params",
        "head MFLOPs/clip",
    ]

    def num(v, fmt):
        return "-" if v != v else format(v, fmt)  # NaN: not measured

    rows = [
        [
            r["backbone"],
            r["kind"],
            num(r["params_m"], ".2f"),
            num(r["gflops_per_clip"], ".2f"),
            num(r["clips_per_s_cpu"], ".1f"),
            num(r["clips_per_s_gpu"], ".1f"),
            num(r["params_share"], ".2f"),
            num(r["flops_share"], ".2f"),
            f"{int(r['head_params']):,}",
            num(r["head_mflops_per_clip"], ".2f"),
        ]
        for _, r in table.iterrows()
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
    ref = table.attrs.get("reference")
    note = f"shares: of {ref}'s parameters and FLOPs (the backbone with the most parameters)" if ref else ""
    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows), note]).rstrip()


def pair_shares(table, light: Sequence[str] = LIGHT, top: str = TOP) -> dict | None:
    """Parameters and FLOPs per clip of the ``light`` backbones (with one DIViTA head each) as percentages of ``top``
    (with its head); None when one of them is not in the table."""
    t = table.set_index("backbone")
    if top not in t.index or any(b not in t.index for b in light):
        return None

    def total(names):
        params = sum(int(t.loc[b, "params"]) + int(t.loc[b, "head_params"]) for b in names)
        flops = sum(t.loc[b, "gflops_per_clip"] * 1e9 + t.loc[b, "head_mflops_per_clip"] * 1e6 for b in names)
        return params, flops

    (lp, lf), (tp, tf) = total(light), total([top])
    return {"params_share": 100 * lp / tp, "flops_share": 100 * lf / tf}


class CostStudy(Study):
    name = "cost"
    summary = "parameters, FLOPs per clip and clips/s of every backbone and the DIViTA head (no training)"
    description = (
        "For every backbone (or --backbone): parameters without the classifier, FLOPs per clip as divita feeds it "
        "(torch's FlopCounterMode), measured clips/s on this machine's CPU and on CUDA when there is one, each "
        "backbone's share of the largest one's parameters and FLOPs, and the DIViTA head over its features. Writes "
        "OUT/cost.csv, OUT/cost.md and OUT/cost.png. No videos, labels or training."
    )
    trains = False
    default_backbones = ()

    def add_arguments(self, parser):
        add_cost_options(parser)

    def configure(self, args):
        return {"speed": not args.no_speed, "seconds": args.speed_seconds, "speed_batch": args.speed_batch}

    def defaults(self):
        return {"speed": True, "seconds": 2.0, "speed_batch": None}

    def rows(self, opts):
        """None: nothing is trained; :meth:`run` measures the backbones instead."""
        return []

    def run(self, opts, log=None) -> StudyResult:
        from divita.fileio import atomic_write_text
        from divita.studies.plots import cost_bars

        log = log or (lambda s: print(s, file=sys.stderr))
        extra = {**self.defaults(), **opts.extra}
        names = self.check_backbones(opts.backbones) if opts.backbones else None
        devices = None if opts.device == "auto" else [opts.device]
        cfg = opts.base_config()
        table = cost_table(
            names,
            speed=extra["speed"],
            seconds=extra["seconds"],
            devices=devices,
            num_clips=cfg.num_clips,
            frames_per_clip_2d=opts.extraction.frames_per_clip_2d,
            batch=extra["speed_batch"],
            log=log,
        )
        opts.out.mkdir(parents=True, exist_ok=True)
        csv, md, png = (opts.out / f"cost.{ext}" for ext in ("csv", "md", "png"))
        atomic_write_text(csv, table.to_csv(index=False, float_format="%.6g"))
        text = "\n".join(
            [
                "# Study: cost",
                "",
                self.compared(opts, cfg.num_clips),
                "",
                "```",
                format_table(table),
                "```",
                "",
                "## Next to the paper",
                "",
                *self.paper_lines(table, opts),
                "",
            ]
        )
        atomic_write_text(md, text)
        cost_bars(table, png, title=f"divita study cost (shares of {table.attrs['reference']})")
        log(f"study cost: {csv}, {md}, {png}")
        return StudyResult(self.name, csv, md, png, table, text)

    def compared(self, opts, num_clips: int = 30):
        k2d = opts.extraction.frames_per_clip_2d
        return (
            f"Backbones as divita runs them: a 2D backbone averages {k2d} frames of each clip, a "
            "3D one sees the clip resampled to its clip_frames; parameters without the classifier; FLOPs counted by "
            "torch's FlopCounterMode (a multiply-add is 2 FLOPs); clips/s of the clip encoder, preprocessing "
            f"included, at the precision 'auto' picks. The DIViTA head: one stream, tsfm, a snippet of {num_clips} "
            "clips."
        )

    def paper_lines(self, table, opts):
        k2d = opts.extraction.frames_per_clip_2d
        lines = [
            f"The abstract: a lightweight ConvNet loses only {PAPER['uap_drop']} % of classification performance "
            f"against the top Transformer while needing {PAPER['params_share']} % of its parameters and "
            f"{PAPER['flops_share']} % of its FLOPs. It does not name the two models; our reading of Table 6 is "
            "ShuffleNet-Fusion (the ShuffleNet 2D and 3D backbones, one DIViTA head each) against Swin-3D (the best "
            "row, one head). The μAP drop needs "
            "training: compare the rows with `divita reproduce` or `divita study fusion`.",
            "",
        ]
        shares = pair_shares(table)
        if shares is None:
            return lines + [f"(Run the study with {', '.join(LIGHT)} and {TOP} to compare that pair.)"]
        return lines + [
            "| light / top | parameters | FLOPs per clip |",
            "|---|---|---|",
            f"| {'+'.join(LIGHT)} / {TOP}, ours | {shares['params_share']:.2f} % | {shares['flops_share']:.2f} % |",
            f"| the abstract | {PAPER['params_share']:.2f} % | {PAPER['flops_share']:.2f} % |",
            "",
            f"divita's 2D clip feature averages {k2d} frames (`--frames-per-clip-2d`); how many "
            "frames per clip the paper's FLOPs count for the 2D backbone could not be found.",
        ]


def add_cost_options(parser) -> None:
    """``--no-speed``, ``--speed-seconds``, ``--speed-batch`` (``divita study cost``, ``divita backbones --cost``)."""
    parser.add_argument(
        "--no-speed", action="store_true", help="skip the clips/s measurement (parameters and FLOPs only)"
    )
    parser.add_argument(
        "--speed-seconds",
        type=float,
        default=2.0,
        metavar="S",
        help="measure each backbone's clips/s for at least S seconds after a warm-up batch (default: 2)",
    )
    parser.add_argument(
        "--speed-batch",
        type=int,
        default=None,
        metavar="B",
        help="clips per batch when measuring speed (default: 4 on CPU, 16 on CUDA)",
    )


__all__ = [
    "COLUMNS",
    "CostStudy",
    "add_cost_options",
    "cost_table",
    "count_flops",
    "format_table",
    "head_cost",
    "measure_speed",
    "network_input_shape",
    "pair_shares",
]
