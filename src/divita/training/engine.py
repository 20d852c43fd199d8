"""The epoch loop of a training run, in plain PyTorch: :func:`fit` and its callbacks.

Each epoch trains on every batch of the epoch, validates (under ``torch.inference_mode``), steps the plateau
scheduler, lets the callbacks see the epoch, then stops early when the validation loss has not improved for
``stop_patience`` epochs (or is not finite). This is the loop Lightning's ``Trainer`` ran for divita with manual
optimisation, an ``EarlyStopping`` on ``val_loss`` and no logger, step for step and with the same results
(tested against a Lightning ``Trainer`` running :class:`divita.training.module.SnippetModule`); importing
Lightning took about 2 s (it imports torchmetrics, torchvision and torch._dynamo), longer than a cached run
needs to reach its first step.

Callbacks: :class:`BestStates` (the best epochs' weights, the history, the progress bar) and
:class:`StopOnRequest` (ends the fit after the current step once a stop is requested).
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from divita.errors import DivitaError
from divita.training.steps import SnippetSteps


@dataclass
class EpochState:
    """What callbacks see: the running epoch (0-based), its metrics once validated, and the steps' objects."""

    steps: SnippetSteps
    epoch: int = 0
    train_loss: float = math.nan
    val_loss: float = math.nan
    val_uap: float = math.nan
    lr: float = math.nan
    should_stop: bool = False


class Callback:
    """Hooks of :func:`fit`, each given the :class:`EpochState`; all optional."""

    def on_train_epoch_start(self, state: EpochState) -> None: ...
    def on_train_batch_end(self, state: EpochState) -> None: ...
    def on_validation_epoch_start(self, state: EpochState) -> None: ...
    def on_validation_end(self, state: EpochState) -> None: ...
    def on_fit_end(self, state: EpochState) -> None: ...


class BestStates(Callback):
    """Keeps in memory the weights of the best epoch by validation loss and by validation μAP, and a per-epoch
    history, shown as one progress bar over epochs. ``on_epoch(history)`` after each validated epoch (the run
    directory's history.csv is written there). ``best[selection] = (value, epoch, state_dict)``."""

    def __init__(
        self, max_epochs: int, progress: bool, desc: str, on_epoch: Callable[[list[dict]], object] | None = None
    ):
        self.best = {"loss": (float("inf"), -1, None), "uap": (-float("inf"), -1, None)}
        self.history: list[dict] = []
        self.on_epoch = on_epoch
        self.t0 = time.perf_counter()
        self.t_train = self.t_val = self.t0
        self.bar = None
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=max_epochs, desc=desc, unit="epoch", leave=False)

    def on_train_epoch_start(self, state: EpochState) -> None:
        self.t_train = time.perf_counter()

    def on_validation_epoch_start(self, state: EpochState) -> None:
        self.t_val = time.perf_counter()

    def on_validation_end(self, state: EpochState) -> None:
        now = time.perf_counter()
        epoch, val_loss, val_uap = state.epoch, state.val_loss, state.val_uap
        self.history.append(
            {
                "epoch": epoch,
                "train_loss": state.train_loss,
                "val_loss": val_loss,
                "val_uap": val_uap,
                "lr": state.lr,
                "train_seconds": self.t_val - self.t_train,
                "val_seconds": now - self.t_val,
                "seconds": now - self.t0,
            }
        )
        model_state = None
        if val_loss < self.best["loss"][0]:
            model_state = copy.deepcopy(state.steps.model.state_dict())
            self.best["loss"] = (val_loss, epoch, model_state)
        if val_uap > self.best["uap"][0]:
            model_state = model_state or copy.deepcopy(state.steps.model.state_dict())
            self.best["uap"] = (val_uap, epoch, model_state)
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(val_loss=f"{val_loss:.4f}", val_uap=f"{100 * val_uap:.2f}", best=self.best["loss"][1])
        if self.on_epoch is not None:
            self.on_epoch(self.history)

    @property
    def epochs_done(self) -> int:
        return len(self.history)

    def on_fit_end(self, state: EpochState) -> None:
        if self.bar is not None:
            self.bar.close()


class TrainingInterrupted(Exception):
    """Raised by :class:`StopOnRequest` to end :func:`fit` after a step; the run is written as it stands."""


