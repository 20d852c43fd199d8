"""The model's option names, importable without torch (the command line lists them in its help).

``AGGREGATOR_CLASSES`` is the registry of clip aggregations: option name -> class in
:mod:`divita.model.aggregators`; ``AGGREGATORS`` are its names, in the order the help lists them.
``RENAMED_AGGREGATORS``: names whose meaning changed -> the name the earlier meaning has now.
"""

from __future__ import annotations

AGGREGATOR_CLASSES: dict[str, str] = {
    "tsfm": "TransformerAggregator",  # one transformer block, the paper's Clip Aggregation Transformer
    "mean": "MeanAggregator",  # relu of the projected clips, averaged
    "gru": "GRUAggregator",  # the authors' GRU head (115 units) on the BatchNorm-ed features
    "conv": "ConvAggregator",  # the authors' Conv1d head (128 channels) on the BatchNorm-ed features
    "savg": "SimpleAverageAggregator",  # the authors' savg: mean of the BatchNorm-ed features, relu
    "proj-gru": "ProjectedGRUAggregator",  # divita's earlier `gru`: a GRU over the projected clips
    "proj-conv": "ProjectedConvAggregator",  # divita's earlier `conv`: a Conv1d over the projected clips
}
AGGREGATORS = tuple(AGGREGATOR_CLASSES)
RENAMED_AGGREGATORS: dict[str, str] = {"gru": "proj-gru", "conv": "proj-conv"}
FUSIONS = ("late", "early")  # late: mean of per-modality logits; early: one head over concatenated features
