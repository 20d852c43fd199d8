"""Train one DIViTA model on one split of a release-format dataset (Lightning), then evaluate it.

A run directory holds, when finished:
    best.ckpt          the selected model (by validation loss, or validation μAP with ``select_by="uap"``)
    hparams.json       the full training configuration
    history.csv        per-epoch train/val loss, val μAP, learning rate
    metrics.csv        val and test metrics (both AP conventions; both checkpoint selections)
    predictions_{val,tst}.npz   trailer ids, labels and probabilities of the selected model
``metrics.csv`` is written last (atomically): its presence marks the run as finished.
"""

from __future__ import annotations

import copy
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from divita.training.compute import ComputeCopy, HeadRunner, fused_loss_backward, retain_freed_memory
from divita.datasets.labels import read_labels
from divita.features.snippets import SnippetSet, mean_over_snippets
from divita.errors import DivitaError
from divita.hardware import cpu_has_native_bf16, default_threads
from divita.fileio import atomic_write_bytes, atomic_write_text
from divita.genres import GENRES
from divita.model import AGGREGATORS, DIViTA, FUSIONS, ModelConfig
from divita.datasets.release import LABELS_FILE
from divita.features.store import FeatureTable, load_features, open_store

CHECKPOINT_FORMAT = "divita-checkpoint/1"
SELECTIONS = ("loss", "uap")


@dataclass
class TrainConfig:
    """Everything that defines a training run (the paper's defaults)."""

    data_dir: str
    ix: str | None  # image store (directory name inside data_dir, or a path), None = no image stream
    vx: str | None  # video store, None = no video stream
    split: int = 0
    labels: str = LABELS_FILE  # labels CSV, inside data_dir unless a path
    num_clips: int = 30
    batch_size: int = 32
    eval_batch_size: int = 256
    max_epochs: int = 100
    lr: float = 1e-4
    weight_decay: float = 0.01  # AdamW's default, as in the authors' code
    scheduler_patience: int = 10
    stop_patience: int = 20
    select_by: str = "loss"  # which validation figure picks the best epoch: "loss" (paper) or "uap"
    seed: int = 0
    fusion: str = "late"
    aggregator: str = "tsfm"
    hidden: int = 128
    heads: int = 4
    ff_mult: int = 6
    dropout: float = 0.25
    threads: int | None = None  # CPU threads in all (one per late-fusion head, else torch intra-op); None = available cores
    accelerator: str = "auto"
    precision: str = "auto"  # "auto": bfloat16 compute where native (AMX/AVX512-BF16 CPUs, CUDA), else "32"; or "32", "bf16"

    def __post_init__(self):
        if not self.ix and not self.vx:
            raise DivitaError(None, "at least one of --ix and --vx must name a store")
        if self.select_by not in SELECTIONS:
            raise DivitaError(None, f"select_by must be one of {SELECTIONS}, got {self.select_by!r}")
        if self.fusion not in FUSIONS:
            raise DivitaError(None, f"fusion must be one of {FUSIONS}, got {self.fusion!r}")
        if self.aggregator not in AGGREGATORS:
            raise DivitaError(None, f"aggregator must be one of {AGGREGATORS}, got {self.aggregator!r}")
        if self.split not in (0, 1, 2):
            raise DivitaError(None, f"split must be 0, 1 or 2, got {self.split}")

    @property
    def stores(self) -> dict[str, str]:
        """modality name -> store reference, image first."""
        return {m: s for m, s in (("image", self.ix), ("video", self.vx)) if s}

    def identity(self) -> dict[str, Any]:
        """The fields that change results (not where files are or how many threads run)."""
        d = asdict(self)
        for k in ("data_dir", "threads", "accelerator", "eval_batch_size", "precision"):
            d.pop(k)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def uses_cuda(accelerator: str) -> bool:
    """Whether Lightning's ``accelerator`` setting trains on a CUDA device here."""
    return accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()


def resolve_precision(precision: str, accelerator: str = "auto") -> tuple[str, torch.dtype]:
    """(Lightning precision, compute dtype of the model copy that runs forward/backward).

    On CPUs: Lightning stays "32-true" and, where bf16 matmuls are native (AMX, AVX512-BF16), "auto"
    runs a bfloat16 copy of the model with float32 master weights (:class:`divita.training.compute.ComputeCopy`).
    On CUDA: Lightning's "bf16-mixed" autocast (or "16-mixed" without bf16).
    """
    if precision not in ("auto", "32", "fp32", "32-true", "bf16", "bf16-mixed"):
        raise DivitaError(None, f"precision must be auto, 32 or bf16, got {precision!r}")
    if precision in ("32", "fp32", "32-true"):
        return "32-true", torch.float32
    if uses_cuda(accelerator):
        if precision == "auto" and not torch.cuda.is_bf16_supported():
            return "16-mixed", torch.float32
        return "bf16-mixed", torch.float32
    if precision == "auto" and not cpu_has_native_bf16():
        return "32-true", torch.float32
    return "32-true", torch.bfloat16