class StopOnRequest(Callback):
    """Ends the fit after the current training step once ``stop.is_set()`` (a :class:`threading.Event`, or the
    CLI's request set by SIGINT/SIGTERM): raises :class:`TrainingInterrupted` after a training batch, after a
    finished validation (that epoch counts), and before an epoch starts. Register it after :class:`BestStates`."""

    def __init__(self, stop):
        self.stop = stop

    def _check(self) -> None:
        if self.stop.is_set():
            raise TrainingInterrupted()

    def on_train_epoch_start(self, state: EpochState) -> None:
        self._check()

    def on_train_batch_end(self, state: EpochState) -> None:
        self._check()

    def on_validation_end(self, state: EpochState) -> None:
        self._check()


class EarlyStopping:
    """Stop when ``val_loss`` has not gone below its best for ``patience`` epochs in a row, or is not finite."""

    def __init__(self, patience: int):
        self.patience, self.best, self.wait = patience, math.inf, 0

    def should_stop(self, val_loss: float) -> bool:
        if not math.isfinite(val_loss):
            return True
        if val_loss < self.best:
            self.best, self.wait = val_loss, 0
            return False
        self.wait += 1
        return self.wait >= self.patience


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's (CPU and CUDA) global generators, as ``lightning.seed_everything``."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


AUTOCAST = {"bf16-mixed": torch.bfloat16}  # Lightning's precision name -> the autocast dtype of a CUDA run


def accelerator_device(accelerator: str) -> torch.device:
    """The device of a run's ``accelerator`` setting: ``auto`` a CUDA device where there is one, else the CPU;
    ``gpu`` (or ``cuda``) a CUDA device, ``cpu`` the CPU (:func:`divita.hardware.resolve_device`, whose one-line
    error says when CUDA is missing)."""
    from divita.hardware import resolve_device

    if accelerator not in ("auto", "cpu", "gpu", "cuda"):
        raise DivitaError(None, f"accelerator must be auto, cpu or gpu, got {accelerator!r}")
    return resolve_device("cuda" if accelerator == "gpu" else accelerator)


def fit(
    steps: SnippetSteps,
    train_batches: Iterable,
    val_batches: Iterable,
    max_epochs: int,
    stop_patience: int,
    device: torch.device | str = "cpu",
    autocast_dtype: torch.dtype | None = None,
    callbacks: list[Callback] = (),
) -> EpochState:
    """Train ``steps`` for at most ``max_epochs`` epochs; each epoch iterates ``train_batches`` then
    ``val_batches`` (re-iterable, of :class:`~divita.features.snippets.SnippetBatch`). ``autocast_dtype``: CUDA
    mixed precision (``torch.autocast``) around every step. Exceptions from callbacks (``TrainingInterrupted``)
    end the fit; ``on_fit_end`` runs in every case. Returns the last epoch's state."""
    device = torch.device(device)
    steps.model.to(device)
    steps.start()
    state = EpochState(steps)
    stopper = EarlyStopping(stop_patience)
    autocast = (
        (lambda: torch.autocast(device.type, dtype=autocast_dtype))
        if autocast_dtype is not None
        else contextlib.nullcontext
    )
    call = lambda hook: [getattr(c, hook)(state) for c in callbacks]  # noqa: E731
    on_device = (lambda b: b) if device.type == "cpu" else (lambda b: b.to(device))  # noqa: E731
    try:
        for epoch in range(max_epochs):
            state.epoch = epoch
            steps.train(True)
            call("on_train_epoch_start")
            for batch in train_batches:
                with autocast():
                    steps.train_step(on_device(batch))
                call("on_train_batch_end")
            steps.train(False)
            call("on_validation_epoch_start")
            with torch.inference_mode():
                for batch in val_batches:
                    with autocast():
                        steps.validation_step(on_device(batch))
            state.val_loss, state.val_uap = steps.validation_end()
            state.train_loss, state.lr = steps.take_train_loss(), steps.lr_now
            call("on_validation_end")
            if stopper.should_stop(state.val_loss):
                state.should_stop = True
                break
    finally:
        steps.train(False)
        call("on_fit_end")
    return state
