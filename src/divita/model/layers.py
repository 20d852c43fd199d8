"""The fused steps a DIViTA head runs for CPU speed, each equal to torch's own modules (tested).

``normalize_project``: BatchNorm1d then Linear as one matmul (BatchNorm folded into the projection).
``FastDropout``: dropout with masks from the module's own generator, applied as a bitwise AND.
``_ReluDropout``: the feed-forward's relu and dropout in one pass, with one mask for forward and backward.
``masked_mean``: the mean over a snippet's real clips.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


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


def normalize_project(
    norm: nn.BatchNorm1d, project: nn.Linear, x: torch.Tensor, mask: torch.Tensor, all_real: bool
) -> torch.Tensor:
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
        var = (torch.mv(x2.square().t(), ones).float() / n - mean * mean).clamp_min(
            0.0
        )  # square(): 2x faster than x2 * x2
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
