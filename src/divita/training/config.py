"""One training run's configuration: :class:`TrainConfig`, the one place training defaults live.

Each field that is also a command-line option carries its help and choices in its metadata
(``field(metadata={"help": ..., "choices": ...})``); ``divita train``, ``reproduce`` and ``demo``
generate their options from them (:mod:`divita.cli._train_options`). Importable without torch, so that
``divita --help`` stays instant.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from divita.datasets.release import LABELS_FILE
from divita.errors import DivitaError
from divita.features.cache import CACHE_DTYPES, CACHE_ENV
from divita.hardware import cpu_has_native_bf16
from divita.model.names import AGGREGATORS, FUSIONS
from divita.training.protocol import parse_protocol

if TYPE_CHECKING:
    import torch

SELECTIONS = ("loss", "uap")
SPLITS = (0, 1, 2)
PRECISIONS = ("auto", "32", "bf16")  # the command line's; resolve_precision also takes Lightning's spellings
# earlier names of fields: still accepted as keywords and dict keys, and written beside the new ones to hparams.json
OLD_NAMES = {"ix": "image_store", "vx": "video_store"}
# identity fields added after runs were written: what a run that does not record one of them was trained with
ADDED_FIELDS = {"cache_dtype": "float32", "protocol": "divita"}


def option(default, help: str | None = None, choices: tuple | None = None, common: bool = True):
    """A TrainConfig field that is also a command-line option (``--name-with-dashes``).

    ``common``: one of the model and training options every training command shares
    (:func:`divita.cli._train_options.add_train_options`); else a command adds it by name."""
    return field(default=default, metadata={"help": help, "choices": choices, "common": common})


@dataclass
class TrainConfig:
    """Everything that defines a training run (the paper's defaults).

    ``ix``/``vx``: the earlier names of ``image_store``/``video_store``, still accepted as keywords
    (``TrainConfig(ix=...)``, ``dataclasses.replace(cfg, ix=...)``: given with the new name, the old one wins)
    and readable as properties; :meth:`from_dict` takes them as keys.
    """

    data_dir: str
    image_store: (
        str | None
    )  # image (ImageNet) store: directory name inside data_dir, a path or a URL; None = no image stream
    video_store: str | None  # video (Kinetics) store, None = no video stream
    split: int = 0
    labels: str = option(
        LABELS_FILE, "labels CSV in --data-dir (default %(default)s)", common=False
    )  # inside data_dir unless a path
    num_clips: int = option(30, "clips per snippet (default %(default)s)")
    batch_size: int = option(32)
    eval_batch_size: int = option(256, "snippets per evaluation batch")
    max_epochs: int = option(100)
    lr: float = option(1e-4, "AdamW (amsgrad) learning rate")
    weight_decay: float = option(0.01)  # AdamW's default, as in the authors' code
    scheduler_patience: int = option(10, "ReduceLROnPlateau patience (val loss)")
    stop_patience: int = option(20, "early stopping patience (val loss)")
    select_by: str = option("loss", "best epoch by val loss (paper) or val μAP", SELECTIONS)
    seed: int = option(0)
    fusion: str = option("late", None, FUSIONS)
    aggregator: str = option("tsfm", "clip aggregation (tsfm = the paper's)", AGGREGATORS)
    hidden: int = option(128)
    heads: int = option(4)
    ff_mult: int = option(6)
    dropout: float = option(0.25)
    threads: int | None = option(
        None, "CPU threads (default: the cores available); late fusion runs one head per thread"
    )
    accelerator: str = option("auto", "auto, cpu or gpu")
    precision: str = option(
        "auto",
        "auto: bfloat16 compute with float32 master weights where the CPU has native bf16 "
        "(AMX/AVX512-BF16), bf16 autocast on CUDA, else float32",
        PRECISIONS,
    )
    cache_dir: str | None = option(
        None,
        "feature cache directory: each store is copied there once, uncompressed, and "
        f"read from disk batch by batch (default: ${CACHE_ENV}, else "
        "DATA_DIR/.divita-cache); 'none' reads the stores into memory instead",
    )
    cache_dtype: str = option(
        "float32",
        "dtype of the cached features: float32 (exact, the default) or bfloat16 "
        "(half the disk and page cache; features rounded, so results differ slightly)",
        CACHE_DTYPES,
    )
    protocol: str = option(
        "divita",
        "divita (default) or paper: the authors' code's protocol (their transformer block, no padding masks, "
        "their validation loss, float32); paper+CHANGE[+CHANGE] adds divita's changes alone (masking, layer, "
        "snippet-loss, fused-adamw, bf16)",
    )

    def __post_init__(self):
        if not self.image_store and not self.video_store:
            raise DivitaError(None, "at least one of --image-store (--ix) and --video-store (--vx) must name a store")
        if self.select_by not in SELECTIONS:
            raise DivitaError(None, f"select_by must be one of {SELECTIONS}, got {self.select_by!r}")
        if self.fusion not in FUSIONS:
            raise DivitaError(None, f"fusion must be one of {FUSIONS}, got {self.fusion!r}")
        if self.aggregator not in AGGREGATORS:
            raise DivitaError(None, f"aggregator must be one of {AGGREGATORS}, got {self.aggregator!r}")
        if self.split not in SPLITS:
            raise DivitaError(None, f"split must be 0, 1 or 2, got {self.split}")
        parse_protocol(self.protocol)  # raises on an unknown protocol
        if self.cache_dtype not in CACHE_DTYPES:
            raise DivitaError(None, f"cache_dtype must be one of {CACHE_DTYPES}, got {self.cache_dtype!r}")

    @property
    def ix(self) -> str | None:
        """The earlier name of :attr:`image_store`."""
        return self.image_store

    @ix.setter
    def ix(self, value: str | None) -> None:
        self.image_store = value

    @property
    def vx(self) -> str | None:
        """The earlier name of :attr:`video_store`."""
        return self.video_store

    @vx.setter
    def vx(self, value: str | None) -> None:
        self.video_store = value

    @property
    def stores(self) -> dict[str, str]:
        """modality name -> store reference, image first."""
        return {m: s for m, s in (("image", self.image_store), ("video", self.video_store)) if s}

    def identity(self) -> dict[str, Any]:
        """The fields that change results (not where files are or how many threads run). ``cache_dtype`` is one
        (bfloat16 rounds the features); ``cache_dir`` is not (a float32 cache gives the in-memory path's results)."""
        d = asdict(self)
        for k in ("data_dir", "threads", "accelerator", "eval_batch_size", "precision", "cache_dir"):
            d.pop(k)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """From a checkpoint's ``train_config`` or an hparams.json: unknown keys are ignored, and the earlier
        keys ``ix``/``vx`` stand for ``image_store``/``video_store`` where those are absent."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in with_new_names(d).items() if k in names})


def _accept_old_names(init):
    """The dataclass's ``__init__``, taking ``ix=``/``vx=`` for ``image_store=``/``video_store=``."""

    @functools.wraps(init)  # inspect.signature still shows the fields
    def __init__(self, *args, **kwargs):
        for old, new in OLD_NAMES.items():
            if old in kwargs:
                kwargs[new] = kwargs.pop(old)
        init(self, *args, **kwargs)

    return __init__


TrainConfig.__init__ = _accept_old_names(TrainConfig.__init__)


def with_old_names(d: dict) -> dict:
    """``d`` (TrainConfig keys) with ``ix``/``vx`` beside ``image_store``/``video_store``: the keys divita wrote
    before the rename, kept in hparams.json and checkpoints because users' scripts read them."""
    out = {}
    for k, v in d.items():
        out[k] = v
        old = next((o for o, n in OLD_NAMES.items() if n == k), None)
        if old is not None:
            out[old] = v
    return out


def with_new_names(d: dict) -> dict:
    """``d`` with ``image_store``/``video_store`` taken from ``ix``/``vx`` where only the earlier keys are there
    (hparams.json and checkpoints written before the rename)."""
    out = dict(d)
    for old, new in OLD_NAMES.items():
        if new not in out and old in out:
            out[new] = out[old]
    return out


def uses_cuda(accelerator: str) -> bool:
    """Whether the ``accelerator`` setting (auto, cpu, gpu) trains on a CUDA device here."""
    import torch

    return accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()


def resolve_precision(precision: str, accelerator: str = "auto") -> tuple[str, torch.dtype]:
    """(Lightning's name of the precision, compute dtype of the model copy that runs forward/backward).

    On CPUs: "32-true" (no autocast) and, where bf16 matmuls are native (AMX, AVX512-BF16), "auto"
    runs a bfloat16 copy of the model with float32 master weights (:class:`divita.training.compute.ComputeCopy`).
    On CUDA: "bf16-mixed" (bfloat16 autocast); "auto" on a GPU without bfloat16 trains in float32 ("32-true":
    float16 autocast would need loss scaling, which the manual steps do not do).
    """
    import torch

    if precision not in ("auto", "32", "fp32", "32-true", "bf16", "bf16-mixed"):
        raise DivitaError(None, f"precision must be auto, 32 or bf16, got {precision!r}")
    if precision in ("32", "fp32", "32-true"):
        return "32-true", torch.float32
    if uses_cuda(accelerator):
        if precision == "auto" and not torch.cuda.is_bf16_supported():
            return "32-true", torch.float32
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
