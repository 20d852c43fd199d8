"""``divita backbones``: the clip-feature backbones the extractor knows, as a table or JSON."""

from __future__ import annotations

import argparse
import json


def add_parser(sub) -> None:
    p = sub.add_parser(
        "backbones",
        help="list the backbones clip features can be extracted with",
        description=(
            "List the backbone registry: name, 2D/3D, feature size, what the network sees, pretraining, "
            "default weights and whether they are available here (nothing is downloaded)."
        ),
    )
    p.add_argument("--json", action="store_true", help="print the specs as a JSON list instead of a table")
    g = p.add_argument_group("cost (what `divita study cost` measures)")
    g.add_argument(
        "--cost",
        action="store_true",
        help="instead, each backbone's parameters (without the classifier), FLOPs per clip as divita feeds "
        "it, "
        "measured clips/s on the CPU (and CUDA when there is one), its share of the largest one's "
        "parameters and FLOPs, and the DIViTA head over its features",
    )
    g.add_argument("--backbone", metavar="NAME[,NAME...]", help="with --cost: only these backbones")
    from divita.studies.cost import add_cost_options

    add_cost_options(g)
    p.set_defaults(func=run)


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def run(args: argparse.Namespace) -> int:
    from divita.backbones import get_spec, list_backbones, weights_status

    if args.cost:
        return run_cost(args)
    specs = [get_spec(n) for n in list_backbones()]
    if args.json:
        out = [{**s.as_dict(), "weights_here": weights_status(s.name)} for s in specs]
        print(json.dumps(out, indent=2))
        return 0
    rows = []
    for s in specs:
        h, w = s.input_size
        seen = f"{s.clip_frames}x{h}x{w} clip" if s.kind == "3d" else f"{h}x{w} frames"
        rows.append(
            [
                s.name,
                s.kind.upper(),
                str(s.num_features),
                seen,
                s.pretraining,
                s.store_prefix,
                s.default_weights or "(--weights PATH)",
                weights_status(s.name),
            ]
        )
    header = ["name", "kind", "features", "input", "pretraining", "store", "default weights", "weights here"]
    print(_table(rows, header))
    return 0


def run_cost(args: argparse.Namespace) -> int:
    """``--cost``: :func:`divita.studies.cost.cost_table` as text, or (``--json``) one object per backbone."""
    import math
    import sys

    from divita.studies.cost import cost_table, format_table

    names = [b.strip() for b in (args.backbone or "").split(",") if b.strip()] or None
    table = cost_table(
        names,
        speed=not args.no_speed,
        seconds=args.speed_seconds,
        batch=args.speed_batch,
        log=lambda s: print(s, file=sys.stderr),
    )
    if args.json:
        rows = [
            {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
            for r in table.to_dict(orient="records")
        ]
        print(json.dumps(rows, indent=2))
        return 0
    print(format_table(table))
    return 0
