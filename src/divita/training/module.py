"""The Lightning side of a run: :class:`SnippetModule` (model, loss, optimiser, manual steps) and
:class:`BestStates` (the best epochs' weights and the per-epoch history). Imports lightning, so
:func:`divita.training.loop.train_model` imports this module only when it trains."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from divita.evaluation.metrics import trapezoid_ap
from divita.features.snippets import mean_over_snippets
from divita.model import DIViTA, ModelConfig
from divita.training.compute import ComputeCopy, HeadRunner, fused_loss_backward


class SnippetModule(L.LightningModule):
    """DIViTA + BCE-with-logits, AdamW (amsgrad), ReduceLROnPlateau on validation loss.

    Optimisation is manual: forward and backward run on ``self.compute`` (a bfloat16 copy on CPUs
    with native bf16, else the model itself), heads in parallel threads on CPU (``HeadRunner``);
    the optimizer steps the float32 ``self.model``.
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
    ):
        super().__init__()
        self.automatic_optimization = False
        self.model = DIViTA(ModelConfig(**model_config))
        self.lr, self.weight_decay, self.scheduler_patience = lr, weight_decay, scheduler_patience
        self.num_val_trailers = num_val_trailers
        self.val_labels = val_labels  # (num_val_trailers, 10)
        self.compute_dtype = compute_dtype
        self.runner = HeadRunner(threads)
        self.compute: ComputeCopy | None = None
        self._val_outputs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self.epoch_train_losses: list[
            torch.Tensor
        ] = []  # this epoch's step losses (validation runs before Lightning aggregates them)

    def on_fit_start(self):
        # after Lightning has moved the model to its device; a low-precision copy only on CPU
        dtype = self.compute_dtype if self.device.type == "cpu" else torch.float32
        self.compute = ComputeCopy(self.model, dtype)

    def on_fit_end(self):
        self.runner.close()

    def on_train_epoch_start(self):
        self.compute.train(True)

    def on_validation_epoch_start(self):
        self.compute.train(False)

    def training_step(self, batch, batch_idx):
        opt = self.optimizers()
        opt.zero_grad(set_to_none=False)
        model = self.compute.model
        logits = self.runner.forward(model, batch.xs, batch.masks, grad=True)
        loss = fused_loss_backward(logits, batch.y, self.runner)
        with self.runner.all_threads():  # fused AdamW and the weight copies use both cores
            self.compute.grads_to_master()
            opt.step()
            self.compute.weights_from_master()
        self.epoch_train_losses.append(torch.stack([loss.float() * len(batch), torch.tensor(float(len(batch)))]))
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self.runner.forward(self.compute.model, batch.xs, batch.masks, grad=False)
        self._val_outputs.append((torch.stack(logits).float().mean(0), batch.y, batch.trailer))

    def on_validation_epoch_end(self):
        logits, y, trailer = (torch.cat(t) for t in zip(*self._val_outputs))
        self._val_outputs.clear()
        loss = F.binary_cross_entropy_with_logits(logits, y)  # over snippets, as in training
        probs = mean_over_snippets(torch.sigmoid(logits), trailer, self.num_val_trailers)
        uap = trapezoid_ap(self.val_labels.ravel(), probs.cpu().numpy().ravel())
        self.log("val_loss", loss)
        self.log("val_uap", float(uap))
        if not self.trainer.sanity_checking:
            self.lr_schedulers().step(loss)  # manual optimisation: the plateau scheduler is ours to step

    def configure_optimizers(self):
        # fused: one kernel for all parameters instead of a Python loop over them (CPU and CUDA)
        opt = torch.optim.AdamW(
            self.model.parameters(), lr=self.lr, weight_decay=self.weight_decay, amsgrad=True, fused=True
        )
        sch = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", patience=self.scheduler_patience)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sch}}  # stepped on val_loss in on_validation_epoch_end


class BestStates(L.Callback):
    """Keeps in memory the weights of the best epoch by validation loss and by validation μAP,
    and a per-epoch history, shown as one progress bar over epochs. ``on_epoch(history)`` after each
    validated epoch (the run directory's history.csv is written there)."""

    def __init__(
        self, max_epochs: int, progress: bool, desc: str, on_epoch: Callable[[list[dict]], object] | None = None
    ):
        self.best = {"loss": (float("inf"), -1, None), "uap": (-float("inf"), -1, None)}  # (value, epoch, state_dict)
        self.history: list[dict] = []
        self.on_epoch = on_epoch
        self.t0 = time.perf_counter()
        self.bar = None
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=max_epochs, desc=desc, unit="epoch", leave=False)

    def on_train_epoch_start(self, trainer, pl_module):
        self.t_train = time.perf_counter()

    def on_validation_epoch_start(self, trainer, pl_module):
        self.t_val = time.perf_counter()

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        now = time.perf_counter()
        m = trainer.callback_metrics
        val_loss, val_uap = float(m["val_loss"]), float(m["val_uap"])
        epoch = trainer.current_epoch
        lr = trainer.optimizers[0].param_groups[0]["lr"]
        losses = pl_module.epoch_train_losses  # (loss x batch size, batch size) per step
        total = torch.stack(losses).sum(0) if losses else None
        train_loss = float(total[0] / total[1]) if total is not None else float("nan")
        pl_module.epoch_train_losses = []
        self.history.append(
            {
                "epoch": epoch,
                "train_loss": train_loss,
                "val_loss": val_loss,
                "val_uap": val_uap,
                "lr": lr,
                "train_seconds": self.t_val - self.t_train,
                "val_seconds": now - self.t_val,
                "seconds": now - self.t0,
            }
        )
        state = None
        if val_loss < self.best["loss"][0]:
            state = copy.deepcopy(pl_module.model.state_dict())
            self.best["loss"] = (val_loss, epoch, state)
        if val_uap > self.best["uap"][0]:
            state = state or copy.deepcopy(pl_module.model.state_dict())
            self.best["uap"] = (val_uap, epoch, state)
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(val_loss=f"{val_loss:.4f}", val_uap=f"{100 * val_uap:.2f}", best=self.best["loss"][1])
        if self.on_epoch is not None:
            self.on_epoch(self.history)

    @property
    def epochs_done(self) -> int:
        return len(self.history)

    def on_fit_end(self, trainer, pl_module):
        if self.bar is not None:
            self.bar.close()

    def on_exception(self, trainer, pl_module, exception):
        self.on_fit_end(trainer, pl_module)


class TrainingInterrupted(Exception):
    """Raised by :class:`StopOnRequest` to end ``trainer.fit`` after a step; the run is written as it stands."""


class StopOnRequest(L.Callback):
    """Ends the fit after the current training step once ``stop.is_set()`` (a :class:`threading.Event`, or the
    CLI's request set by SIGINT/SIGTERM): raises :class:`TrainingInterrupted` after a training batch, after a
    finished validation (that epoch counts), and before an epoch starts. Register it after :class:`BestStates`."""

    def __init__(self, stop):
        self.stop = stop

    def _check(self) -> None:
        if self.stop.is_set():
            raise TrainingInterrupted()

    def on_train_epoch_start(self, trainer, pl_module):
        self._check()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._check()

    def on_validation_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self._check()
