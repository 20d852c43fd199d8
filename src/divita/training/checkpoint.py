"""A run's files: the checkpoint (save, load, check it fits the data) and a finished run's hparams.json.
Every file is written atomically (a full disk leaves the previous file, or none, never half of one).

Files written by earlier versions are read through one function, :func:`upgrade_train_config` (the training
configuration's earlier keys), plus, for a checkpoint's weights, the earlier meaning of two aggregator names
(:func:`load_checkpoint`)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch

from divita.errors import DivitaError
from divita.fileio import atomic_write_bytes
from divita.genres import GENRES
from divita.model import DIViTA, ModelConfig
from divita.training.config import ADDED_FIELDS, OLD_NAMES, TrainConfig, with_old_names
from divita.training.protocol import build_model

CHECKPOINT_FORMAT = "divita-checkpoint/1"
# aggregator names whose meaning changed -> the name their earlier meaning has now (checkpoints whose head
# holds a projection, ``...project.weight``, were written before the authors' heads took these names)
RENAMED_AGGREGATORS = {"gru": "proj-gru", "conv": "proj-conv"}


def upgrade_train_config(d: dict) -> dict:
    """A training configuration as an earlier version wrote it (a checkpoint's ``train_config``, a run's
    hparams.json) in today's keys: ``image_store``/``video_store`` from the earlier ``ix``/``vx`` where only
    those are there, and each field added since (``ADDED_FIELDS``) set to what such a run was trained with.

    Args:
        d: the recorded dict; not modified.
    Returns:
        A new dict with today's keys (the earlier keys are kept: they are what users' scripts read).
    """
    out = dict(d)
    for old, new in OLD_NAMES.items():
        if new not in out and old in out:
            out[new] = out[old]
    for key, value in ADDED_FIELDS.items():
        out.setdefault(key, value)
    return out


def save_checkpoint(path: Path, model: DIViTA, cfg: TrainConfig, features: dict, **extra) -> None:
    """The model's weights and configuration, the run's TrainConfig (with the earlier keys ``ix``/``vx`` too),
    the stores' feature info, and ``extra`` entries (epoch, thresholds, ...), written atomically."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "genres": list(GENRES),
        "model_config": model.cfg.to_dict(),
        "train_config": with_old_names(asdict(cfg)),
        "features": features,
        "state_dict": model.state_dict(),
        **extra,
    }
    atomic_write_bytes(Path(path), lambda f: torch.save(payload, f))


def check_features(path: str | Path, cfg: ModelConfig, expect_features: dict[str, int]) -> None:
    """Refuse a checkpoint (at ``path``) whose streams' feature sizes differ from the data's (modality -> size)."""
    have = dict(zip(cfg.modalities, cfg.num_features))
    if have != expect_features:
        raise DivitaError(
            path, f"checkpoint from another configuration: it expects features {have}, the data has {expect_features}"
        )


def load_checkpoint(path: str | Path, expect_features: dict[str, int] | None = None) -> tuple[DIViTA, dict]:
    """Load a run's checkpoint -> (model in eval mode, checkpoint dict with its ``train_config`` in today's keys,
    :func:`upgrade_train_config`).

    ``expect_features`` (modality -> num_features) checks the checkpoint fits the data it will see. Raises
    :class:`DivitaError` for a missing, unreadable or foreign file, or one that does not fit.
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
    if mcfg.aggregator in RENAMED_AGGREGATORS and any(
        k.endswith(".project.weight") for k in ckpt.get("state_dict", {})
    ):
        mcfg.aggregator = RENAMED_AGGREGATORS[mcfg.aggregator]  # an earlier gru/conv head: today's proj-gru/proj-conv
    if isinstance(ckpt.get("train_config"), dict):
        ckpt["train_config"] = upgrade_train_config(ckpt["train_config"])
    if expect_features is not None:
        check_features(path, mcfg, expect_features)
    model = build_model(mcfg, checkpoint_protocol(ckpt))  # the model its training protocol built
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise DivitaError(path, f"checkpoint weights do not fit its configuration ({first})") from None
    return model.eval(), ckpt


def checkpoint_protocol(ckpt: dict) -> str:
    """The training protocol a checkpoint records (``divita`` for checkpoints written before protocols)."""
    return str(ckpt.get("protocol") or ckpt.get("train_config", {}).get("protocol") or "divita")


def read_finished_run(run_dir: Path) -> dict | None:
    """hparams of a finished run (metrics.csv present, not ``"interrupted"``) in today's keys
    (:func:`upgrade_train_config`), else None. An unreadable hparams.json counts as not finished (the run is
    trained again)."""
    run_dir = Path(run_dir)
    if not ((run_dir / "metrics.csv").is_file() and (run_dir / "hparams.json").is_file()):
        return None
    try:
        hparams = json.loads((run_dir / "hparams.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(hparams, dict) or hparams.get("interrupted"):
        return None
    return upgrade_train_config(hparams)
