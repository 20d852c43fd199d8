"""DIViTA snippet classifier: one head per modality, fused late (or one head over concatenated features).

Head (per modality), for a snippet of S clips with F features each:
    BatchNorm1d over features  ->  Linear F->hidden  ->  clip aggregation over the S clips
    ->  mean over (real) clips  ->  Linear hidden->10 genre logits

Clip aggregation (the paper's ablation): ``tsfm`` (one transformer block, the Clip Aggregation
Transformer, default), ``mean`` (plain mean), ``gru``, ``conv`` (1-D convolution over clips).

Padding (windows of trailers shorter than S clips, and the last window of every trailer) is masked
everywhere: BatchNorm statistics use real clips only, attention ignores padded keys, and the mean is over
real clips. The authors' code does not mask: zero-padded clips go through BatchNorm (becoming non-zero),
are attended to, and are averaged in; and training on a trailer shorter than S clips fails there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from divita.genres import NUM_GENRES

AGGREGATORS = ("tsfm", "mean", "gru", "conv")
FUSIONS = ("late", "early")


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


def masked_mean(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """h: (B, S, H), mask: (B, S) bool -> (B, H) mean over the real clips."""
    w = mask.to(h.dtype).unsqueeze(-1)
    return (h * w).sum(1) / w.sum(1).clamp_min(1.0)


class MaskedBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d over the feature axis of (B, S, F) that uses (and normalises) only the real clips."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if bool(mask.all()):  # most training windows: skip the gather/scatter
            return super().forward(x.reshape(-1, x.shape[-1])).reshape(x.shape)
        out = torch.zeros(x.shape, dtype=torch.result_type(x, self.weight), device=x.device)
        out[mask] = super().forward(x[mask]).to(out.dtype)
        return out


class FastDropout(nn.Module):
    """Inverted dropout whose CPU mask is drawn as random bytes, 7 from each 64-bit draw of torch's
    generator: ~8x faster than ``bernoulli_`` on CPU, where dropout otherwise dominates a training step.
    The drop probability is rounded to a multiple of 1/256 (0.25 is exact). On GPUs it is ``F.dropout``."""

    def __init__(self, p: float):
        super().__init__()
        self.threshold = int(round(p * 256))
        self.p = self.threshold / 256

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.threshold == 0:
            return x
        if x.device.type != "cpu":
            return nn.functional.dropout(x, self.p, True)
        n = x.numel()
        draws = -(-n // 7)
        random_bytes = torch.empty(draws, dtype=torch.int64).random_().view(torch.uint8).view(draws, 8)[:, :7]
        keep = random_bytes.reshape(-1)[:n].view(x.shape) >= self.threshold
        return x * keep.to(x.dtype) * (1.0 / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"


class TransformerAggregator(nn.Module):
    """One post-norm transformer encoder block over clips (torch's TransformerEncoderLayer), padding masked."""

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
        for name in ("dropout", "dropout1", "dropout2"):  # the layer's own dropouts, not attention's
            setattr(self.block, name, FastDropout(dropout))

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.block(h, src_key_padding_mask=~mask)


class MeanAggregator(nn.Module):
    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.relu(h)


class GRUAggregator(nn.Module):
    """Unidirectional GRU over clips; padding only trails the real clips, so their outputs are unaffected."""

    def __init__(self, hidden: int):
        super().__init__()
        self.gru = nn.GRU(hidden, hidden, batch_first=True)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.gru(h)[0])


class ConvAggregator(nn.Module):
    """1-D convolution (kernel 3) over clips; padded clips are zeroed first, like the convolution's own padding."""

    def __init__(self, hidden: int, kernel_size: int = 3):
        super().__init__()
        self.conv = nn.Conv1d(hidden, hidden, kernel_size, padding=kernel_size // 2)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = h * mask.unsqueeze(-1).to(h.dtype)
        return torch.relu(self.conv(h.transpose(1, 2)).transpose(1, 2))


def build_aggregator(name: str, hidden: int, heads: int, ff_mult: int, dropout: float) -> nn.Module:
    if name == "tsfm":
        return TransformerAggregator(hidden, heads, ff_mult, dropout)
    if name == "mean":
        return MeanAggregator()
    if name == "gru":
        return GRUAggregator(hidden)
    if name == "conv":
        return ConvAggregator(hidden)
    raise ValueError(f"unknown clip aggregation {name!r}; choose from {', '.join(AGGREGATORS)}")


class SnippetHead(nn.Module):
    """(B, S, F) snippet features + (B, S) mask -> (B, num_classes) logits."""

    def __init__(self, num_features: int, cfg: ModelConfig):
        super().__init__()
        self.norm = MaskedBatchNorm1d(num_features)
        self.project = nn.Linear(num_features, cfg.hidden)
        self.aggregate = build_aggregator(cfg.aggregator, cfg.hidden, cfg.heads, cfg.ff_mult, cfg.dropout)
        self.classify = nn.Linear(cfg.hidden, cfg.num_classes)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.project(self.norm(x, mask))
        h = self.aggregate(h, mask)
        return self.classify(masked_mean(h, mask))


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
