"""The DIViTA classifier: one :class:`SnippetHead` per modality, fused late (or one head over concatenated features)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from divita.genres import NUM_GENRES
from divita.model.aggregators import aggregator_class, build_aggregator, masked_batch_norm
from divita.model.layers import normalize_project
from divita.model.registry import FUSIONS


@dataclass
class ModelConfig:
    num_features: list[int]  # per modality, e.g. [1024, 1024] for image + video
    modalities: list[str] = field(default_factory=lambda: ["image"])  # names, same order as num_features
    fusion: str = "late"  # late: mean of per-modality logits; early: one head over concatenated features
    aggregator: str = "tsfm"
    hidden: int = 128
    heads: int = 4
    ff_mult: int = 6
    dropout: float = 0.25
    num_classes: int = NUM_GENRES

    def to_dict(self) -> dict:
        return asdict(self)


class SnippetHead(nn.Module):
    """(B, S, F) snippet features + (B, S) mask -> (B, num_classes) logits.

    BatchNorm over real clips, then Linear(F -> hidden) when the aggregator is a projected one (``project`` is
    None for the authors' heads ``savg``, ``gru``, ``conv``), the aggregator, its pool over real clips, Linear.
    """

    def __init__(self, num_features: int, cfg: ModelConfig):
        super().__init__()
        self.norm = nn.BatchNorm1d(num_features)  # applied by normalize_project, over real clips only
        # the projection is made before the aggregator, so that a seed gives the same initial weights as always
        projected = aggregator_class(cfg.aggregator).projected
        self.project = nn.Linear(num_features, cfg.hidden) if projected else None
        self.aggregate = build_aggregator(cfg.aggregator, cfg.hidden, cfg.heads, cfg.ff_mult, cfg.dropout, num_features)
        self.classify = nn.Linear(self.aggregate.out_features, cfg.num_classes)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        all_real = bool(mask.all())  # most training windows: no masking work at all
        x = x.to(self.classify.weight.dtype)
        if self.project is not None:
            h = normalize_project(self.norm, self.project, x, mask, all_real)
        else:
            h = masked_batch_norm(self.norm, x, mask, all_real)
        h = self.aggregate(h, mask, all_real)
        return self.classify(self.aggregate.pool(h, mask, all_real))


class DIViTA(nn.Module):
    """Dual Image and Video Transformer Architecture: ``forward(xs, masks) -> (B, num_classes)`` logits.

    xs[m]: (B, S, F_m) per modality, masks[m]: (B, S) bool.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {cfg.fusion!r}; choose from {', '.join(FUSIONS)}")
        if len(cfg.modalities) != len(cfg.num_features):
            raise ValueError("one modality name per feature size is needed")
        self.cfg = cfg
        if cfg.fusion == "early" and len(cfg.num_features) > 1:
            self.heads = nn.ModuleDict({"+".join(cfg.modalities): SnippetHead(sum(cfg.num_features), cfg)})
        else:
            self.heads = nn.ModuleDict({m: SnippetHead(f, cfg) for m, f in zip(cfg.modalities, cfg.num_features)})

    def forward(self, xs: list[torch.Tensor], masks: list[torch.Tensor]) -> torch.Tensor:
        if len(self.heads) == 1 and len(xs) > 1:  # early fusion: concatenate features clip by clip
            mask = torch.stack(masks).all(0)
            return next(iter(self.heads.values()))(torch.cat(xs, dim=-1), mask)
        logits = [head(x, m) for head, x, m in zip(self.heads.values(), xs, masks)]
        return torch.stack(logits).mean(0)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
