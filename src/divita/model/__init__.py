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

Modules: :mod:`~divita.model.registry` (the clip aggregations' registry and the fusion modes, no torch),
:mod:`~divita.model.layers` (fused norm+projection, bitmask dropout, relu+dropout, masked mean),
:mod:`~divita.model.aggregators` (the clip aggregations), :mod:`~divita.model.divita` (ModelConfig, SnippetHead,
DIViTA). Their names are importable from here, each loaded with its module on first use.
"""

from __future__ import annotations

from divita.lazy import lazy_exports

_EXPORTS = {
    "AGGREGATORS": "registry",
    "AggregatorSpec": "registry",
    "FUSIONS": "registry",
    "FastDropout": "layers",
    "masked_mean": "layers",
    "normalize_project": "layers",
    "Aggregator": "aggregators",
    "ConvAggregator": "aggregators",
    "GRUAggregator": "aggregators",
    "MeanAggregator": "aggregators",
    "ProjectedConvAggregator": "aggregators",
    "ProjectedGRUAggregator": "aggregators",
    "SimpleAverageAggregator": "aggregators",
    "TransformerAggregator": "aggregators",
    "aggregator_class": "aggregators",
    "build_aggregator": "aggregators",
    "masked_batch_norm": "aggregators",
    "DIViTA": "divita",
    "ModelConfig": "divita",
    "SnippetHead": "divita",
    "count_parameters": "divita",
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
