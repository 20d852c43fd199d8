"""What one training step and one validation pass of DIViTA do, in plain PyTorch: :class:`SnippetSteps`.

:func:`divita.training.engine.fit` runs them epoch after epoch; :class:`divita.training.module.SnippetModule`
runs the same steps under a Lightning ``Trainer`` for those who train with Lightning.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from divita.features.snippets import SnippetBatch, mean_over_snippets
from divita.model import DIViTA, ModelConfig
from divita.training.compute import ComputeCopy, HeadRunner, fused_loss_backward
from divita.training.protocol import build_model, parse_protocol


class SnippetSteps:
    """DIViTA + BCE-with-logits, AdamW (amsgrad), ReduceLROnPlateau on validation loss.

    Forward and backward run on ``self.compute`` (a bfloat16 copy on CPUs with native bf16, else the model
    itself), heads in parallel threads on CPU (``HeadRunner``); the optimizer steps the float32 ``self.model``.
    Call :meth:`start` once the model is on its device, then :meth:`train_step` per batch and
    :meth:`validation_step` per validation batch followed by :meth:`validation_end` once per epoch.

    ``protocol`` (:mod:`divita.training.protocol`): the model built, whether AdamW is fused, and the validation
    loss: over all validation snippets (divita), or the mean of the losses of consecutive batches of
    ``val_batch_trailers`` trailers (the authors' validation batches; ``paper``).
    """

    def __init__(
        self,
        model_config: dict,
        lr: float,
        weight_decay: float,
        scheduler_patience: int,
        num_val_trailers: int,
        val_labels: np.ndarray,
        compute_dtype: torch.dtype = torch.float32,
        threads: int = 1,
        protocol: str = "divita",
        val_batch_trailers: int = 32,
    ):
        self.protocol = parse_protocol(protocol)
        self.val_batch_trailers = val_batch_trailers
        self.model: DIViTA = build_model(ModelConfig(**model_config), protocol)
        self.lr, self.weight_decay, self.scheduler_patience = lr, weight_decay, scheduler_patience
        self.num_val_trailers = num_val_trailers
        self.val_labels = val_labels  # (num_val_trailers, 10)
        self.compute_dtype = compute_dtype
        self.runner = HeadRunner(threads)
        self.compute: ComputeCopy | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau | None = None
        self._val_outputs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self.epoch_train_losses: list[torch.Tensor] = []  # this epoch's (loss x batch size, batch size) per step

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def make_optimizers(self) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.ReduceLROnPlateau]:
        """AdamW (fused: one kernel for all parameters, CPU and CUDA; torch's default for ``paper``) and its
        plateau scheduler."""
        fused = True if self.protocol.fused_adamw else None
        opt = torch.optim.AdamW(
            self.model.parameters(), lr=self.lr, weight_decay=self.weight_decay, amsgrad=True, fused=fused
        )
        return opt, torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", patience=self.scheduler_patience)

    def start(self, optimizers=None) -> None:
        """Before the first step, with the model on its device: the optimizer and scheduler (``optimizers``, or
        new ones), and the compute copy (a low-precision one only on CPU)."""
        self.optimizer, self.scheduler = optimizers or self.make_optimizers()
        dtype = self.compute_dtype if self.device.type == "cpu" else torch.float32
        self.compute = ComputeCopy(self.model, dtype)

    def train(self, mode: bool = True) -> None:
        """Training (dropout on, BatchNorm batch statistics) or evaluation mode, master and compute copy."""
        self.model.train(mode)
        self.compute.train(mode)

    def train_step(self, batch: SnippetBatch) -> torch.Tensor:
        """One optimisation step on ``batch`` (xs: [(B, num_clips, F_m)], y: (B, 10)); the loss (scalar)."""
        opt = self.optimizer
        opt.zero_grad(set_to_none=False)
        logits = self.runner.forward(self.compute.model, batch.xs, batch.masks, grad=True)
        loss = fused_loss_backward(logits, batch.y, self.runner)
        with self.runner.all_threads():  # fused AdamW and the weight copies use both cores
            self.compute.grads_to_master()
            opt.step()
            self.compute.weights_from_master()
        self.epoch_train_losses.append(torch.stack([loss.float() * len(batch), torch.tensor(float(len(batch)))]))
        return loss

    def take_train_loss(self) -> float:
        """The mean training loss of the steps since the last call (nan without any)."""
        losses, self.epoch_train_losses = self.epoch_train_losses, []
        if not losses:
            return float("nan")
        total = torch.stack(losses).sum(0)
        return float(total[0] / total[1])

    def validation_step(self, batch: SnippetBatch) -> None:
        logits = self.runner.forward(self.compute.model, batch.xs, batch.masks, grad=False)
        self._val_outputs.append((torch.stack(logits).float().mean(0), batch.y, batch.trailer))

    def validation_metrics(self) -> tuple[torch.Tensor, float]:
        """(validation loss (see the class docstring); μAP of the trailers' mean probabilities) of the
        batches seen since the last call."""
        from divita.metrics import trapezoid_ap

        logits, y, trailer = (torch.cat(t) for t in zip(*self._val_outputs))
        self._val_outputs.clear()
        if self.protocol.snippet_loss:
            loss = F.binary_cross_entropy_with_logits(logits, y)
        else:  # the mean of each validation batch's loss, batches of val_batch_trailers trailers in order
            per_snippet = F.binary_cross_entropy_with_logits(logits, y, reduction="none").mean(1).double()
            group = torch.div(trailer, self.val_batch_trailers, rounding_mode="floor")
            counts = torch.bincount(group)
            sums = torch.zeros(len(counts), dtype=torch.float64, device=logits.device).index_add_(0, group, per_snippet)
            loss = (sums[counts > 0] / counts[counts > 0]).mean().float()
        probs = mean_over_snippets(torch.sigmoid(logits), trailer, self.num_val_trailers)
        return loss, trapezoid_ap(self.val_labels.ravel(), probs.cpu().numpy().ravel())

    def validation_end(self) -> tuple[float, float]:
        """The epoch's (validation loss, validation μAP), as float32 values, after stepping the plateau scheduler
        on the loss."""
        loss, uap = self.validation_metrics()
        self.scheduler.step(loss)
        return float(loss.float()), float(np.float32(uap))

    @property
    def lr_now(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def close(self) -> None:
        self.runner.close()
