"""The model's registry of clip aggregations and its fusion modes, importable without torch (the command line
lists them in its help).

A clip aggregation is one :class:`~divita.model.aggregators.Aggregator` subclass plus one
``AGGREGATORS.register(AggregatorSpec(...))`` below, which names the class as ``"module:Class"``; the
registration order is the order the help lists them in. ``FUSIONS``: how the modalities' heads are combined
(late: mean of per-modality logits; early: one head over concatenated features), a fixed choice of the model.
"""

from __future__ import annotations

from dataclasses import dataclass

from divita.registry import Registry, load_ref

FUSIONS = ("late", "early")


@dataclass(frozen=True)
class AggregatorSpec:
    """A clip aggregation's entry in `AGGREGATORS`.

    Attributes:
        name: the ``--aggregator`` name (``TrainConfig.aggregator``), recorded in checkpoints.
        aggregator: ``"module:Class"`` of its `Aggregator` subclass, imported on first use.
        help: one phrase for the help.
    """

    name: str
    aggregator: str
    help: str = ""

    def aggregator_class(self) -> type:
        """The `Aggregator` subclass ``aggregator`` names (imports its module, and torch).

        Raises:
            ImportError: its module cannot be imported.
            AttributeError: the module has no such class.
        """
        return load_ref(self.aggregator)


AGGREGATORS: Registry[AggregatorSpec] = Registry("clip aggregation")

# ------------------------------------------------------------------------------------------ the aggregations

AGGREGATORS.register(
    AggregatorSpec(
        "tsfm",
        "divita.model.aggregators:TransformerAggregator",
        help="one transformer block, the paper's Clip Aggregation Transformer",
    )
)
AGGREGATORS.register(
    AggregatorSpec(
        "mean",
        "divita.model.aggregators:MeanAggregator",
        help="relu of the projected clips, averaged",
    )
)
AGGREGATORS.register(
    AggregatorSpec(
        "gru",
        "divita.model.aggregators:GRUAggregator",
        help="the authors' GRU head (115 units) on the BatchNorm-ed features",
    )
)
AGGREGATORS.register(
    AggregatorSpec(
        "conv",
        "divita.model.aggregators:ConvAggregator",
        help="the authors' Conv1d head (128 channels) on the BatchNorm-ed features",
    )
)
AGGREGATORS.register(
    AggregatorSpec(
        "savg",
        "divita.model.aggregators:SimpleAverageAggregator",
        help="the authors' savg: mean of the BatchNorm-ed features, relu",
    )
)
AGGREGATORS.register(
    AggregatorSpec(
        "proj-gru",
        "divita.model.aggregators:ProjectedGRUAggregator",
        help="divita's earlier gru: a GRU over the projected clips",
    )
)
AGGREGATORS.register(
    AggregatorSpec(
        "proj-conv",
        "divita.model.aggregators:ProjectedConvAggregator",
        help="divita's earlier conv: a Conv1d over the projected clips",
    )
)
