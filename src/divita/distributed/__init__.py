"""Scale-out on Ray: feature extraction over a cluster and the Table 6 grid as Ray tasks.

- :mod:`divita.distributed.cluster`: import Ray (an optional extra), connect to a cluster, fail fast;
- :mod:`divita.distributed.extract`: ``divita extract --ray`` (:func:`extract_ray`);
- :mod:`divita.distributed.grid`: ``divita reproduce --ray`` (:func:`train_grid`).

Importing this package (or its modules) does not import Ray; the names below load their module on first use.
``divita.distributed.ray_backend`` (these modules' names in one) stays importable as an alias.
"""

from __future__ import annotations

import importlib

# public name -> the module that defines it
_NAMES = {
    "INSTALL_HINT": "cluster",
    "require_ray": "cluster",
    "connect": "cluster",
    "disconnect": "cluster",
    "check_reachable": "cluster",
    "EncoderWorker": "extract",
    "RayExtractStats": "extract",
    "RayOptions": "extract",
    "extract_ray": "extract",
    "frame_plan": "extract",
    "prepare_video": "extract",
    "run_ray_extraction": "extract",
    "train_grid": "grid",
    "train_run": "grid",
    "write_run_files": "grid",
}


def __getattr__(name: str):
    if name in _NAMES:
        value = getattr(importlib.import_module(f"divita.distributed.{_NAMES[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'divita.distributed' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_NAMES))


__all__ = sorted(_NAMES)
