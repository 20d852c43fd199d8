"""Reproduce the paper's Table 6: 8 rows (stores alone or fused) x 3 splits, then mean ± std tables.

Layout under ``out`` (default ``results``):
    transfer/runs/<row>/split<k>/     one training run each (see divita.training); finished runs are kept
    transfer/val.csv, transfer/tst.csv    per row: mean and sample std (ddof=1) over splits, in percent,
                                          of μAP, mAP, wAP, sAP and every genre (paper AP convention)
    transfer/val_sklearn.csv, ...         the same in the step-wise (scikit-learn) AP convention
    transfer/selection.csv                test μAP when the epoch is picked by val loss vs by val μAP
    transfer/table6.md                    ours next to the paper's Table 6, with the difference
Each table records the training protocol of its runs (``protocol`` column, a line of table6.md); a run directory
trained with another protocol is not a finished run of this one (the protocol is part of the run's identity).

Before the first run, each store the rows need is opened once for all labelled trailers: its feature cache
(:mod:`divita.features.cache`) is built where missing or stale, and every run of every row reads it (on Ray, the
workers open the caches the driver built); a second ``reproduce`` over the same data reuses them.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from divita.datasets.release import SUMMARY_LABELS, TABLE6, TABLE6_BY_NAME, Table6Row
from divita.errors import DivitaError, Interrupted
from divita.genres import GENRES
from divita.metrics import METRIC_NAMES
from divita.training import FeatureCache, TrainConfig, read_finished_run, train_model, with_old_names
from divita.training.config import ADDED_FIELDS


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def select_rows(names: Sequence[str] | None) -> list[Table6Row]:
    if not names:
        return list(TABLE6)
    by_slug = {slug(r.name): r for r in TABLE6}
    rows = []
    for n in names:
        row = TABLE6_BY_NAME.get(n) or by_slug.get(slug(n))
        if row is None:
            raise DivitaError(None, f"unknown Table 6 row {n!r}; choose from {', '.join(r.name for r in TABLE6)}")
        rows.append(row)
    return rows


def run_config(base: TrainConfig, row: Table6Row, split: int) -> TrainConfig:
    return replace(base, image_store=row.ix, video_store=row.vx, split=split)


def check_resumable(run_dir: Path, cfg: TrainConfig) -> bool:
    """True when ``run_dir`` holds a finished run of exactly ``cfg``; raises when it holds another one. A run
    written as it stood when it was interrupted (``"interrupted": true``) is not finished: it is trained again.
    A run that does not record a field added since (``ADDED_FIELDS``) was trained with that field's old behaviour."""
    done = read_finished_run(run_dir)
    if done is None:
        return False
    want = cfg.identity()
    have = {k: done.get(k, ADDED_FIELDS.get(k)) for k in want}
    if have != want:
        diff = ", ".join(f"{k}={have[k]!r} (asked {want[k]!r})" for k in want if have[k] != want[k])
        raise DivitaError(
            run_dir / "hparams.json",
            f"a finished run with another configuration: {diff}; use another --out or delete it",
        )
    return True


def summarise(runs: dict[tuple[str, int], Path], rows: list[Table6Row], subset: str, convention: str, selection: str):
    """mean/std over splits per row (percent) -> DataFrame indexed by row name."""
    import pandas as pd

    metrics = [*METRIC_NAMES, *GENRES]
    records = []
    for row in rows:
        vals = []
        for (name, _split), run_dir in sorted(runs.items()):
            if name != row.name:
                continue
            m = pd.read_csv(run_dir / "metrics.csv")
            m = m[(m.subset == subset) & (m.convention == convention) & (m.selection == selection)]
            vals.append(100 * m[metrics].to_numpy(float)[0])
        if not vals:
            continue
        a = np.stack(vals)
        rec = {"model": row.name, "splits": len(a)}
        for j, k in enumerate(metrics):
            rec[f"{k}_mean"] = a[:, j].mean()
            rec[f"{k}_std"] = a[:, j].std(ddof=1) if len(a) > 1 else 0.0
        records.append(rec)
    return pd.DataFrame(records).set_index("model")


