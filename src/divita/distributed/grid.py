"""The Table 6 grid on Ray (``divita reproduce --ray``): each (row, split) is one Ray task.

A task (one GPU, or ``cpus_per_run`` CPUs) trains into a temporary directory on its worker and returns the
run's files; the driver writes them into the run directory with ``metrics.csv`` last, so finished runs are
recognised by :func:`divita.evaluation.reproduce.check_resumable` exactly as the local grid's.

Features: each task reads its stores through the feature caches (:mod:`divita.features.cache`) that the driver
built before submitting (``divita reproduce`` does), at the same absolute cache directory; a node that does not
see that directory builds its own copy once (one builder per store at a time), and every later run reads it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from divita.distributed.cluster import (
    TASK_RETRIES,
    cancel_all,
    connect,
    disconnect,
    is_local_address,
    ray_reason,
    remote,
    require_ray,
)
from divita.errors import DivitaError
from divita.features.cache import NO_CACHE, cache_root

_TRAIN_CACHE = None


def _train_cache(cfg):
    """A per-worker-process feature cache holding only the stores of the current run (a worker that trains
    several runs of one row in turn opens its stores once; with ``--cache-dir none``, memory stays at one row's
    stores)."""
    global _TRAIN_CACHE
    from divita.training import FeatureCache, resolve

    if _TRAIN_CACHE is None:
        _TRAIN_CACHE = FeatureCache(progress=False)
    _TRAIN_CACHE.keep_only([resolve(cfg.data_dir, ref) for ref in cfg.stores.values()])
    return _TRAIN_CACHE


def train_run(cfg) -> dict:
    """One training run on a Ray worker: trains into a temporary directory and returns the run's files, with the
    seconds its loading took and how many feature caches it had to build."""
    from divita.training import train_model

    try:
        cache = _train_cache(cfg)
        builds = cache.builds
        with tempfile.TemporaryDirectory(prefix="divita-run-") as tmp:
            res = train_model(cfg, tmp, cache=cache, progress=False)
            files = {f.name: f.read_bytes() for f in sorted(Path(tmp).iterdir()) if f.is_file()}
    except DivitaError as e:
        return {"error": (e.where, e.problem)}
    return {
        "files": files,
        "best_epoch": res.best_epoch,
        "epochs": res.epochs,
        "seconds": res.seconds,
        "metrics": res.metrics,
        "pid": os.getpid(),
        "load_seconds": res.load_seconds,
        "cache_builds": cache.builds - builds,
    }


def write_run_files(run_dir: Path, files: dict[str, bytes]) -> None:
    """A run's files, each atomically, ``metrics.csv`` last (its presence marks the run finished)."""
    from divita.fileio import atomic_write_bytes

    run_dir.mkdir(parents=True, exist_ok=True)
    for name in sorted(files, key=lambda n: n == "metrics.csv"):
        atomic_write_bytes(run_dir / name, lambda f, b=files[name]: f.write(b))


def train_grid(
    jobs: Sequence[tuple[Any, Path, str]],
    address: str | None = None,
    cpus_per_run: float | None = None,
    gpus_per_run: float | None = None,
    retries: int = TASK_RETRIES,
    on_result: Callable[[str, dict], None] | None = None,
    progress: bool = False,
) -> dict[str, dict]:
    """Train ``jobs`` ((TrainConfig, run_dir, label) each) as Ray tasks; each finished run is written into
    its run_dir as soon as it arrives. ``gpus_per_run``: default 1 when the cluster has GPUs, else 0;
    ``cpus_per_run``: default 1 with a GPU, else 2 (torch uses that many threads). Returns label -> result."""
    ray = require_ray()
    started = connect(address)
    results: dict[str, dict] = {}
    try:
        gpus = float(ray.cluster_resources().get("GPU", 0))
        if gpus_per_run is None:
            gpus_per_run = 1.0 if gpus > 0 else 0.0
        if cpus_per_run is None:
            cpus_per_run = 1.0 if gpus_per_run > 0 else 2.0
        cpus = float(ray.cluster_resources().get("CPU", 0))
        if cpus_per_run > cpus and is_local_address(address):
            raise DivitaError(
                None, f"--ray-cpus-per-run {cpus_per_run:g} is more than the {cpus:g} CPUs of this machine"
            )
        if gpus_per_run > 0 and gpus < gpus_per_run:
            raise DivitaError(address or "local", f"each run wants {gpus_per_run:g} GPU but the cluster has {gpus:g}")
        task = remote(train_run).options(num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=retries)
        running = {}
        for cfg, run_dir, label in jobs:
            c = replace(cfg, data_dir=str(Path(cfg.data_dir).resolve()))
            root = cache_root(c.data_dir, c.cache_dir)  # as the driver sees it (its DIVITA_CACHE, its directory)
            c = replace(c, cache_dir=NO_CACHE if root is None else str(root.resolve()))
            if c.threads is None:
                c = replace(c, threads=max(1, int(cpus_per_run)))
            if gpus_per_run <= 0 and c.accelerator == "auto":
                c = replace(c, accelerator="cpu")
            running[task.remote(c)] = (Path(run_dir), label)
        bar = None
        if progress and running:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(running), desc="reproduce (ray)", unit="run")
        try:
            while running:
                ready, _ = ray.wait(list(running), num_returns=1)
                run_dir, label = running.pop(ready[0])
                try:
                    res = ray.get(ready[0])
                except ray.exceptions.RayError as err:
                    raise DivitaError(
                        run_dir, f"training on Ray failed after {retries} retries: {ray_reason(err)}"
                    ) from None
                if "error" in res:
                    raise DivitaError(*res["error"])
                write_run_files(run_dir, res["files"])
                results[label] = res
                if on_result is not None:
                    on_result(label, res)
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
            cancel_all(running)
        return results
    finally:
        disconnect(started)


__all__ = ["train_grid", "train_run", "write_run_files"]
