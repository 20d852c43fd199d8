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

The modules are torch's (BatchNorm1d, Linear, TransformerEncoderLayer with its MultiheadAttention);
what runs is arranged for CPU speed, with tests that it equals the modules' own forward and gradients:
BatchNorm is folded into the projection (one matmul forward, one backward, no normalised copy of the
inputs), and in training the encoder layer's steps run from its submodules so that dropout is a bitwise
AND with masks from per-module generators, the feed-forward's relu and dropout are one pass, and
attention (the MultiheadAttention's parameters through public matmul and softmax ops) drops its
weights with a mask from its own generator too.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
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


def masked_mean(h: torch.Tensor, mask: torch.Tensor, all_real: bool | None = None) -> torch.Tensor:
    """h: (B, S, H), mask: (B, S) bool -> (B, H) mean over the real clips."""
    if all_real is None:
        all_real = bool(mask.all())
    if all_real:
        return h.mean(1)
    w = mask.to(h.dtype).unsqueeze(-1)
    return (h * w).sum(1) / w.sum(1).clamp_min(1.0)


class _NormProject(torch.autograd.Function):
    """y = Linear(BatchNorm(x)) for (N, F) inputs that need no gradient, given the statistics to use.

    BatchNorm's affine map is folded into the projection, so the normalised (N, F) tensor is never
    formed: forward is one (N, F) x (F, H) matmul; backward is one (H, N) x (N, F) matmul (``dy^T x``),
    from which the gradients of the projection and of BatchNorm's weight and bias all follow. The
    statistics come from the inputs alone, so no gradient flows through them (as in BatchNorm itself).
    """

    @staticmethod
    def forward(ctx, x, row_mask, gamma, beta, weight, bias, mean, rstd):
        wf = weight.float()
        scale = gamma.float() * rstd  # (F,)
        shift = beta.float() - mean * scale  # (F,)
        w_eff = (wf * scale).to(x.dtype)  # (H, F)
        b_eff = (wf @ shift + bias.float()).to(x.dtype)  # (H,)
        ctx.save_for_backward(x, row_mask, gamma, beta, wf, mean, rstd)
        ctx.dtypes = (gamma.dtype, beta.dtype, weight.dtype, bias.dtype)
        return torch.addmm(b_eff, x, w_eff.t())

    @staticmethod
    def backward(ctx, dy):
        x, row_mask, gamma, beta, wf, mean, rstd = ctx.saved_tensors
        if row_mask is not None:  # padded clips contribute nothing
            dy = dy * row_mask[:, None].to(dy.dtype)
        dy = dy.to(x.dtype)
        db = dy.float().sum(0)  # (H,) gradient of the projection's bias
        g = ((dy.t() @ x).float() - db[:, None] * mean) * rstd  # (H, F) = dy^T x_hat
        dweight = g * gamma.float() + db[:, None] * beta.float()
        dgamma = (wf * g).sum(0)
        dbeta = db @ wf
        tg, tb, tw, tbias = ctx.dtypes
        return None, None, dgamma.to(tg), dbeta.to(tb), dweight.to(tw), db.to(tbias), None, None


def normalize_project(norm: nn.BatchNorm1d, project: nn.Linear, x: torch.Tensor, mask: torch.Tensor, all_real: bool) -> torch.Tensor:
    """``project(norm(x))`` over the real clips: x (B, S, F), mask (B, S) -> (B, S, H).

    Training uses (and records in the running statistics) the batch statistics of the real clips, as
    BatchNorm1d does; evaluation uses the running statistics. Padded clips' outputs are finite and
    meaningless (every later step masks them). Works in the dtype of x (float32 or bfloat16); the
    statistics and the folded parameters are computed in float32.
    """
    b, s, f = x.shape
    x2 = x.reshape(b * s, f)
    row_mask = None if all_real else mask.reshape(-1)
    if norm.training:
        if row_mask is not None:
            x2 = x2 * row_mask[:, None].to(x2.dtype)  # statistics of real clips only
        n = b * s if all_real else int(row_mask.sum())
        ones = torch.ones(x2.shape[0], dtype=x2.dtype, device=x2.device)
        # two matrix-vector products: a column reduction of a (N, F) tensor is ~10x slower on CPU
        mean = torch.mv(x2.t(), ones).float() / n
        var = (torch.mv(x2.square().t(), ones).float() / n - mean * mean).clamp_min(0.0)  # square(): 2x faster than x2 * x2
        with torch.no_grad():
            momentum = norm.momentum if norm.momentum is not None else 1.0 / float(norm.num_batches_tracked + 1)
            norm.running_mean.lerp_(mean.to(norm.running_mean.dtype), momentum)
            norm.running_var.lerp_((var * (n / max(n - 1, 1))).to(norm.running_var.dtype), momentum)
            norm.num_batches_tracked.add_(1)
    else:
        mean, var = norm.running_mean.float(), norm.running_var.float()
    rstd = torch.rsqrt(var + norm.eps)
    y = _NormProject.apply(x2, row_mask, norm.weight, norm.bias, project.weight, project.bias, mean, rstd)
    return y.view(b, s, -1)


_MASK_INT = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def _bits_from_bool(keep: np.ndarray, itemsize: int) -> torch.Tensor:
    """numpy bool -> integer mask of ``itemsize`` bytes per entry: -1 (all bits set) where True, else 0."""
    return torch.from_numpy(np.negative(keep.view(np.int8), dtype=np.dtype(f"i{itemsize}")))


def _apply_bitmask(x: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """x with the entries whose mask is 0 zeroed: one bitwise AND of x's bit patterns with an all-ones (-1)
    or all-zeros integer mask of the same element size (a boolean masked_fill is ~10x slower on CPU)."""
    return (x.view(bits.dtype) & bits).view(x.dtype)


class _MaskScale(torch.autograd.Function):
    """y = (x masked by an integer bit mask) * scale; the same in backward."""

    @staticmethod
    def forward(ctx, x, bits, scale):
        ctx.save_for_backward(bits)
        ctx.scale = scale
        y = _apply_bitmask(x.contiguous(), bits)
        return y * scale if scale != 1.0 else y

    @staticmethod
    def backward(ctx, dy):
        (bits,) = ctx.saved_tensors
        dx = _apply_bitmask(dy.contiguous(), bits)
        return (dx * ctx.scale if ctx.scale != 1.0 else dx), None, None


class FastDropout(nn.Module):
    """Inverted dropout whose CPU mask comes from raw 64-bit draws of the module's own generator
    (8 mask bytes per draw, compared in numpy) and is applied as a bitwise AND: ~10x faster than
    ``bernoulli_`` + multiply on CPU, where dropout otherwise dominates a training step. Each module has
    its own generator, seeded from torch's global one when the module is built, so runs are repeatable
    and heads may run in parallel threads. The drop probability is rounded to a multiple of 1/256
    (0.25 is exact). On GPUs it is ``F.dropout``."""

    def __init__(self, p: float):
        super().__init__()
        self.threshold = int(round(p * 256))
        self.p = self.threshold / 256
        self.scale = 1.0 / (1.0 - self.p) if self.p < 1 else 0.0
        self.rng = np.random.Generator(np.random.PCG64(int(torch.randint(0, 2**62, (1,)).item())))

    def keep_mask(self, shape) -> np.ndarray:
        """(shape) numpy bool, True = kept."""
        n = math.prod(shape)
        raw = self.rng.bit_generator.random_raw(-(-n // 8))
        return (raw.view(np.uint8)[:n] >= self.threshold).reshape(shape)

    def keep_bits(self, shape, itemsize: int) -> torch.Tensor:
        """(shape) integer mask, -1 (all bits set) = kept, 0 = dropped, of the given element size."""
        return _bits_from_bool(self.keep_mask(shape), itemsize)

    def drop_unscaled(self, x: torch.Tensor) -> torch.Tensor:
        """x with this module's next mask applied but not rescaled (the caller folds ``scale`` into the
        next linear map); x itself when dropout is off. CPU only; differentiable."""
        if not self.training or self.threshold == 0:
            return x
        return _MaskScale.apply(x, self.keep_bits(x.shape, x.element_size()), 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.threshold == 0:
            return x
        if x.device.type != "cpu":
            return nn.functional.dropout(x, self.p, True)
        return _MaskScale.apply(x, self.keep_bits(x.shape, x.element_size()), self.scale)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class _ReluDropout(torch.autograd.Function):
    """relu(z) with dropped entries zeroed, unscaled (the caller folds 1/(1-p) into the next weights).
    One mask (positive and kept) serves forward and backward; z (N, D) float, keep (N, D) numpy bool."""

    @staticmethod
    def forward(ctx, z, keep):
        z = z.contiguous()
        # a float's sign bit is its integer view's: z > 0 <=> bits > 0 (for every IEEE format and bfloat16)
        positive = z.view(_MASK_INT[z.element_size()]).numpy() > 0
        if keep is not None:
            np.logical_and(positive, keep, out=positive)
        bits = _bits_from_bool(positive, z.element_size())
        ctx.save_for_backward(bits)
        return _apply_bitmask(z, bits)

    @staticmethod
    def backward(ctx, dy):
        (bits,) = ctx.saved_tensors
        return _apply_bitmask(dy.contiguous(), bits), None


class TransformerAggregator(nn.Module):
    """One post-norm transformer encoder block over clips (torch's TransformerEncoderLayer), padding masked.

    Evaluation runs the layer's own forward. Training on CPU runs the same computation step by step from
    the layer's submodules (its MultiheadAttention's parameters, its norms and linears), so that the feed-forward's relu and dropout are one pass and every dropout mask,
    attention's included, comes from a :class:`FastDropout`'s own generator.
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


class MeanAggregator(nn.Module):
    def forward(self, h: torch.Tensor, mask: torch.Tensor, all_real: bool | None = None) -> torch.Tensor:
        return torch.relu(h)


class GRUAggregator(nn.Module):
    """Unidirectional GRU over clips; padding only trails the real clips, so their outputs are unaffected."""

    def __init__(self, hidden: int):
        super().__init__()
        self.gru = nn.GRU(hidden, hidden, batch_first=True)

    def forward(self, h: torch.Tensor, mask: torch.Tensor, all_real: bool | None = None) -> torch.Tensor:
        return torch.relu(self.gru(h)[0])


class ConvAggregator(nn.Module):
    """1-D convolution (kernel 3) over clips; padded clips are zeroed first, like the convolution's own padding."""

    def __init__(self, hidden: int, kernel_size: int = 3):
        super().__init__()
        self.conv = nn.Conv1d(hidden, hidden, kernel_size, padding=kernel_size // 2)

    def forward(self, h: torch.Tensor, mask: torch.Tensor, all_real: bool | None = None) -> torch.Tensor:
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
        self.norm = nn.BatchNorm1d(num_features)  # applied by normalize_project, over real clips only
        self.project = nn.Linear(num_features, cfg.hidden)
        self.aggregate = build_aggregator(cfg.aggregator, cfg.hidden, cfg.heads, cfg.ff_mult, cfg.dropout)
        self.classify = nn.Linear(cfg.hidden, cfg.num_classes)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        all_real = bool(mask.all())  # most training windows: no masking work at all
        h = normalize_project(self.norm, self.project, x.to(self.project.weight.dtype), mask, all_real)
        h = self.aggregate(h, mask, all_real)
        return self.classify(masked_mean(h, mask, all_real))


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
