"""One training run end to end: train, pick the best epoch, evaluate val and test, write the run directory."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from divita.errors import Interrupted
from divita.features.snippets import SnippetSet, mean_over_snippets
from divita.fileio import atomic_write_bytes, atomic_write_text, check_free_space
from divita.hardware import default_threads
from divita.model import DIViTA, ModelConfig
from divita.training.batches import EpochBatches, EvalBatches, FeatureCache, load_split
from divita.training.checkpoint import save_checkpoint
from divita.training.compute import retain_freed_memory
from divita.training.config import SELECTIONS, TrainConfig, resolve_precision, with_old_names
from divita.training.protocol import parse_protocol, protocol_precision


@torch.inference_mode()
def predict_snippets(
    model: DIViTA, snippets: SnippetSet, batch_size: int = 256, device: str | torch.device = "cpu"
) -> np.ndarray:
    """Trailer probabilities (N, 10): sigmoid of each window's logits, averaged over the trailer's windows."""
    model.eval().to(device)
    probs, trailers = [], []
    for batch in snippets.eval_batches(batch_size):
        batch = batch.to(device)
        probs.append(torch.sigmoid(model(batch.xs, batch.masks).float()))
        trailers.append(batch.trailer)
    out = mean_over_snippets(torch.cat(probs), torch.cat(trailers), len(snippets))
    return out.cpu().numpy()


def tune_thresholds(y_true: np.ndarray, y_prob: np.ndarray) -> list[float]:
    """Per-genre decision threshold maximising F1 on (validation) data; 0.5 where a genre has no positive.

    The threshold sits halfway between the lowest score the best cut includes and the highest it excludes,
    not on the included score itself, so that new data scoring a little lower is not cut off.
    """
    out = []
    for g in range(y_true.shape[1]):
        t, s = y_true[:, g], y_prob[:, g]
        if t.sum() == 0:
            out.append(0.5)
            continue
        order = np.argsort(-s, kind="stable")
        t, s = t[order], s[order]
        tp = np.cumsum(t)
        k = np.arange(1, len(t) + 1)
        f1 = 2 * tp / (k + t.sum())
        f1[:-1][s[:-1] == s[1:]] = -1  # a cut must fall between two different scores
        best = int(np.argmax(f1))
        below = s[best + 1] if best + 1 < len(s) else 0.0
        out.append(float((s[best] + below) / 2))
    return out


def metric_rows(y_true: np.ndarray, y_prob: np.ndarray, **keys) -> list[dict]:
    """One row per AP convention: ``keys`` and the metrics of (N, 10) labels and probabilities."""
    from divita.metrics import CONVENTIONS, multilabel_metrics

    return [{**keys, "convention": c, **multilabel_metrics(y_true, y_prob, convention=c)} for c in CONVENTIONS]


@dataclass
class RunResult:
    run_dir: Path
    metrics: Any  # pandas DataFrame of metrics.csv
    best_epoch: int
    epochs: int
    seconds: float
    history: list[dict] = field(default_factory=list)
    interrupted: bool = False  # stopped on request before training ended by itself: the run as it stood
    load_seconds: float = 0.0  # reading the labels and opening (or building) the stores' features


_NOTED_SHORT: set[tuple] = set()


def note_short_trailers(trn: SnippetSet, cfg: TrainConfig) -> None:
    """One stderr line (once per data and snippet length in a process) when training trailers are shorter than a
    snippet: the authors' loader fails on them (``random.randint`` of an empty range); ``paper`` zero-pads their
    windows, as that loader pads evaluation windows, and does not mask the padding."""
    short = int((trn.lengths.min(axis=0) < cfg.num_clips).sum())
    key = (str(cfg.data_dir), cfg.split, cfg.num_clips)
    if short and key not in _NOTED_SHORT:
        _NOTED_SHORT.add(key)
        print(
            f"divita: protocol {cfg.protocol}: {short} training trailer(s) of split {cfg.split} are shorter than a "
            f"snippet ({cfg.num_clips} clips), where the authors' code fails; their windows are zero-padded "
            "(unmasked), as that code pads evaluation windows",
            file=sys.stderr,
        )


# the run's other files besides the checkpoint (predictions, history, hparams, metrics): a generous bound
RUN_FILES_BYTES = 4 << 20


def train_model(
    cfg: TrainConfig,
    run_dir: str | Path,
    cache: FeatureCache | None = None,
    progress: bool = True,
    desc: str | None = None,
    stop=None,
) -> RunResult:
    """Train one DIViTA model, select the best epoch, evaluate it on val and test, and write the run directory.

    Available as `divita.train`. ``run_dir`` receives ``best.ckpt``, ``history.csv`` (rewritten after every
    epoch), ``hparams.json``, the predictions and ``metrics.csv``, written last: it marks the run finished (an
    earlier run's is removed when the first epoch of this one is written).

    Args:
        cfg: the run's `TrainConfig` (stores, split, model and optimiser options).
        run_dir: the run's directory (created).
        cache: a ``FeatureCache`` to read the stores' features through (default: from ``cfg.cache_dir``).
        progress: show progress bars.
        desc: the progress bar's label.
        stop: an object with ``is_set()`` (a ``threading.Event``; the CLI's is set by SIGINT/SIGTERM). Once set,
            training ends after the current step and the run is written as it stands: the best finished
            epoch so far, ``"interrupted": true`` in hparams.json, ``RunResult.interrupted``.

    Returns:
        RunResult: ``run_dir``, ``metrics`` (metrics.csv as a DataFrame: μAP, mAP, wAP, sAP on val and
        test), ``best_epoch``, ``epochs``, ``seconds``, ``history`` and ``interrupted``.

    Raises:
        DivitaError: a store or labels file that cannot be read or does not fit, or a file system without room
            for the run's files (checked before training).
        divita.errors.Interrupted: ``stop`` was set (or a signal came) before the first epoch finished; nothing
            is written.
    """
    import pandas as pd

    from divita.training.engine import (
        AUTOCAST,
        BestStates,
        StopOnRequest,
        TrainingInterrupted,
        accelerator_device,
        fit,
        seed_everything,
    )
    from divita.training.steps import SnippetSteps

    run_dir = Path(run_dir)
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    threads = cfg.threads or default_threads()
    t0 = time.perf_counter()

    def signum() -> int:
        return getattr(stop, "signum", None) or signal.SIGINT

    def interrupted_before_an_epoch() -> Interrupted:
        if created:
            try:
                run_dir.rmdir()  # only when empty
            except OSError:
                pass
        return Interrupted(signum(), f"stopped before the first epoch finished; nothing written to {run_dir}")

    sets, features = load_split(cfg, cache or FeatureCache(progress))
    load_seconds = time.perf_counter() - t0
    if stop is not None and stop.is_set():
        raise interrupted_before_an_epoch()
    device = accelerator_device(cfg.accelerator)
    seed_everything(cfg.seed)
    model_cfg = ModelConfig(
        num_features=[features[m]["num_features"] for m in cfg.stores],
        modalities=list(cfg.stores),
        fusion=cfg.fusion,
        aggregator=cfg.aggregator,
        hidden=cfg.hidden,
        heads=cfg.heads,
        ff_mult=cfg.ff_mult,
        dropout=cfg.dropout,
    )
    precision, compute_dtype = resolve_precision(protocol_precision(cfg.protocol, cfg.precision), cfg.accelerator)
    if not parse_protocol(cfg.protocol).masking:
        note_short_trailers(sets["trn"], cfg)
    steps = SnippetSteps(
        model_cfg.to_dict(),
        cfg.lr,
        cfg.weight_decay,
        cfg.scheduler_patience,
        len(sets["val"]),
        sets["val"].labels,
        compute_dtype=compute_dtype,
        threads=threads,
        protocol=cfg.protocol,
        val_batch_trailers=cfg.batch_size,
    )
    state_bytes = sum(t.numel() * t.element_size() for t in steps.model.state_dict().values())
    check_free_space(run_dir, state_bytes + RUN_FILES_BYTES, "the run's checkpoint and files")

    def save_history(history: list[dict]) -> None:
        if len(history) == 1:  # this run replaces whatever the directory held: no longer a finished run
            (run_dir / "metrics.csv").unlink(missing_ok=True)
        atomic_write_text(run_dir / "history.csv", pd.DataFrame(history).to_csv(index=False))

    tracker = BestStates(cfg.max_epochs, progress, desc or f"train {run_dir.name}", on_epoch=save_history)
    callbacks = [tracker]
    if stop is not None:
        callbacks.append(StopOnRequest(stop))  # after the tracker: an epoch validated when the stop comes counts
    # late fusion on CPU runs one head per thread, each op in line: no intra-op threads on top of those
    parallel_heads = steps.runner.parallel(len(steps.model.heads), device)
    torch.set_num_threads(1 if parallel_heads else threads)
    retain_freed_memory()
    switch = sys.getswitchinterval()
    if parallel_heads:  # a head thread back from a torch op gets the GIL sooner (default 5 ms)
        sys.setswitchinterval(0.0005)
    interrupted = False
    graceful = getattr(stop, "graceful", None)  # the CLI's request: signals only set it while the fit runs
    try:
        with graceful() if graceful is not None else contextlib.nullcontext():
            fit(
                steps,
                EpochBatches(sets["trn"], cfg.batch_size, cfg.seed, prefetch=threads > 1),
                EvalBatches(sets["val"], cfg.eval_batch_size, prefetch=threads > 1),
                max_epochs=cfg.max_epochs,
                stop_patience=cfg.stop_patience,
                device=device,
                autocast_dtype=AUTOCAST.get(precision),  # bf16-mixed only where the run is on CUDA
                callbacks=callbacks,
            )
    except TrainingInterrupted:
        interrupted = True
    except KeyboardInterrupt as e:  # a second Ctrl-C (or SIGTERM) while the first one's step was finishing
        if stop is None or not stop.is_set():
            raise
        raise Interrupted(signum(), f"stopped at once; {run_dir} may be incomplete") from e
    finally:
        sys.setswitchinterval(switch)
        steps.close()
    if interrupted and tracker.epochs_done == 0:
        raise interrupted_before_an_epoch()

    torch.set_num_threads(threads)
    model = steps.model.cpu()
    rows, selected = [], {}
    for selection in SELECTIONS:
        _, epoch, state = tracker.best[selection]
        model.load_state_dict(state)
        probs = {s: predict_snippets(model, sets[s], cfg.eval_batch_size) for s in ("val", "tst")}
        for s in ("val", "tst"):
            rows += metric_rows(sets[s].labels, probs[s], subset=s, split=cfg.split, selection=selection, epoch=epoch)
        if selection == cfg.select_by:
            selected = {"epoch": epoch, "probs": probs, "state": state}

    model.load_state_dict(selected["state"])
    thresholds = tune_thresholds(sets["val"].labels, selected["probs"]["val"])
    save_checkpoint(
        run_dir / "best.ckpt",
        model,
        cfg,
        features,
        epoch=selected["epoch"],
        selected_by=cfg.select_by,
        thresholds=thresholds,
        num_clips=cfg.num_clips,
        protocol=cfg.protocol,
    )
    for s in ("val", "tst"):
        atomic_write_bytes(
            run_dir / f"predictions_{s}.npz",
            lambda f, s=s: np.savez(f, mids=np.array(sets[s].mids), y_true=sets[s].labels, y_prob=selected["probs"][s]),
        )
    atomic_write_text(run_dir / "history.csv", pd.DataFrame(tracker.history).to_csv(index=False))
    # hparams.json: the identity with the earlier keys ix/vx beside image_store/video_store (users' scripts read them);
    # "interrupted": true for a run stopped on request (not counted as finished by `divita reproduce`)
    hparams = {**with_old_names(cfg.identity()), "features": features, "interrupted": interrupted}
    atomic_write_text(run_dir / "hparams.json", json.dumps(hparams, indent=2, default=str))
    metrics = pd.DataFrame(rows)
    atomic_write_text(run_dir / "metrics.csv", metrics.to_csv(index=False, float_format="%.6f"))
    seconds = time.perf_counter() - t0
    return RunResult(
        run_dir, metrics, selected["epoch"], len(tracker.history), seconds, tracker.history, interrupted, load_seconds
    )
