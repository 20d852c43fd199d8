"""Clip aggregation over a snippet's S clips, (B, S, D_in) -> (B, S, D_out), padding masked (the paper's ablation).

One class per entry of the registry :data:`divita.model.registry.AGGREGATORS` (a new aggregation: an
:class:`Aggregator` subclass here or in a module of its own, plus one registration there); :func:`build_aggregator`
builds one by name. Two families:

- after divita's BatchNorm + Linear(F -> hidden) projection (``projected = True``): ``tsfm`` (one transformer
  block, the paper's Clip Aggregation Transformer, default), ``mean`` (relu of the projected clips),
  ``proj-gru`` and ``proj-conv`` (a GRU / a 1-D convolution over the projected clips: what ``gru`` and
  ``conv`` meant before they became the authors' heads);
- the authors' heads (``richardtml/DIViTA``, ``model/divita.py``), on the BatchNorm-ed features themselves, no
  projection (``projected = False``): ``savg`` (mean over clips, then relu: F features),
  ``gru`` (one GRU layer of 115 units over the clips, relu, mean) and ``conv`` (Conv1d F -> 128, kernel 3,
  padding 1, relu, mean).

The head (:class:`divita.model.divita.SnippetHead`) runs BatchNorm (over real clips only), the projection when the
aggregator asks for it, the aggregator, its :meth:`Aggregator.pool` over the real clips, and a Linear
(``out_features`` -> 10). Unlike the authors' code, padding is masked everywhere (see :mod:`divita.model`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from torch import nn

from divita.model.layers import FastDropout, _ReluDropout, masked_mean
from divita.model.registry import AGGREGATORS

AUTHORS_GRU_HIDDEN = 115  # the authors' default `gru`: 1 layer of 115 units
AUTHORS_CONV_CHANNELS = 128  # the authors' default `conv`: one Conv1d to 128 channels, kernel 3


class Aggregator(nn.Module, ABC):
    """Base of the clip aggregations (a ``torch.nn.Module``): a snippet's S clips (B, S, D_in) -> (B, S, D_out).

    A subclass sets ``out_features`` (D_out) and implements `forward`; it is registered in `AGGREGATORS` by
    an `AggregatorSpec`. The model's head runs BatchNorm over the real clips, the projection to ``hidden`` when
    ``projected``, the aggregator, its `pool` over the real clips (B, D_out), and a linear layer to the 10 genre
    logits. Padded clips (``mask`` False) must never change the output (a test checks it for every registered
    aggregator).

    Attributes:
        projected: True (the default): ``h`` is the head's projection, D_in = ``hidden``; False: ``h`` is the
            BatchNorm-ed features themselves, D_in = F (the backbone's feature size).
        out_features: D_out, the size of each output clip vector and of the pooled vector.
    """

    projected = True
    out_features: int

    @abstractmethod
    def forward(self, h: torch.Tensor, mask: torch.Tensor, all_real: bool | None = None) -> torch.Tensor:
        """Aggregate the clips of a batch of snippets.

        Args:
            h: the clips, (B, S, D_in).
            mask: (B, S) bool, True for a real clip, False for padding (padding only trails the real clips).
            all_real: every clip is real, when the caller knows it (None: read from ``mask``).

        Returns:
            (B, S, out_features); padded clips' outputs are finite and meaningless (`pool` skips them).
        """

    @classmethod
    def from_sizes(cls, hidden: int, heads: int, ff_mult: int, dropout: float, num_features: int) -> Aggregator:
        """The aggregator of a model's sizes (`TrainConfig`'s ``hidden``, ``heads``, ``ff_mult``, ``dropout``).

        Args:
            hidden: the projection's size (D_in when ``projected``).
            heads: attention heads (a transformer).
            ff_mult: the feed-forward width as a multiple of ``hidden`` (a transformer).
            dropout: the dropout probability.
            num_features: F, the stream's feature size (D_in when not ``projected``).

        Returns:
            A new aggregator; by default ``cls(hidden)``.
        """
        return cls(hidden)

    def pool(self, h: torch.Tensor, mask: torch.Tensor, all_real: bool | None = None) -> torch.Tensor:
        """Reduce the aggregated clips to one vector per snippet: by default their mean over the real clips.

        Args:
            h: `forward`'s output, (B, S, D).
            mask: (B, S) bool, True for a real clip.
            all_real: every clip is real, when known.

        Returns:
            (B, D).
        """
        return masked_mean(h, mask, all_real)


class TransformerAggregator(Aggregator):
    """One post-norm transformer encoder block over clips (torch's TransformerEncoderLayer), padding masked.

    Evaluation runs the layer's own forward. Training on CPU runs the same computation step by step from
    the layer's submodules (its MultiheadAttention's parameters, its norms and linears), so that the
    feed-forward's relu and dropout are one pass and every dropout mask, attention's included, comes from
    a :class:`FastDropout`'s own generator.
    """

    def __init__(self, hidden: int, heads: int, ff_mult: int, dropout: float):
        super().__init__()
        self.out_features = hidden
        self.block = nn.TransformerEncoderLayer(
            d_model=hidden,
            nhead=heads,
            dim_feedforward=ff_mult * hidden,
            dropout=dropout,
            activation="relu",
            batch_first=True,
            norm_first=False,
        )
        for name in ("dropout", "dropout1", "dropout2"):  # the layer's own dropouts
            setattr(self.block, name, FastDropout(dropout))
        # dropout of the attention weights (the MultiheadAttention's own ``dropout`` probability), with
        # masks from its own generator rather than torch's global one, so heads may run in parallel threads
        self.attention_dropout = FastDropout(self.block.self_attn.dropout)

    @classmethod
    def from_sizes(
        cls, hidden: int, heads: int, ff_mult: int, dropout: float, num_features: int | None = None
    ) -> TransformerAggregator:
        return cls(hidden, heads, ff_mult, dropout)

    def forward(self, h: torch.Tensor, mask: torch.Tensor, all_real: bool | None = None) -> torch.Tensor:
        all_real = bool(mask.all()) if all_real is None else all_real
        padding = None if all_real else ~mask
        b = self.block
        if not self.training or h.device.type != "cpu":
            return b(h, src_key_padding_mask=padding)
        a = self._self_attention(h, padding)
        h = b.norm1(h + b.dropout1(a))
        keep = b.dropout.keep_mask(h.shape[:-1] + (b.linear1.out_features,)) if b.dropout.threshold else None
        f = _ReluDropout.apply(b.linear1(h), keep)
        w2 = b.linear2.weight * b.dropout.scale if keep is not None else b.linear2.weight
        h = b.norm2(h + b.dropout2(nn.functional.linear(f, w2, b.linear2.bias)))
        return h

    def _self_attention(self, h: torch.Tensor, padding: torch.Tensor | None) -> torch.Tensor:
        """The block's MultiheadAttention over h (B, S, E), padded keys (B, S) bool or None -> (B, S, E), in
        training, from public ops: scores = q kᵀ / sqrt(E/heads) (padded keys -inf), softmax, the attention
        weights' dropout mask drawn by ``attention_dropout`` (a bitwise AND; its 1/(1-p) folded into the
        output projection's weight), @ v, output projection.

        The softmax accumulates and returns float32 (``dtype=``) and its weights go back to the compute dtype:
        on CPU a bfloat16 softmax is ~6x slower, and float32 weights would make both products float32.
        Queries, keys and values are cut from one (B, S, 3E) projection into contiguous (B, heads, S, E/heads)
        tensors: the module's own sequence-first split costs three zero-filled (3, S, B, E) gradients in backward.
        """
        mha = self.block.self_attn
        b, s, e = h.shape
        nh = mha.num_heads
        qkv = nn.functional.linear(h, mha.in_proj_weight, mha.in_proj_bias)
        q, k, v = qkv.view(b, s, 3, nh, e // nh).permute(2, 0, 3, 1, 4).contiguous().unbind(0)
        scores = (q * (1.0 / math.sqrt(e // nh))) @ k.transpose(-2, -1)  # (B, heads, S, S)
        if padding is not None:  # padded keys get no attention, as with MultiheadAttention's key_padding_mask
            scores = scores.masked_fill(padding.view(b, 1, 1, s), float("-inf"))
        weights = torch.softmax(scores, -1, dtype=torch.float32).to(h.dtype)
        drop = self.attention_dropout
        o = drop.drop_unscaled(weights) @ v  # (B, heads, S, E/heads)
        w_out = mha.out_proj.weight * drop.scale if drop.threshold else mha.out_proj.weight
        return nn.functional.linear(o.transpose(1, 2).reshape(b, s, e), w_out, mha.out_proj.bias)


class MeanAggregator(Aggregator):
    """No aggregation: relu of the projected clips (the head then averages them)."""

    def __init__(self, hidden: int):
        super().__init__()
        self.out_features = hidden

    def forward(self, h: torch.Tensor, mask: torch.Tensor, all_real: bool | None = None) -> torch.Tensor:
        return torch.relu(h)


class _GRU(Aggregator):
    """Unidirectional GRU over clips, then relu; padding only trails the real clips, so their outputs are
    unaffected."""

    def __init__(self, in_features: int, hidden: int):
        super().__init__()
        self.out_features = hidden
        self.gru = nn.GRU(in_features, hidden, batch_first=True)

    def forward(self, h: torch.Tensor, mask: torch.Tensor, all_real: bool | None = None) -> torch.Tensor:
        return torch.relu(self.gru(h)[0])


class _Conv(Aggregator):
    """1-D convolution over clips (kernel 3, zero padding 1), then relu; padded clips are zeroed first, like the
    convolution's own padding, so a short snippet gives what its real clips alone give."""

    def __init__(self, in_features: int, channels: int, kernel_size: int = 3):
        super().__init__()
        self.out_features = channels
        self.conv = nn.Conv1d(in_features, channels, kernel_size, padding=kernel_size // 2)

    def forward(self, h: torch.Tensor, mask: torch.Tensor, all_real: bool | None = None) -> torch.Tensor:
        all_real = bool(mask.all()) if all_real is None else all_real
        if not all_real:
            h = h * mask.unsqueeze(-1).to(h.dtype)
        return torch.relu(self.conv(h.transpose(1, 2)).transpose(1, 2))


class ProjectedGRUAggregator(_GRU):
    """``proj-gru``: a GRU of ``hidden`` units over the projected clips (divita's ``gru`` before the authors' head
    took the name)."""

    def __init__(self, hidden: int):
        super().__init__(hidden, hidden)


class ProjectedConvAggregator(_Conv):
    """``proj-conv``: Conv1d hidden -> hidden (kernel 3) over the projected clips (divita's ``conv`` before the
    authors' head took the name)."""

    def __init__(self, hidden: int, kernel_size: int = 3):
        super().__init__(hidden, hidden, kernel_size)


class SimpleAverageAggregator(Aggregator):
    """The authors' ``savg``: the BatchNorm-ed features (B, S, F) pass through; :meth:`pool` takes their mean over
    the real clips and then the relu, so the classifier sees F features."""

    projected = False

    def __init__(self, num_features: int):
        super().__init__()
        self.out_features = num_features

    @classmethod
    def from_sizes(
        cls, hidden: int, heads: int, ff_mult: int, dropout: float, num_features: int | None = None
    ) -> SimpleAverageAggregator:
        return cls(num_features or hidden)

    def forward(self, h: torch.Tensor, mask: torch.Tensor, all_real: bool | None = None) -> torch.Tensor:
        return h

    def pool(self, h: torch.Tensor, mask: torch.Tensor, all_real: bool | None = None) -> torch.Tensor:
        return torch.relu(masked_mean(h, mask, all_real))


class GRUAggregator(_GRU):
    """The authors' ``gru``: GRU(F -> 115 units, one layer) over the BatchNorm-ed features, relu, mean over clips."""

    projected = False

    def __init__(self, num_features: int, hidden: int = AUTHORS_GRU_HIDDEN):
        super().__init__(num_features, hidden)

    @classmethod
    def from_sizes(
        cls, hidden: int, heads: int, ff_mult: int, dropout: float, num_features: int | None = None
    ) -> GRUAggregator:
        return cls(num_features or hidden)


class ConvAggregator(_Conv):
    """The authors' ``conv``: Conv1d(F -> 128, kernel 3, padding 1) over the BatchNorm-ed features, relu, mean over
    clips."""

    projected = False

    def __init__(self, num_features: int, channels: int = AUTHORS_CONV_CHANNELS, kernel_size: int = 3):
        super().__init__(num_features, channels, kernel_size)

    @classmethod
    def from_sizes(
        cls, hidden: int, heads: int, ff_mult: int, dropout: float, num_features: int | None = None
    ) -> ConvAggregator:
        return cls(num_features or hidden)


def build_aggregator(
    name: str, hidden: int, heads: int, ff_mult: int, dropout: float, num_features: int | None = None
) -> Aggregator:
    """The registry's aggregator ``name`` for a head of these sizes (each class takes the ones it uses).

    ``num_features``: F, the input width of the authors' heads (``savg``, ``gru``, ``conv``), which see the
    BatchNorm-ed features rather than the projection; default ``hidden``."""
    return aggregator_class(name).from_sizes(hidden, heads, ff_mult, dropout, num_features)


def aggregator_class(name: str) -> type[Aggregator]:
    """The registry's class for ``name``; :class:`~divita.errors.DivitaError` listing the names otherwise."""
    return AGGREGATORS.get(name).aggregator_class()


def masked_batch_norm(norm: nn.BatchNorm1d, x: torch.Tensor, mask: torch.Tensor, all_real: bool) -> torch.Tensor:
    """``norm(x)`` over the real clips: x (B, S, F), mask (B, S) -> (B, S, F) in x's dtype.

    Training uses (and records in the running statistics) the batch statistics of the real clips, as
    BatchNorm1d does over all of them; evaluation uses the running statistics. Statistics and the affine map are
    computed in float32; no gradient flows into the statistics (the features need none). Padded clips' outputs
    are finite and meaningless."""
    b, s, f = x.shape
    if norm.training:
        with torch.no_grad():
            x2 = x.reshape(b * s, f).float()
            if not all_real:
                x2 = x2[mask.reshape(-1)]
            n = max(int(x2.shape[0]), 1)
            mean = x2.mean(0)
            var = x2.var(0, unbiased=False)
            momentum = norm.momentum if norm.momentum is not None else 1.0 / float(norm.num_batches_tracked + 1)
            norm.running_mean.lerp_(mean.to(norm.running_mean.dtype), momentum)
            norm.running_var.lerp_((var * (n / max(n - 1, 1))).to(norm.running_var.dtype), momentum)
            norm.num_batches_tracked.add_(1)
    else:
        mean, var = norm.running_mean.float(), norm.running_var.float()
    scale = norm.weight.float() * torch.rsqrt(var + norm.eps)  # (F,)
    shift = norm.bias.float() - mean * scale
    return x * scale.to(x.dtype) + shift.to(x.dtype)