def markdown_table(tst, rows: list[Table6Row], title: str = "Table 6 (test set)", protocol: str | None = None) -> str:
    """Ours vs the paper: mean±std per summary metric, and ours − paper; ``protocol``: the training protocol of
    the runs, as a line under the title."""
    head = [
        "Model",
        *[f"{SUMMARY_LABELS[m]} ours" for m in METRIC_NAMES],
        *[f"{SUMMARY_LABELS[m]} paper" for m in METRIC_NAMES],
        *[f"Δ{SUMMARY_LABELS[m]}" for m in METRIC_NAMES],
    ]
    lines = [f"### {title}", ""]
    if protocol is not None:
        lines += [f"Training protocol: {protocol}.", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        if row.name not in tst.index:
            continue
        r = tst.loc[row.name]
        ours = [f"{r[f'{m}_mean']:.2f}±{r[f'{m}_std']:.2f}" for m in METRIC_NAMES]
        paper = [f"{row.paper[m][0]:.2f}±{row.paper[m][1]:.2f}" for m in METRIC_NAMES]
        delta = [f"{r[f'{m}_mean'] - row.paper[m][0]:+.2f}" for m in METRIC_NAMES]
        lines.append("| " + " | ".join([row.name, *ours, *paper, *delta]) + " |")
    genre_head = ["Model", *GENRES]
    lines += [
        "",
        "Per-genre test AP (ours; the paper reports no per-genre AP for Table 6):",
        "",
        "| " + " | ".join(genre_head) + " |",
        "|" + "---|" * len(genre_head),
    ]
    for row in rows:
        if row.name in tst.index:
            r = tst.loc[row.name]
            lines.append(
                "| " + " | ".join([row.name, *[f"{r[f'{g}_mean']:.2f}±{r[f'{g}_std']:.2f}" for g in GENRES]]) + " |"
            )
    return "\n".join(lines) + "\n"


def run_line(
    label: str,
    metrics,
    best_epoch: int,
    epochs: int,
    seconds: float,
    select_by: str,
    load_seconds: float | None = None,
    builds: int = 0,
) -> str:
    """One progress line for a finished run: its best epoch and test μAP (paper convention), its time and of that
    the time loading its features took (``builds``: feature caches it had to build)."""
    m = metrics
    uap = m[(m.subset == "tst") & (m.convention == "paper") & (m.selection == select_by)]["uap"].iloc[0]
    timing = f"{seconds:.1f}s"
    if load_seconds is not None:
        timing += f", loading {load_seconds:.2f}s" + (f" incl. building {builds} feature cache(s)" if builds else "")
    return f"  {label}: best epoch {best_epoch}/{epochs}, test μAP {100 * uap:.2f} ({timing})"


def prepare_features(base: TrainConfig, stores: Sequence[str], cache: FeatureCache) -> str | None:
    """Open each of ``stores`` once for all labelled trailers, building the feature caches that are missing or
    stale; returns what was built, in words (None when nothing was)."""
    from divita.features.cache import cache_root
    from divita.training.batches import prepare_stores

    t = time.perf_counter()
    builds = cache.builds
    prepare_stores(base, list(stores), cache)
    root = cache_root(base.data_dir, base.cache_dir)
    if root is None or cache.builds == builds:
        return None
    return (
        f"features: {cache.builds - builds} feature cache(s) built in {time.perf_counter() - t:.1f}s "
        f"({base.cache_dtype}, in {root}); every run reads them"
    )


def reproduce(
    data_dir: str | Path,
    out: str | Path = "results",
    rows: Sequence[str] | None = None,
    splits: Sequence[int] = (0, 1, 2),
    base: TrainConfig | None = None,
    progress: bool = True,
    ensure_data: Callable[[list[str]], None] | None = None,
    log: Callable[[str], None] = print,
    ray_address: str | None = None,
    ray_cpus_per_run: float | None = None,
    ray_gpus_per_run: float | None = None,
    stop=None,
) -> dict:
    """Train every (row, split) not finished yet, then write the tables. Returns paths and frames.

    ``stop`` (an object with ``is_set()``, see :func:`~divita.training.train_model`): once set, the current run
    ends after its step and is written as it stands, marked interrupted (a later call trains it again); the
    finished runs are kept, no table is written, and :class:`divita.errors.Interrupted` is raised.

    ``ray_address`` (None: train here, one run after the other): train the runs as Ray tasks in parallel
    ("local": a new local Ray instance, "auto": the running cluster, or an address), each with
    ``ray_gpus_per_run`` GPUs (default 1 when the cluster has GPUs) and ``ray_cpus_per_run`` CPUs; same run
    directories, same resume check, same tables (see :func:`divita.distributed.grid.train_grid`).
    """
    chosen = select_rows(rows)
    base = base or TrainConfig(data_dir=str(data_dir), image_store="-", video_store=None)
    base = replace(base, data_dir=str(data_dir))
    stores = sorted({s for r in chosen for s in r.stores})
    if ensure_data is not None:
        ensure_data(stores)
    out_dir = Path(out) / "transfer"
    cache = FeatureCache(progress)
    grid = [(row, split) for row in chosen for split in splits]
    runs: dict[tuple[str, int], Path] = {}
    todo = []
    for row, split in grid:
        run_dir = out_dir / "runs" / slug(row.name) / f"split{split}"
        runs[(row.name, split)] = run_dir
        if not check_resumable(run_dir, run_config(base, row, split)):
            todo.append((row, split))
    log(f"Table 6 grid: {len(grid)} runs, {len(grid) - len(todo)} already finished, {len(todo)} to train")
    from divita.features.cache import cache_root

    if todo and (ray_address is None or cache_root(base.data_dir, base.cache_dir) is not None):
        # each store once, before the runs (on Ray: the caches the workers open; stores in memory stay with the workers)
        built = prepare_features(base, sorted({s for row, _ in todo for s in row.stores}), cache)
        if built:
            log(built)
    if ray_address is not None:
        from divita.distributed.grid import train_grid

        def report(label: str, res: dict) -> None:
            log(
                run_line(
                    label,
                    res["metrics"],
                    res["best_epoch"],
                    res["epochs"],
                    res["seconds"],
                    base.select_by,
                    res.get("load_seconds"),
                    res.get("cache_builds", 0),
                )
            )

        jobs = [
            (run_config(base, row, split), runs[(row.name, split)], f"{row.name} split{split}") for row, split in todo
        ]
        if jobs:
            train_grid(
                jobs,
                ray_address,
                cpus_per_run=ray_cpus_per_run,
                gpus_per_run=ray_gpus_per_run,
                on_result=report,
                progress=progress,
            )
        return write_tables(out_dir, runs, chosen, splits, base)
    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc="reproduce", unit="run")
    finished = len(grid) - len(todo)
    try:
        for row, split in todo:
            cfg = run_config(base, row, split)
            label = f"{row.name} split{split}"
            builds = cache.builds
            try:
                res = train_model(cfg, runs[(row.name, split)], cache=cache, progress=progress, desc=label, stop=stop)
            except Interrupted as e:
                kept = f"{finished} of {len(grid)} runs finished and kept"
                raise Interrupted(e.signum, f"{label} {e.detail}; {kept}") from None
            if res.interrupted:
                raise Interrupted(
                    getattr(stop, "signum", None) or 2,
                    f"{label} stopped after {res.epochs} epoch(s) and written as it stands (not counted "
                    f"as finished); {finished} of {len(grid)} runs finished and kept",
                )
            finished += 1
            log(
                run_line(
                    label,
                    res.metrics,
                    res.best_epoch,
                    res.epochs,
                    res.seconds,
                    base.select_by,
                    res.load_seconds,
                    cache.builds - builds,
                )
            )
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return write_tables(out_dir, runs, chosen, splits, base)


