"""``aggregation``: the clip aggregators of a DIViTA head (the abstract: spatio-temporal modelling changes
transferability). By default the authors' four heads: ``savg``, ``gru``, ``conv`` (their definitions, on the
BatchNorm-ed features) and ``tsfm`` (divita's transformer block after its projection); ``--aggregators`` adds
divita's projected variants ``mean``, ``proj-gru``, ``proj-conv`` (see :mod:`divita.model.aggregators`)."""

from __future__ import annotations

from divita.errors import DivitaError
from divita.model.registry import AGGREGATORS
from divita.studies.base import Study
from divita.studies.variants import Row, single_stream

DEFAULT_AGGREGATORS = ("savg", "gru", "conv", "tsfm")  # the authors' heads (their model/divita.py)
MEANINGS = {
    "savg": "the mean of the BatchNorm-ed clip features, then relu (the authors' savg)",
    "gru": "a 115-unit GRU over the BatchNorm-ed clip features, relu, mean (the authors' gru)",
    "conv": "a 128-channel Conv1d (kernel 3) over the BatchNorm-ed clip features, relu, mean (the authors' conv)",
    "tsfm": "divita's projection to 128, one transformer block, mean (the paper's Clip Aggregation Transformer)",
    "mean": "divita's projection to 128, relu, mean",
    "proj-gru": "divita's projection to 128, a 128-unit GRU, relu, mean (divita's gru before the authors' took it)",
    "proj-conv": "divita's projection to 128, a Conv1d, relu, mean (divita's conv before the authors' took it)",
}


def head_parameters(aggregator: str, num_features: int, cfg) -> int:
    """Parameters of one DIViTA head with ``aggregator`` over ``num_features`` features (sizes from ``cfg``)."""
    from divita.model import DIViTA, ModelConfig, count_parameters

    return count_parameters(
        DIViTA(
            ModelConfig(
                [num_features],
                aggregator=aggregator,
                hidden=cfg.hidden,
                heads=cfg.heads,
                ff_mult=cfg.ff_mult,
                dropout=cfg.dropout,
            )
        )
    )


class AggregationStudy(Study):
    name = "aggregation"
    summary = "clip aggregators: the authors' savg, GRU, convolution and transformer heads"
    description = (
        "For each backbone, train one head per clip aggregator (--aggregators, default savg gru conv tsfm: the "
        "authors' heads) on the same features, on every split, and compare."
    )
    default_backbones = ("shufflenet",)

    def add_arguments(self, parser):
        parser.add_argument(
            "--aggregators",
            nargs="+",
            choices=AGGREGATORS,
            default=list(DEFAULT_AGGREGATORS),
            metavar="NAME",
            help=f"aggregators to compare, from {', '.join(AGGREGATORS)} (default: savg gru conv tsfm)",
        )

    def configure(self, args):
        return {"aggregators": args.aggregators}

    def defaults(self):
        return {"aggregators": list(DEFAULT_AGGREGATORS)}

    def rows(self, opts):
        names = list(opts.extra.get("aggregators", DEFAULT_AGGREGATORS))
        bad = [a for a in names if a not in AGGREGATORS]
        if bad:
            raise DivitaError(None, f"unknown clip aggregation {bad[0]!r}; choose from {', '.join(AGGREGATORS)}")
        if len(set(names)) != len(names):
            raise DivitaError(None, f"aggregator listed twice: {' '.join(names)}")
        return [
            Row(a, b, single_stream(opts, a, b, aggregator=a))
            for b in self.check_backbones(opts.backbones)
            for a in names
        ]

    def compared(self, opts):
        names = list(opts.extra.get("aggregators", DEFAULT_AGGREGATORS))
        return (
            "The same features and training, one clip aggregator per row: "
            + "; ".join(f"**{a}**: {MEANINGS[a]}" for a in names)
            + "."
        )

    def paper_lines(self, table, opts):
        from divita.backbones import get_spec

        cfg = opts.base_config()
        lines = [
            "The abstract says spatio-temporal modelling changes transferability but gives no figure for the "
            "aggregators. The savg, gru and conv heads follow the authors' public code (richardtml/DIViTA, "
            "model/divita.py); tsfm is divita's transformer block (torch's TransformerEncoderLayer).",
            "",
            "| backbone | aggregator | head parameters | μAP |",
            "|---|---|---|---|",
        ]
        for _, r in table.iterrows():
            params = head_parameters(r["variant"], get_spec(r["backbone"]).num_features, cfg)
            lines.append(f"| {r['backbone']} | {r['variant']} | {params:,} | {r['uap_mean']:.2f} |")
        return lines
