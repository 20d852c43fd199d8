"""DIViTA snippet classifier: one head per modality, fused late (or one head over concatenated features).

Head (per modality), for a snippet of S clips with F features each:
    BatchNorm1d over features  ->  Linear F->hidden  ->  clip aggregation over the S clips
    ->  mean over (real) clips  ->  Linear hidden->10 genre logits

Clip aggregation (the paper's ablation): ``tsfm`` (one transformer block, the Clip Aggregation
Transformer, default), ``mean`` (plain mean), ``proj-gru``, ``proj-conv`` (1-D convolution over clips) after
the projection; the authors' heads ``savg``, ``gru`` and ``conv`` run on the BatchNorm-ed features without
it (see :mod:`divita.model.aggregators`).

Padding (windows of trailers shorter than S clips, and the last window of every trailer) is masked
everywhere: BatchNorm statistics use real clips only, attention ignores padded keys, and the mean is over
real clips. The authors' code does not mask: zero-padded clips go through BatchNorm (becoming non-zero),
are attended to, and are averaged in; and training on a trailer shorter than S clips fails there.

The modules are torch's (BatchNorm1d, Linear, TransformerEncoderLayer with its MultiheadAttention);
what runs is arranged for CPU speed, with tests that it equals the modules' own forward and gradients:
BatchNorm is folded into the projection (one matmul forward, one backward, no normalised copy of the
inputs), and in training the encoder layer's steps run from its submodules so that dropout is a bitwise
AND with masks from per-module generators, the feed-forward's relu and dropout are one pass, and
attention (the MultiheadAttention's parameters through public matmul and softmax ops) drops its
weights with a mask from its own generator too.

Modules: :mod:`~divita.model.names` (option names, no torch), :mod:`~divita.model.layers` (fused
norm+projection, bitmask dropout, relu+dropout, masked mean), :mod:`~divita.model.aggregators` (the clip
aggregations), :mod:`~divita.model.divita` (ModelConfig, SnippetHead, DIViTA). Their names are importable
from here, loaded on first use, so that ``divita.model.names`` needs no torch.
"""

from __future__ import annotations

import importlib

# name -> the submodule that defines it
_EXPORTS = {
    "AGGREGATOR_CLASSES": "names",
    "AGGREGATORS": "names",
    "FUSIONS": "names",
    "masked_mean": "layers",
    "normalize_project": "layers",
    "FastDropout": "layers",
    "_NormProject": "layers",
    "_MaskScale": "layers",
    "_ReluDropout": "layers",
    "_MASK_INT": "layers",
    "_bits_from_bool": "layers",
    "_apply_bitmask": "layers",
    "Aggregator": "aggregators",
    "TransformerAggregator": "aggregators",
    "MeanAggregator": "aggregators",
    "GRUAggregator": "aggregators",
    "ConvAggregator": "aggregators",
    "SimpleAverageAggregator": "aggregators",
    "ProjectedGRUAggregator": "aggregators",
    "ProjectedConvAggregator": "aggregators",
    "build_aggregator": "aggregators",
    "checkpoint_aggregator": "aggregators",
    "masked_batch_norm": "aggregators",
    "RENAMED_AGGREGATORS": "names",
    "ModelConfig": "divita",
    "SnippetHead": "divita",
    "DIViTA": "divita",
    "count_parameters": "divita",
}
__all__ = [n for n in _EXPORTS if not n.startswith("_")]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))
