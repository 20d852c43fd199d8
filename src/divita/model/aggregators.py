"""Clip aggregation over a snippet's S clips, (B, S, H) -> (B, S, H), padding masked (the paper's ablation).

One class per name in the registry :data:`divita.model.names.AGGREGATOR_CLASSES`: ``tsfm`` (one
transformer block, the paper's Clip Aggregation Transformer, default), ``mean`` (plain mean of the
projected clips), ``gru``, ``conv`` (1-D convolution over clips). :func:`build_aggregator` builds one by name.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from divita.model.layers import FastDropout, _ReluDropout
from divita.model.names import AGGREGATOR_CLASSES, AGGREGATORS


class Aggregator(nn.Module):
    """``forward(h (B, S, H), mask (B, S) bool, all_real: bool | None) -> (B, S, H)``; padded clips' outputs
    are finite and meaningless (the head's mean skips them). ``from_sizes`` builds one from a head's sizes."""

    @classmethod
    def from_sizes(cls, hidden: int, heads: int, ff_mult: int, dropout: float) -> "Aggregator":
        return cls(hidden)


class TransformerAggregator(Aggregator):
    """One post-norm transformer encoder block over clips (torch's TransformerEncoderLayer), padding masked.

    Evaluation runs the layer's own forward. Training on CPU runs the same computation step by step from
    the layer's submodules (its MultiheadAttention's parameters, its norms and linears), so that the
    feed-forward's relu and dropout are one pass and every dropout mask, attention's included, comes from
    a :class:`FastDropout`'s own generator.
    """

    def __init__(self, hidden: int, heads: int, ff_mult: int, dropout: float):
        super().__init__()
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
    def from_sizes(cls, hidden: int, heads: int, ff_mult: int, dropout: float) -> "TransformerAggregator":
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

    @classmethod
    def from_sizes(cls, hidden: int, heads: int, ff_mult: int, dropout: float) -> "MeanAggregator":
        return cls()

    def forward(self, h: torch.Tensor, mask: torch.Tensor, all_real: bool | None = None) -> torch.Tensor:
        return torch.relu(h)


class GRUAggregator(Aggregator):
    """Unidirectional GRU over clips; padding only trails the real clips, so their outputs are unaffected."""

    def __init__(self, hidden: int):
        super().__init__()
        self.gru = nn.GRU(hidden, hidden, batch_first=True)

    def forward(self, h: torch.Tensor, mask: torch.Tensor, all_real: bool | None = None) -> torch.Tensor:
        return torch.relu(self.gru(h)[0])


class ConvAggregator(Aggregator):
    """1-D convolution (kernel 3) over clips; padded clips are zeroed first, like the convolution's own padding."""

    def __init__(self, hidden: int, kernel_size: int = 3):
        super().__init__()
        self.conv = nn.Conv1d(hidden, hidden, kernel_size, padding=kernel_size // 2)

    def forward(self, h: torch.Tensor, mask: torch.Tensor, all_real: bool | None = None) -> torch.Tensor:
        h = h * mask.unsqueeze(-1).to(h.dtype)
        return torch.relu(self.conv(h.transpose(1, 2)).transpose(1, 2))


def build_aggregator(name: str, hidden: int, heads: int, ff_mult: int, dropout: float) -> Aggregator:
    """The registry's aggregator ``name`` for a head of these sizes (each class takes the ones it uses)."""
    if name not in AGGREGATOR_CLASSES:
        raise ValueError(f"unknown clip aggregation {name!r}; choose from {', '.join(AGGREGATORS)}")
    return globals()[AGGREGATOR_CLASSES[name]].from_sizes(hidden, heads, ff_mult, dropout)
