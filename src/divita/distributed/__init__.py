"""Scale-out on Ray: feature extraction over a cluster and the Table 6 grid as Ray tasks.

- :mod:`divita.distributed.cluster`: import Ray (an optional extra), connect to a cluster, fail fast;
- :mod:`divita.distributed.extract`: ``divita extract --ray`` (:func:`extract_ray`), the driver;
- :mod:`divita.distributed.options`: how wide it runs (:class:`RayOptions`) and what it measured;
- :mod:`divita.distributed.workers`: its prepare tasks and encoder actors;
- :mod:`divita.distributed.grid`: ``divita reproduce --ray`` (:func:`train_grid`).

Importing this package (or its modules) does not import Ray; the names below load their module on first use.
"""

from __future__ import annotations

from divita.lazy import lazy_exports

_EXPORTS = {
    "INSTALL_HINT": "cluster",
    "require_ray": "cluster",
    "connect": "cluster",
    "disconnect": "cluster",
    "check_reachable": "cluster",
    "extract_ray": "extract",
    "RayExtractStats": "options",
    "RayOptions": "options",
    "EncoderWorker": "workers",
    "frame_plan": "workers",
    "prepare_video": "workers",
    "train_grid": "grid",
    "train_run": "grid",
    "write_run_files": "grid",
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
