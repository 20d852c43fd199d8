"""The model's option names, importable without torch (the command line lists them in its help).

``AGGREGATOR_CLASSES`` is the registry of clip aggregations: option name -> class in
:mod:`divita.model.aggregators`; ``AGGREGATORS`` are its names, in the order the help lists them.
"""

from __future__ import annotations

AGGREGATOR_CLASSES: dict[str, str] = {
    "tsfm": "TransformerAggregator",  # one transformer block, the paper's Clip Aggregation Transformer
    "mean": "MeanAggregator",
    "gru": "GRUAggregator",
    "conv": "ConvAggregator",
}
AGGREGATORS = tuple(AGGREGATOR_CLASSES)
FUSIONS = ("late", "early")  # late: mean of per-modality logits; early: one head over concatenated features
