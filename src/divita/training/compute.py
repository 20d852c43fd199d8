"""How a training step runs fast on CPUs: a low-precision compute copy of the model, and heads in threads.

``ComputeCopy``: the model whose weights the optimizer updates (the *master*, float32) and a copy in
bfloat16 that runs forward and backward. BatchNorm modules are shared, not copied (their statistics and
affine parameters stay float32). After backward the copy's gradients are cast into the master's, the
optimizer steps the master, and the new weights are cast back into the copy: one copy per parameter each
way per step instead of autocast's ~150 casts of activations, and weight updates keep float32
precision (lr 1e-4 updates would vanish in bfloat16 weights).

``HeadRunner``: a late-fusion DIViTA's heads are independent until their logits are averaged, so each
head runs its forward and its backward in its own thread, one head per core, with torch's intra-op
parallelism off (on 2 cores, two threads per small op cost more in wake-ups than they gain). Every
dropout mask, attention's included, comes from its FastDropout's own generator, so a threaded step
equals the serial one bit for bit.

``retain_freed_memory``: a step frees and reallocates the same few-MB activations every time; glibc's
malloc would hand them back to the kernel and page-fault fresh zeroed pages in on the next step.
"""

from __future__ import annotations

import copy
import ctypes
import ctypes.util
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import torch
from torch import nn

from divita.model import DIViTA

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def retain_freed_memory(mmap_threshold: int = 32 << 20, trim_threshold: int = 1 << 30) -> bool:
    """Make glibc's malloc keep freed blocks below ``mmap_threshold`` bytes for reuse (instead of unmapping
    them) and keep up to ``trim_threshold`` bytes of free heap. With the defaults a CPU training step of
    one head took ~800 page faults and ~1 ms of kernel time; with these ~1 and next to none. Larger blocks
    (feature tables) are still returned when freed. Process-wide; False where the C library is not glibc."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(_M_TRIM_THRESHOLD, trim_threshold))


class ComputeCopy:
    """``master`` (float32, optimised) and ``model`` (``dtype``, run); for float32 they are one model."""

    def __init__(self, master: DIViTA, dtype: torch.dtype = torch.float32):
        self.master, self.dtype = master, dtype
        if dtype == torch.float32:
            self.model = master
            self._pairs: list[tuple[nn.Parameter, nn.Parameter]] = []
            return
        self.model = copy.deepcopy(master).to(dtype)
        for name, module in master.named_modules():  # share BatchNorm (float32 parameters and statistics)
            if isinstance(module, BATCH_NORMS):
                parent_name, _, attr = name.rpartition(".")
                setattr(self.model.get_submodule(parent_name), attr, module)
        master_params = dict(master.named_parameters())
        self._pairs = [(master_params[n], p) for n, p in self.model.named_parameters() if p is not master_params[n]]

    def grads_to_master(self) -> None:
        """Cast the copy's gradients into the master's (then clear the copy's)."""
        for m, c in self._pairs:  # one copy each: as fast as a single foreach copy at these ~30 parameters
            if c.grad is not None:
                if m.grad is None:
                    m.grad = c.grad.to(m.dtype)
                else:
                    m.grad.copy_(c.grad)
                c.grad = None
            elif m.grad is None:
                m.grad = torch.zeros_like(m)
            else:
                m.grad.zero_()

    @torch.no_grad()
    def weights_from_master(self) -> None:
        for m, c in self._pairs:
            c.copy_(m)

    def train(self, mode: bool = True) -> None:
        self.model.train(mode)


class HeadRunner:
    """Runs a DIViTA's per-modality heads (late fusion) in parallel threads, or in line when that can't help.

    ``forward(model, xs, masks, grad)`` -> per-head logits [(B, 10)]; ``backward(logits, grads)``.
    """

    def __init__(self, threads: int):
        self.threads = threads
        self._pool: ThreadPoolExecutor | None = None

    def parallel(self, num_heads: int, device: torch.device) -> bool:
        """Whether ``num_heads`` heads on ``device`` run in threads."""
        return self.threads > 1 and num_heads > 1 and device.type == "cpu"

    @property
    def pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="divita-head")
        return self._pool

    def forward(
        self, model: DIViTA, xs: list[torch.Tensor], masks: list[torch.Tensor], grad: bool
    ) -> list[torch.Tensor]:
        heads = list(model.heads.values())
        if len(heads) == 1 and len(xs) > 1:  # early fusion: one head over concatenated features
            return [model(xs, masks)]
        if not self.parallel(len(heads), xs[0].device):
            return [h(x, m) for h, x, m in zip(heads, xs, masks)]

        def run(i: int) -> torch.Tensor:
            with torch.enable_grad() if grad else torch.inference_mode():
                return heads[i](xs[i], masks[i])

        return list(self.pool.map(run, range(len(heads))))

    def backward(self, logits: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        if not self.parallel(len(logits), logits[0].device):
            torch.autograd.backward(logits, grads)
            return
        list(self.pool.map(lambda lg: torch.autograd.backward(lg[0], lg[1]), zip(logits, grads)))

    @contextmanager
    def all_threads(self):
        """Between parallel sections (optimizer step, weight copies): torch's intra-op threads up to the
        runner's total, then back to one per head thread. The setting is process-wide, so it is only
        changed while no head runs."""
        before = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def fused_loss_backward(logits: list[torch.Tensor], y: torch.Tensor, runner: HeadRunner) -> torch.Tensor:
    """BCE-with-logits of the mean of the heads' logits; backpropagates through each head (in parallel).

    Returns the loss (float32 scalar, detached).
    """
    leaves = [lg.detach().float().requires_grad_() for lg in logits]
    loss = nn.functional.binary_cross_entropy_with_logits(torch.stack(leaves).mean(0), y)
    loss.backward()
    runner.backward(logits, [leaf.grad.to(lg.dtype) for leaf, lg in zip(leaves, logits)])
    return loss.detach()
