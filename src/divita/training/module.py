"""DIViTA's training steps as a LightningModule, for those who train with a Lightning ``Trainer`` (loggers,
several devices, their own callbacks). `divita train` runs the same :class:`~divita.training.steps.SnippetSteps`
with :func:`divita.training.engine.fit`, which gives the same results without importing Lightning (about 2 s).

Imports lightning; nothing else in divita imports this module.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch

from divita.training.steps import SnippetSteps


class SnippetModule(L.LightningModule):
    """:class:`SnippetSteps` under Lightning, with manual optimisation. Logs ``val_loss`` and ``val_uap`` at the
    end of each validation epoch (monitor ``val_loss`` with Lightning's ``EarlyStopping``); the weights are
    ``self.model`` (a :class:`~divita.model.DIViTA`)."""

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
        self.steps = SnippetSteps(
            model_config,
            lr,
            weight_decay,
            scheduler_patience,
            num_val_trailers,
            val_labels,
            compute_dtype=compute_dtype,
            threads=threads,
        )
        self.model = self.steps.model
        self.train_losses: list[float] = []  # the mean training loss of each epoch, once validated

    def configure_optimizers(self):
        opt, sch = self.steps.make_optimizers()
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sch}}  # stepped on val_loss by the steps

    def on_fit_start(self):
        # after Lightning has moved the model to its device and built the optimizer
        self.steps.start((self.optimizers().optimizer, self.lr_schedulers()))

    def on_fit_end(self):
        self.steps.close()

    def on_train_epoch_start(self):
        self.steps.compute.train(True)

    def on_validation_epoch_start(self):
        self.steps.compute.train(False)

    def training_step(self, batch, batch_idx):
        return self.steps.train_step(batch)

    def validation_step(self, batch, batch_idx):
        self.steps.validation_step(batch)

    def on_validation_epoch_end(self):
        if self.trainer.sanity_checking:
            self.steps.validation_metrics()  # the batches seen; no scheduler step
            return
        val_loss, val_uap = self.steps.validation_end()
        self.train_losses.append(self.steps.take_train_loss())
        self.log("val_loss", val_loss)
        self.log("val_uap", val_uap)
