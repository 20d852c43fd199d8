"""One training run's configuration: :class:`TrainConfig`, the one place training defaults live.

Each field that is also a command-line option carries its help and choices in its metadata
(``field(metadata={"help": ..., "choices": ...})``); ``divita train``, ``reproduce`` and ``demo``
generate their options from them (:mod:`divita.cli._train_options`). Importable without torch, so that
``divita --help`` stays instant.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from divita.datasets.release import LABELS_FILE
from divita.errors import DivitaError
from divita.features.cache import CACHE_DTYPES, CACHE_ENV
from divita.hardware import TRAIN_PRECISIONS, cpu_has_native_bf16, precision_name
from divita.model.registry import AGGREGATORS, FUSIONS
from divita.training.protocol import parse_protocol

if TYPE_CHECKING:
    import torch

SELECTIONS = ("loss", "uap")
SPLITS = (0, 1, 2)
# earlier names of fields, written beside the new ones to hparams.json and checkpoints (users' scripts read
# them); runs that hold only them are read by divita.training.checkpoint.upgrade_train_config
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
    """Everything that defines a training run, with the paper's defaults except the epoch kept (the
    protocol's: best validation μAP for ``divita``). Available as `divita.TrainConfig`.

    Each field's metadata gives its command-line flag of ``divita train`` (``--max-epochs`` for
    ``max_epochs``...), help and choices. The main ones:

    Attributes:
        data_dir: the directory holding the stores and the labels.
        image_store: the image (ImageNet) store: a directory name inside ``data_dir``, a path or a URL; None:
            no image stream.
        video_store: the video (Kinetics) store, likewise; None: no video stream.
        split: the split, 0, 1 or 2.
        labels: the labels CSV (inside ``data_dir`` unless a path).
        num_clips: clips per snippet (30).
        batch_size: snippets per training batch (32).
        max_epochs: at most this many epochs (100), with early stopping after ``stop_patience`` (20).
        lr: AdamW (amsgrad) learning rate (1e-4), ``weight_decay`` 0.01, ReduceLROnPlateau after
            ``scheduler_patience`` (10) epochs.
        select_by: the epoch kept: lowest val ``"loss"`` or best val ``"uap"`` (μAP); None (the default): the
            protocol's (:attr:`divita.training.protocol.Protocol.select_by`: ``"uap"`` for divita, ``"loss"``
            for paper, the authors'), set in its place when the config is made, so that hparams.json and the
            checkpoint record the rule the run used.
        fusion: ``"late"`` (mean of per-modality logits) or ``"early"`` (one head over concatenated features).
        aggregator: a clip aggregation of `AGGREGATORS` (``"tsfm"``, the paper's transformer, by default).
        hidden: the projection's size (128); ``heads`` (4), ``ff_mult`` (6) and ``dropout`` (0.25) the
            transformer's.
        precision: ``"auto"``, ``"float32"``, ``"bfloat16"``...: how the model computes.
        cache_dir: the feature cache directory (None: ``$DIVITA_CACHE``, else ``data_dir/.divita-cache``;
            ``"none"``: read the stores into memory).

    Raises:
        DivitaError: a bad value (no store, an unknown aggregator, fusion, selection, split or cache dtype).
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
    select_by: str | None = option(
        None,
        "the epoch kept: lowest val loss or best val μAP (default: the protocol's, uap for divita, loss for "
        "paper; runs before this default kept loss: --select-by loss reproduces them)",
        SELECTIONS,
    )
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
        TRAIN_PRECISIONS,
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
        "their validation loss, float32, the epoch of lowest validation loss); paper+CHANGE[+CHANGE] adds "
        "divita's changes alone (masking, layer, snippet-loss, fused-adamw, bf16)",
    )

    def __post_init__(self):
        if not self.image_store and not self.video_store:
            raise DivitaError(None, "at least one of --image-store (--ix) and --video-store (--vx) must name a store")
        protocol = parse_protocol(self.protocol)  # raises on an unknown protocol
        if self.select_by is None:
            self.select_by = protocol.select_by
        if self.select_by not in SELECTIONS:
            raise DivitaError(None, f"select_by must be one of {SELECTIONS}, got {self.select_by!r}")
        if self.fusion not in FUSIONS:
            raise DivitaError(None, f"fusion must be one of {FUSIONS}, got {self.fusion!r}")
        if self.aggregator not in AGGREGATORS:
            raise DivitaError(None, f"aggregator must be one of {tuple(AGGREGATORS)}, got {self.aggregator!r}")
        if self.split not in SPLITS:
            raise DivitaError(None, f"split must be 0, 1 or 2, got {self.split}")
        if self.cache_dtype not in CACHE_DTYPES:
            raise DivitaError(None, f"cache_dtype must be one of {CACHE_DTYPES}, got {self.cache_dtype!r}")

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
        """From a checkpoint's ``train_config`` or an hparams.json in today's keys (``load_checkpoint`` and
        ``read_finished_run`` upgrade earlier ones); other keys (``ix``, ``features``, ...) are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


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

    precision = precision_name(precision, TRAIN_PRECISIONS)  # auto, float32 or bfloat16
    if precision == "float32":
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