def resolve(data_dir: str | Path, ref: str) -> Path | str:
    """A store reference: a URL (s3://..., memory://...) as it is, else a path (relative to data_dir)."""
    if "://" in str(ref):
        return str(ref)
    p = Path(ref)
    return p if p.is_absolute() else Path(data_dir) / p


# -- data ---------------------------------------------------------------------------------------------
class FeatureCache:
    """Loads each store once (all labelled trailers) and serves every split and run from memory."""

    def __init__(self, progress: bool = True):
        self.progress = progress
        self._tables: dict[tuple[str, tuple[str, ...]], FeatureTable] = {}

    def table(self, store: Path | str, mids: list[str]) -> FeatureTable:
        key = (str(Path(store).resolve()) if "://" not in str(store) else str(store), tuple(mids))
        if key not in self._tables:
            self._tables[key] = load_features(store, mids, progress=self.progress)
        return self._tables[key]


def load_split(cfg: TrainConfig, cache: FeatureCache | None = None) -> tuple[dict[str, SnippetSet], dict[str, dict]]:
    """SnippetSets for 'trn', 'val', 'tst' of ``cfg.split``, and per-modality store info."""
    cache = cache or FeatureCache()
    labels_path = resolve(cfg.data_dir, cfg.labels)
    if not Path(cfg.data_dir).is_dir():
        raise DivitaError(cfg.data_dir, "data directory not found (`divita download --data-dir DIR` fetches the release)")
    if not labels_path.is_file():
        raise DivitaError(labels_path, "labels file missing (`divita download` fetches mtgc.csv)")
    df = read_labels(labels_path)
    all_mids = df["mid"].tolist()
    info: dict[str, dict] = {}
    tables: dict[str, FeatureTable] = {}
    for modality, ref in cfg.stores.items():
        path = resolve(cfg.data_dir, ref)
        if "://" not in str(path) and not path.is_dir():
            raise DivitaError(path, "feature store missing (`divita download` fetches the release stores)")
        group = open_store(path)
        tables[modality] = cache.table(path, all_mids)
        info[modality] = {
            "store": ref,
            "num_features": int(group.attrs["num_features"]),
            "extraction": group.attrs.get("extraction"),
        }
    sets = {}
    for subset, code in (("trn", 0), ("val", 1), ("tst", 2)):
        idx = np.flatnonzero(df[f"split{cfg.split}"].to_numpy() == code)
        if len(idx) == 0:
            raise DivitaError(labels_path, f"split{cfg.split} has no {subset} trailers (empty split)")
        labels = df[list(GENRES)].to_numpy(np.float32)[idx]
        sets[subset] = SnippetSet([tables[m].subset(idx) for m in cfg.stores], labels, cfg.num_clips)
    return sets, info


