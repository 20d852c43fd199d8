"""Train one DIViTA model on one split of a release-format dataset, then evaluate it.

A run directory holds, when finished:
    best.ckpt          the selected model (by validation loss, or validation μAP with ``select_by="uap"``)
    hparams.json       the full training configuration
    history.csv        per-epoch train/val loss, val μAP, learning rate
    metrics.csv        val and test metrics (both AP conventions; both checkpoint selections)
    predictions_{val,tst}.npz   trailer ids, labels and probabilities of the selected model
``metrics.csv`` is written last (atomically): its presence marks the run as finished.

Modules: :mod:`~divita.training.config` (TrainConfig, the one place training defaults live; no torch),
:mod:`~divita.training.batches` (stores in memory, snippet sets, epoch batches),
:mod:`~divita.training.steps` (one training step, one validation pass), :mod:`~divita.training.engine` (the
epoch loop, early stopping, the best-epoch tracker), :mod:`~divita.training.checkpoint` (checkpoints, finished
runs), :mod:`~divita.training.loop` (one run, evaluation helpers), :mod:`~divita.training.compute` (the CPU
speed-ups), and :mod:`~divita.training.module` (the same steps as a LightningModule, for a Lightning
``Trainer``; the only module that imports lightning). Their names are importable from here, loaded on first
use, so that importing the configuration needs no torch.
"""

from __future__ import annotations

import importlib

# name -> the submodule that defines it
_EXPORTS = {
    "TrainConfig": "config",
    "SELECTIONS": "config",
    "SPLITS": "config",
    "OLD_NAMES": "config",
    "resolve_precision": "config",
    "uses_cuda": "config",
    "resolve": "config",
    "with_old_names": "config",
    "with_new_names": "config",
    "FeatureCache": "batches",
    "load_split": "batches",
    "EpochBatches": "batches",
    "EvalBatches": "batches",
    "SnippetSteps": "steps",
    "fit": "engine",
    "seed_everything": "engine",
    "BestStates": "engine",
    "StopOnRequest": "engine",
    "TrainingInterrupted": "engine",
    "SnippetModule": "module",
    "CHECKPOINT_FORMAT": "checkpoint",
    "save_checkpoint": "checkpoint",
    "check_features": "checkpoint",
    "load_checkpoint": "checkpoint",
    "read_finished_run": "checkpoint",
    "RunResult": "loop",
    "train_model": "loop",
    "predict_snippets": "loop",
    "tune_thresholds": "loop",
    "metric_rows": "loop",
    "ComputeCopy": "compute",
    "HeadRunner": "compute",
    "fused_loss_backward": "compute",
    "retain_freed_memory": "compute",
}
__all__ = [n for n, m in _EXPORTS.items() if m != "module"]  # `import *` stays free of lightning


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))
