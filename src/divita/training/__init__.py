"""Train one DIViTA model on one split of a release-format dataset, then evaluate it.

A run directory holds, when finished:
    best.ckpt          the selected model (``select_by``: by validation μAP, or validation loss)
    hparams.json       the full training configuration
    history.csv        per-epoch train/val loss, val μAP, learning rate
    metrics.csv        val and test metrics (both AP conventions; both checkpoint selections)
    predictions_{val,tst}.npz   trailer ids, labels and probabilities of the selected model
``metrics.csv`` is written last (atomically): its presence marks the run as finished.

Modules: :mod:`~divita.training.config` (TrainConfig, the one place training defaults live; no torch),
:mod:`~divita.training.batches` (stores in memory, snippet sets, epoch batches),
:mod:`~divita.training.steps` (one training step, one validation pass), :mod:`~divita.training.engine` (the
epoch loop, early stopping, the best-epoch tracker), :mod:`~divita.training.checkpoint` (checkpoints, finished
runs, earlier formats read by :func:`upgrade_train_config`), :mod:`~divita.training.loop` (one run, evaluation
helpers), :mod:`~divita.training.compute` (the CPU speed-ups). Their names are importable from here, each loaded
with its module on first use, so that importing the configuration needs no torch.

:mod:`divita.training.module` (``SnippetModule``: the same steps as a LightningModule, for a Lightning
``Trainer``) is the only module that imports lightning, the optional extra ``pip install 'divita[lightning]'``;
import it from there (it is not among the names below).
"""

from __future__ import annotations

from divita.lazy import lazy_exports

_EXPORTS = {
    "TrainConfig": "config",
    "SELECTIONS": "config",
    "SPLITS": "config",
    "OLD_NAMES": "config",
    "resolve_precision": "config",
    "uses_cuda": "config",
    "resolve": "config",
    "with_old_names": "config",
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
    "CHECKPOINT_FORMAT": "checkpoint",
    "save_checkpoint": "checkpoint",
    "check_features": "checkpoint",
    "load_checkpoint": "checkpoint",
    "read_finished_run": "checkpoint",
    "upgrade_train_config": "checkpoint",
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
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