def write_tables(
    out_dir: Path, runs: dict[tuple[str, int], Path], chosen: list[Table6Row], splits: Sequence[int], base: TrainConfig
) -> dict:
    """The tables of a finished grid (val/tst csv in both AP conventions, selection.csv, table6.md, grid.json)."""
    from divita.fileio import atomic_write_text

    out_dir.mkdir(parents=True, exist_ok=True)
    frames = {}
    for convention, suffix in (("paper", ""), ("sklearn", "_sklearn")):
        for subset in ("val", "tst"):
            df = summarise(runs, chosen, subset, convention, base.select_by)
            df.insert(0, "protocol", base.protocol)
            frames[f"{subset}{suffix}"] = df
            atomic_write_text(out_dir / f"{subset}{suffix}.csv", df.to_csv(float_format="%.2f"))
    sel = []
    for row in chosen:
        for selection in ("loss", "uap"):
            df = summarise({k: v for k, v in runs.items() if k[0] == row.name}, [row], "tst", "paper", selection)
            sel.append(
                {
                    "model": row.name,
                    "protocol": base.protocol,
                    "selected_by": selection,
                    "tst_uap_mean": df["uap_mean"].iloc[0],
                    "tst_uap_std": df["uap_std"].iloc[0],
                }
            )
    import pandas as pd

    selection_df = pd.DataFrame(sel)
    atomic_write_text(out_dir / "selection.csv", selection_df.to_csv(index=False, float_format="%.2f"))
    table = markdown_table(frames["tst"], chosen, protocol=base.protocol)
    atomic_write_text(out_dir / "table6.md", table)
    atomic_write_text(
        out_dir / "grid.json",
        json.dumps(
            {"rows": [r.name for r in chosen], "splits": list(splits), "config": with_old_names(base.identity())},
            indent=2,
            default=str,
        ),
    )
    return {"dir": out_dir, "table": table, "frames": frames, "selection": selection_df, "runs": runs}
