"""The model of the ``paper`` training protocol: the authors' DIViTA heads, read from their published code
(github.com/richardtml/DIViTA at ``40973d6ceaf6ffbab2e9958f1ebc8fdd56758d9c``, ``model/divita.py`` and
``model/tsfm.py``), with the same ``forward(xs, masks)`` as :class:`divita.model.DIViTA` so that training,
evaluation and prediction run it unchanged.

Their ``tsfm`` head, for a snippet (B, S, F):
    BatchNorm1d over features (statistics over every clip, zero padding included)  ->  Linear F->hidden
    ->  their transformer block  ->  mean over all S clips  ->  Linear hidden->10
Their block (:class:`PaperTransformerBlock`): multi-head attention with bias-free query, key, value and output
maps and no dropout of the attention weights; ``x = dropout(norm1(attn(x) + x))``,
``x = dropout(norm2(ff(x) + x))`` with ``ff`` = Linear(hidden, ff_mult*hidden), relu, Linear; torch's default
initialisation throughout. Their model builds its modules in this order (late fusion: the image head, then
the video head), so a seed gives the initial weights their code gives under ``seed_everything`` of that seed.

Masks are ignored unless ``masking`` (the ablation ``paper+masking``): then BatchNorm statistics, attention
keys and the mean use the real clips only. Dropout is :class:`~divita.model.layers.FastDropout` (its own
generator, so late-fusion heads may train in parallel threads and stay repeatable; the same distribution as
their ``nn.Dropout``), made after every head's weights so that it does not shift their initialisation.

:func:`divita.training.protocol.build_model` builds the model of a protocol: divita's
:class:`~divita.model.DIViTA` for ``divita`` (and for ``paper+masking+layer``), else :class:`PaperDIViTA`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from divita.model.divita import DIViTA, ModelConfig, SnippetHead
from divita.model.layers import FastDropout, masked_mean, normalize_project


class PaperAttention(nn.Module):
    """The authors' multi-head self-attention: (B, S, H) -> (B, S, H), bias-free W_q, W_k, W_v, W_o (H -> H)."""

    def __init__(self, hidden: int, heads: int):
        super().__init__()
        self.heads = heads
        self.W_q = nn.Linear(hidden, hidden, bias=False)
        self.W_k = nn.Linear(hidden, hidden, bias=False)
        self.W_v = nn.Linear(hidden, hidden, bias=False)
        self.W_o = nn.Linear(hidden, hidden, bias=False)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, S, H); keep (B, S) bool: the keys attended to (None: all, as the authors' code runs)."""
        b, s, h = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:  # (B, S, H) -> (B, heads, S, H/heads)
            return t.view(b, s, self.heads, -1).transpose(1, 2)

        q, k, v = split(self.W_q(x)), split(self.W_k(x)), split(self.W_v(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # (B, heads, S, S)
        if keep is not None:
            scores = scores.masked_fill(~keep[:, None, None, :], -1e6)  # their masked_softmax's value
        out = torch.softmax(scores, dim=-1) @ v  # (B, heads, S, H/heads)
        return self.W_o(out.transpose(1, 2).reshape(b, s, h))


class PaperTransformerBlock(nn.Module):
    """The authors' post-norm transformer block over clips: (B, S, H) -> (B, S, H). Dropout after each norm."""

    def __init__(self, hidden: int, heads: int, ff_mult: int, dropout: float):
        super().__init__()
        self.attention = PaperAttention(hidden, heads)
        self.norm1 = nn.LayerNorm(hidden)
        self.dropout: nn.Module = nn.Dropout(dropout)  # PaperDIViTA swaps in a FastDropout once the weights exist
        self.ff = nn.Sequential(nn.Linear(hidden, ff_mult * hidden), nn.ReLU(), nn.Linear(ff_mult * hidden, hidden))
        self.norm2 = nn.LayerNorm(hidden)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        x = self.dropout(self.norm1(self.attention(x, keep) + x))
        return self.dropout(self.norm2(self.ff(x) + x))


class PaperHead(nn.Module):
    """The authors' ``tsfm`` head: (B, S, F) snippet features + (B, S) mask -> (B, num_classes) logits.

    The mask is used only when ``masking`` (the ablation); BatchNorm and the projection run as one fused step
    (:func:`~divita.model.layers.normalize_project`, equal to BatchNorm1d then Linear)."""

    def __init__(self, num_features: int, cfg: ModelConfig, masking: bool = False):
        super().__init__()
        self.masking = masking
        self.norm = nn.BatchNorm1d(num_features)
        self.project = nn.Linear(num_features, cfg.hidden)
        self.block = PaperTransformerBlock(cfg.hidden, cfg.heads, cfg.ff_mult, cfg.dropout)
        self.classify = nn.Linear(cfg.hidden, cfg.num_classes)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        all_real = not self.masking or bool(mask.all())
        x = x.to(self.classify.weight.dtype)
        h = normalize_project(self.norm, self.project, x, mask, all_real)  # (B, S, hidden)
        h = self.block(h, None if all_real else mask)
        return self.classify(masked_mean(h, mask, all_real))


class UnmaskedSnippetHead(SnippetHead):
    """divita's head run as the authors' code runs: every clip, padding included, counts as real."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return super().forward(x, torch.ones_like(mask))


class PaperDIViTA(DIViTA):
    """DIViTA of the ``paper`` protocol (and its ablations): the same ``forward(xs, masks)`` and late or early
    fusion as :class:`~divita.model.DIViTA`, with :class:`PaperHead` heads (``tsfm`` unless ``torch_layer``) or
    divita's heads that ignore the masks (the other aggregators, or ``torch_layer`` without ``masking``)."""

    def __init__(self, cfg: ModelConfig, masking: bool = False, torch_layer: bool = False):
        nn.Module.__init__(self)
        if len(cfg.modalities) != len(cfg.num_features):
            raise ValueError("one modality name per feature size is needed")
        self.cfg = cfg
        if cfg.aggregator == "tsfm" and not torch_layer:
            make = lambda f: PaperHead(f, cfg, masking)  # noqa: E731
        else:
            make = (lambda f: SnippetHead(f, cfg)) if masking else (lambda f: UnmaskedSnippetHead(f, cfg))
        if cfg.fusion == "early" and len(cfg.num_features) > 1:
            self.heads = nn.ModuleDict({"+".join(cfg.modalities): make(sum(cfg.num_features))})
        else:
            self.heads = nn.ModuleDict({m: make(f) for m, f in zip(cfg.modalities, cfg.num_features)})
        for head in self.heads.values():  # after every weight: the draws that seed these do not shift them
            if isinstance(head, PaperHead):
                head.block.dropout = FastDropout(cfg.dropout)
