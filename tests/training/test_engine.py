"""The plain-PyTorch epoch loop (divita.training.engine) against the Lightning Trainer it replaced."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from builders.release import IMAGE_STORE, VIDEO_STORE, tiny_config
from divita.training.engine import BestStates, EarlyStopping, accelerator_device, fit, seed_everything

STEPS_ARGS = dict(lr=3e-3, weight_decay=0.01, scheduler_patience=1)


def _data(tiny_release, **kw):
    from divita.training.batches import EpochBatches, EvalBatches, FeatureCache, load_split

    cfg = tiny_config(tiny_release, cache_dir="none", **kw)
    sets, features = load_split(cfg, FeatureCache(progress=False))
    model_config = {
        "num_features": [features[m]["num_features"] for m in cfg.stores],
        "modalities": list(cfg.stores),
        "hidden": 32,
        "heads": 2,
    }
    return cfg, sets, model_config, EpochBatches, EvalBatches


def _steps(model_config, sets, threads=2):
    from divita.training.steps import SnippetSteps

    return SnippetSteps(
        model_config, num_val_trailers=len(sets["val"]), val_labels=sets["val"].labels, threads=threads, **STEPS_ARGS
    )


def test_the_engine_trains_exactly_as_the_lightning_trainer_did(tiny_release):
    """Same seed, same data: every epoch's validation loss, μAP, learning rate and training loss, the epoch early
    stopping ends on, and the final weights equal those of a Lightning Trainer running SnippetModule."""
    L = pytest.importorskip("lightning")
    from lightning.pytorch.callbacks import EarlyStopping as LightningEarlyStopping

    from divita.training.module import SnippetModule

    cfg, sets, model_config, EpochBatches, EvalBatches = _data(tiny_release)
    max_epochs, patience = 25, 2

    def batches():
        return EpochBatches(sets["trn"], 16, cfg.seed), EvalBatches(sets["val"], 64)

    seed_everything(cfg.seed)
    steps = _steps(model_config, sets)
    tracker = BestStates(max_epochs, progress=False, desc="engine")
    state = fit(steps, *batches(), max_epochs=max_epochs, stop_patience=patience, callbacks=[tracker])
    engine = [(h["val_loss"], h["val_uap"], h["lr"], h["train_loss"]) for h in tracker.history]

    class Record(L.Callback):
        def __init__(self):
            self.rows = []

        def on_validation_end(self, trainer, module):
            m = trainer.callback_metrics
            lr = trainer.optimizers[0].param_groups[0]["lr"]
            self.rows.append((float(m["val_loss"]), float(m["val_uap"]), lr, module.train_losses[-1]))

    seed_everything(cfg.seed)
    module = SnippetModule(
        model_config, **STEPS_ARGS, num_val_trailers=len(sets["val"]), val_labels=sets["val"].labels, threads=2
    )
    record = Record()
    trainer = L.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[LightningEarlyStopping(monitor="val_loss", mode="min", patience=patience), record],
    )
    trainer.fit(module, *batches())

    assert state.should_stop and len(engine) < max_epochs  # early stopping ended both, on the same epoch
    assert engine == record.rows
    assert len({lr for *_, lr, _ in engine}) > 1  # the plateau scheduler lowered the rate on the way
    for (name, a), b in zip(steps.model.state_dict().items(), module.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_early_stopping_counts_epochs_without_a_lower_loss_and_stops_on_non_finite():
    stop = EarlyStopping(patience=2)
    assert [stop.should_stop(v) for v in (1.0, 0.9, 0.9, 0.8, 0.85, 0.81)] == [False] * 5 + [True]
    assert EarlyStopping(patience=5).should_stop(math.nan)
    assert EarlyStopping(patience=5).should_stop(math.inf)


def test_best_states_keep_the_weights_of_the_best_epochs_not_the_last(tiny_release):
    cfg, sets, model_config, EpochBatches, EvalBatches = _data(tiny_release)
    seed_everything(0)
    steps = _steps(model_config, sets, threads=1)
    tracker = BestStates(6, progress=False, desc="best")
    fit(
        steps,
        EpochBatches(sets["trn"], 16, 0),
        EvalBatches(sets["val"], 64),
        max_epochs=6,
        stop_patience=10,
        callbacks=[tracker],
    )
    losses = [h["val_loss"] for h in tracker.history]
    value, epoch, state = tracker.best["loss"]
    assert value == min(losses) and epoch == int(np.argmin(losses))
    if epoch != len(losses) - 1:
        last = steps.model.state_dict()
        assert any(not torch.equal(state[k], last[k]) for k in state)


def test_a_gpu_accelerator_without_cuda_is_a_one_line_error():
    from divita.errors import DivitaError

    if torch.cuda.is_available():
        assert accelerator_device("gpu").type == "cuda"
        return
    assert accelerator_device("auto").type == "cpu"
    with pytest.raises(DivitaError, match="CUDA is not available"):
        accelerator_device("gpu")
    with pytest.raises(DivitaError, match="auto, cpu or gpu"):
        accelerator_device("tpu")


def test_divita_train_imports_neither_lightning_nor_scikit_learn_before_it_trains(tiny_release, tmp_path):
    """Lightning's import (~2 s: torchmetrics, torchvision, torch._dynamo) and scikit-learn's (~1 s) would come
    before the first training step; scikit-learn is imported by the first validation."""
    out = tmp_path / "run"
    code = (
        "import sys, json\n"
        "import divita.training.batches as b\n"
        "real = b.EpochBatches.__iter__\n"
        "seen = {}\n"
        "def first(self):\n"
        "    for batch in real(self):\n"
        "        seen.setdefault('first', sorted(m for m in ('lightning', 'sklearn', 'zarr') if m in sys.modules))\n"
        "        yield batch\n"
        "b.EpochBatches.__iter__ = first\n"
        "from divita.cli import main\n"
        f"code = main(['train', '--data-dir', {str(tiny_release)!r}, '--image-store', {IMAGE_STORE!r}, "
        f"'--video-store', {VIDEO_STORE!r}, '--split', '0', '--out', {str(out)!r}, '--max-epochs', '1', "
        f"'--cache-dir', {str(tmp_path / 'cache')!r}, '--no-progress'])\n"
        "seen['end'] = sorted(m for m in ('lightning', 'sklearn') if m in sys.modules)\n"
        "print(json.dumps(seen)); sys.exit(code)\n"
    )
    # twice: the first run builds the caches (and reads the stores with zarr), the second only opens them
    for _ in range(2):
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
    seen = json.loads(res.stdout.strip().splitlines()[-1])
    assert seen == {"first": [], "end": ["sklearn"]}
    assert (out / "metrics.csv").is_file()
