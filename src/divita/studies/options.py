"""What a study run needs: :class:`StudyOptions` (the extraction every variant shares, as one
:class:`~divita.features.plan.ExtractionSettings`, and the run's own options), and ``--weights`` per backbone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from divita.errors import DivitaError
from divita.features.plan import ExtractionSettings

if TYPE_CHECKING:
    from divita.training import TrainConfig

FEATURES_DIR = "features"


@dataclass
class StudyOptions:
    """Everything a study run needs. ``extraction``: the settings every feature variant shares unless the study
    varies them (its backbones are ignored: each variant is one backbone's); ``weights``: backbone -> weights
    ("default", "random", a checkpoint path), ``"*"`` for the others (default: ``extraction.weights``).
    ``extra``: the study's own options (see each study's ``add_arguments``)."""

    out: Path
    videos: Sequence[str] = ()
    labels: str | None = None
    backbones: Sequence[str] = ()
    splits: Sequence[int] = (0, 1, 2)
    train: TrainConfig | None = None
    features_dir: Path | None = None
    weights: dict[str, str] = field(default_factory=dict)
    extraction: ExtractionSettings = field(default_factory=ExtractionSettings)
    device: str = "auto"
    threads: int | None = None
    decode_threads: int = 0
    split_seed: int = 0
    ray: str | None = None
    ray_cpus_per_run: float | None = None
    ray_gpus_per_run: float | None = None
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)
    stop: Any = None  # a stop request (``is_set()``) that ends the current run after its step, as ``divita train``'s

    def __post_init__(self):
        self.out = Path(self.out)
        self.features_dir = Path(self.features_dir) if self.features_dir else self.out / FEATURES_DIR
        self.extraction = replace(self.extraction, backbones=())
        for s in self.splits:
            if s not in (0, 1, 2):
                raise DivitaError(None, f"split must be 0, 1 or 2, got {s}")
        if not self.splits:
            raise DivitaError(None, "no split given")

    def weights_for(self, backbone: str) -> str:
        """The weights of ``backbone``: its own, else ``"*"``'s, else the extraction's."""
        return str(self.weights.get(backbone, self.weights.get("*", self.extraction.weights)))

    def variant(self, backbone: str, **changes) -> ExtractionSettings:
        """The feature variant of ``backbone`` under these options (no backbones, its weights), with ``changes``
        (fields of ExtractionSettings, e.g. ``detector="fixed"``); a bad value is a DivitaError."""
        return replace(self.extraction, **{"weights": self.weights_for(backbone), **changes})

    def base_config(self) -> TrainConfig:
        """The TrainConfig every run starts from: ``train`` (or the defaults) with ``out`` as its data directory."""
        from divita.training import TrainConfig

        cfg = self.train or TrainConfig(data_dir=str(self.out), image_store="(per run)", video_store=None)
        return replace(cfg, data_dir=str(self.out), threads=cfg.threads or self.threads)


def parse_weights(text: str | None) -> dict[str, str]:
    """``--weights``: ``W`` for every backbone, or ``NAME=W[,NAME=W...]`` per backbone (``W``: default, random or a
    checkpoint path); a bare ``W`` among them applies to the backbones not named (``"*"``)."""
    out: dict[str, str] = {}
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        name, eq, value = part.partition("=")
        if eq:
            if not name.strip() or not value.strip():
                raise DivitaError(None, f"--weights: {part!r} is not NAME=WEIGHTS")
            out[name.strip()] = value.strip()
        else:
            out["*"] = part
    return out


__all__ = ["FEATURES_DIR", "StudyOptions", "parse_weights"]