class EpochBatches:
    """A re-iterable epoch of training batches (a new random window per trailer each epoch); the next
    batch is gathered in a background thread while the current one trains when ``prefetch`` (numpy's
    gather releases the GIL, and it fills the moments a step leaves a core idle)."""

    def __init__(self, snippets: SnippetSet, batch_size: int, seed: int, prefetch: bool = True):
        self.snippets, self.batch_size, self.prefetch = snippets, batch_size, prefetch
        self.rng = np.random.default_rng(seed)

    def __iter__(self):
        batches = self.snippets.train_batches(self.batch_size, self.rng)
        if not self.prefetch:
            yield from batches
            return
        with ThreadPoolExecutor(1, thread_name_prefix="divita-gather") as pool:
            ahead = pool.submit(next, batches, None)
            while (batch := ahead.result()) is not None:
                ahead = pool.submit(next, batches, None)
                yield batch

    def __len__(self) -> int:
        return -(-len(self.snippets) // self.batch_size)


class EvalBatches:
    """The validation windows in batches; the same every epoch, so kept after the first epoch when they
    take at most ``cache_bytes`` (the gather is then done once per run instead of once per epoch)."""

    def __init__(self, snippets: SnippetSet, batch_size: int, cache_bytes: int = 1 << 30):
        self.snippets, self.batch_size = snippets, batch_size
        width = sum(t.features.shape[1] for t in snippets.tables)
        self.keep = snippets.num_eval_windows() * snippets.num_clips * width * 4 <= cache_bytes
        self._batches: list | None = None

    def __iter__(self):
        if self._batches is None and self.keep:
            self._batches = list(self.snippets.eval_batches(self.batch_size))
        return iter(self._batches) if self._batches is not None else self.snippets.eval_batches(self.batch_size)

    def __len__(self) -> int:
        return -(-self.snippets.num_eval_windows() // self.batch_size)


# -- model --------------------------------------------------------------------------------------------
def _lightning_module_class():
    import lightning as L
    import torch.nn.functional as F

    from divita.evaluation.metrics import trapezoid_ap

    class SnippetModule(L.LightningModule):
        """DIViTA + BCE-with-logits, AdamW (amsgrad), ReduceLROnPlateau on validation loss.

        Optimisation is manual: forward and backward run on ``self.compute`` (a bfloat16 copy on CPUs
        with native bf16, else the model itself), heads in parallel threads on CPU (``HeadRunner``);
        the optimizer steps the float32 ``self.model``.
        """

        def __init__(self, model_config: dict, lr: float, weight_decay: float, scheduler_patience: int, num_val_trailers: int,
                     val_labels: np.ndarray, compute_dtype: torch.dtype = torch.float32, threads: int = 1):
            super().__init__()
            self.automatic_optimization = False
            self.model = DIViTA(ModelConfig(**model_config))
            self.lr, self.weight_decay, self.scheduler_patience = lr, weight_decay, scheduler_patience
            self.num_val_trailers = num_val_trailers
            self.val_labels = val_labels
            self.compute_dtype = compute_dtype
            self.runner = HeadRunner(threads)
            self.compute: ComputeCopy | None = None
            self._val_outputs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
            self.epoch_train_losses: list[torch.Tensor] = []  # this epoch's step losses (validation runs before Lightning aggregates them)

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
            opt = torch.optim.AdamW(self.model.parameters(), lr=self.lr, weight_decay=self.weight_decay, amsgrad=True, fused=True)
            sch = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", patience=self.scheduler_patience)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sch}}  # stepped on val_loss in on_validation_epoch_end

    return SnippetModule


def _best_tracker_class():
    import lightning as L

    class BestStates(L.Callback):
        """Keeps in memory the weights of the best epoch by validation loss and by validation μAP,
        and a per-epoch history, shown as one progress bar over epochs."""

        def __init__(self, max_epochs: int, progress: bool, desc: str):
            self.best = {"loss": (float("inf"), -1, None), "uap": (-float("inf"), -1, None)}
            self.history: list[dict] = []
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

        def on_fit_end(self, trainer, pl_module):
            if self.bar is not None:
                self.bar.close()

    return BestStates


# -- evaluation ---------------------------------------------------------------------------------------
@torch.inference_mode()
def predict_snippets(model: DIViTA, snippets: SnippetSet, batch_size: int = 256, device: str | torch.device = "cpu") -> np.ndarray:
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
    from divita.evaluation.metrics import CONVENTIONS, multilabel_metrics

    return [{**keys, "convention": c, **multilabel_metrics(y_true, y_prob, convention=c)} for c in CONVENTIONS]


# -- checkpoints --------------------------------------------------------------------------------------
def save_checkpoint(path: Path, model: DIViTA, cfg: TrainConfig, features: dict, **extra) -> None:
    payload = {
        "format": CHECKPOINT_FORMAT,
        "genres": list(GENRES),
        "model_config": model.cfg.to_dict(),
        "train_config": asdict(cfg),
        "features": features,
        "state_dict": model.state_dict(),
        **extra,
    }
    atomic_write_bytes(Path(path), lambda f: torch.save(payload, f))


def check_features(path: str | Path, cfg: ModelConfig, expect_features: dict[str, int]) -> None:
    """Refuse a checkpoint (at ``path``) whose streams' feature sizes differ from the data's (modality -> size)."""
    have = dict(zip(cfg.modalities, cfg.num_features))
    if have != expect_features:
        raise DivitaError(path, f"checkpoint from another configuration: it expects features {have}, the data has {expect_features}")


def load_checkpoint(path: str | Path, expect_features: dict[str, int] | None = None) -> tuple[DIViTA, dict]:
    """Load a run's checkpoint -> (model in eval mode, checkpoint dict).

    ``expect_features`` (modality -> num_features) checks the checkpoint fits the data it will see.
    """
    path = Path(path)
    if not path.is_file():
        raise DivitaError(path, "checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise DivitaError(path, f"not a readable checkpoint ({type(e).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise DivitaError(path, f"not a divita checkpoint (expected format {CHECKPOINT_FORMAT})")
    if list(ckpt.get("genres", [])) != list(GENRES):
        raise DivitaError(path, f"checkpoint predicts genres {ckpt.get('genres')}, expected {list(GENRES)}")
    mcfg = ModelConfig(**ckpt["model_config"])
    if expect_features is not None:
        check_features(path, mcfg, expect_features)
    model = DIViTA(mcfg)
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise DivitaError(path, f"checkpoint weights do not fit its configuration ({first})") from None
    return model.eval(), ckpt


def read_finished_run(run_dir: Path) -> dict | None:
    """hparams of a finished run (metrics.csv present), else None."""
    if (run_dir / "metrics.csv").is_file() and (run_dir / "hparams.json").is_file():
        return json.loads((run_dir / "hparams.json").read_text())
    return None


# -- the run ------------------------------------------------------------------------------------------
@dataclass
class RunResult:
    run_dir: Path
    metrics: Any  # pandas DataFrame of metrics.csv
    best_epoch: int
    epochs: int
    seconds: float
    history: list[dict] = field(default_factory=list)


def train_model(cfg: TrainConfig, run_dir: str | Path, cache: FeatureCache | None = None, progress: bool = True, desc: str | None = None) -> RunResult:
    """Train, select the best epoch, evaluate val and test, and write the run directory."""
    import lightning as L
    import pandas as pd
    from lightning.pytorch.callbacks import EarlyStopping

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    threads = cfg.threads or default_threads()
    t0 = time.perf_counter()

    sets, features = load_split(cfg, cache or FeatureCache(progress))
    L.seed_everything(cfg.seed, workers=False, verbose=False)
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
    lightning_precision, compute_dtype = resolve_precision(cfg.precision, cfg.accelerator)
    module = _lightning_module_class()(
        model_cfg.to_dict(), cfg.lr, cfg.weight_decay, cfg.scheduler_patience, len(sets["val"]), sets["val"].labels,
        compute_dtype=compute_dtype, threads=threads,
    )
    tracker = _best_tracker_class()(cfg.max_epochs, progress, desc or f"train {run_dir.name}")
    trainer = L.Trainer(
        max_epochs=cfg.max_epochs,
        accelerator=cfg.accelerator,
        devices=1,
        precision=lightning_precision,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[EarlyStopping(monitor="val_loss", mode="min", patience=cfg.stop_patience), tracker],
    )
    # late fusion on CPU runs one head per thread, each op in line: no intra-op threads on top of those
    parallel_heads = module.runner.parallel(len(module.model.heads), torch.device("cuda" if uses_cuda(cfg.accelerator) else "cpu"))
    torch.set_num_threads(1 if parallel_heads else threads)
    retain_freed_memory()
    switch = sys.getswitchinterval()
    if parallel_heads:  # a head thread back from a torch op gets the GIL sooner (default 5 ms)
        sys.setswitchinterval(0.0005)
    try:
        trainer.fit(
            module,
            train_dataloaders=EpochBatches(sets["trn"], cfg.batch_size, cfg.seed, prefetch=threads > 1),
            val_dataloaders=EvalBatches(sets["val"], cfg.eval_batch_size),
        )
    finally:
        sys.setswitchinterval(switch)

    torch.set_num_threads(threads)
    model = module.model.cpu()
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
    )
    for s in ("val", "tst"):
        atomic_write_bytes(
            run_dir / f"predictions_{s}.npz",
            lambda f, s=s: np.savez(f, mids=np.array(sets[s].mids), y_true=sets[s].labels, y_prob=selected["probs"][s]),
        )
    atomic_write_text(run_dir / "history.csv", pd.DataFrame(tracker.history).to_csv(index=False))
    atomic_write_text(run_dir / "hparams.json", json.dumps({**cfg.identity(), "features": features}, indent=2, default=str))
    metrics = pd.DataFrame(rows)
    atomic_write_text(run_dir / "metrics.csv", metrics.to_csv(index=False, float_format="%.6f"))
    return RunResult(run_dir, metrics, selected["epoch"], len(tracker.history), time.perf_counter() - t0, tracker.history)
