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
    p.set_defaults(func=run)


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def run(args: argparse.Namespace) -> int:
    from divita.backbones import get_spec, list_backbones, weights_status

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
            [s.name, s.kind.upper(), str(s.num_features), seen, s.pretraining, s.store_prefix,
             s.default_weights or "(--weights PATH)", weights_status(s.name)]
        )
    header = ["name", "kind", "features", "input", "pretraining", "store", "default weights", "weights here"]
    print(_table(rows, header))
    return 0
