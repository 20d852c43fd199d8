"""divita: movie trailer genre classification with DIViTA on Trailers12k.

The pipeline, one package per stage (data flows top to bottom)::

    divita.video        decode a trailer at a fixed frame rate
    divita.shots        shot boundaries (a registry of detectors: TransNetV2, PySceneDetect, ...)
    divita.clips        shots cut into clips that never cross a cut
    divita.backbones    clip encoders (a registry of ImageNet 2D and Kinetics 3D backbones)
    divita.features     extraction into release-format zarr stores; snippets read back from them
    divita.model        the DIViTA heads
    divita.training     one training run (steps, epoch loop), its configuration and CPU speed-ups
    divita.metrics      the paper's metrics (a leaf every stage may import)
    divita.evaluation   the Table 6 grid
    divita.inference    genres of any trailer file from a checkpoint
    divita.reporting    pictures and markdown pages
    divita.datasets     the Trailers12k release, its download, synthetic data
    divita.distributed  extraction and the Table 6 grid on Ray
    divita.cli          the ``divita`` command, a thin layer over this API

The main entry points are importable from here (loaded on first use, so ``import divita`` stays cheap):
:func:`detect_shots`, :func:`extract_features`, :func:`train`, :class:`GenreClassifier`,
:class:`TrainConfig`, :func:`list_backbones`, :func:`list_detectors`.
"""

from __future__ import annotations

from divita.errors import DivitaError
from divita.genres import GENRES, NUM_GENRES
from divita.lazy import lazy_exports

__version__ = "0.1.0"

# the public API: name -> "module" or "module:attribute", imported on first access
_API = {
    "detect_shots": "divita.shots:detect",
    "list_detectors": "divita.shots.registry",
    "list_backbones": "divita.backbones.registry",
    "extract_features": "divita.features.extract:extract",
    "TrainConfig": "divita.training.config",
    "train": "divita.training.loop:train_model",
    "GenreClassifier": "divita.inference.predict",
}
__getattr__, __dir__, _lazy_all = lazy_exports(__name__, _API)
__all__ = ["DivitaError", "GENRES", "NUM_GENRES", "__version__", *_lazy_all]
