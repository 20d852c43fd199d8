"""Running a study: its feature variants extracted, its labels, one training run per (row, split) reusing the
Table 6 machinery, and its table (:func:`run_training_study`).

A study lists :class:`Row` s (one line of its table: a variant of what it compares, on a backbone); each row
names the :class:`RunSpec` that trains it (streams of features and training overrides) and how that run is
scored (``all`` snippets of a trailer, or its ``central`` one). :func:`run_training_study` then

1. extracts every feature variant the rows need, once: ``FEATURES/<key>/`` holds the stores of one
   feature variant (an :class:`~divita.features.plan.ExtractionSettings` without backbones: shot detector, frame
   rate, clip rules, weights), ``<key>`` readable and ending in a hash of those settings
   (:func:`divita.studies.variants.variant_key`), so a variant another study (or an earlier run) already made is
   reused, and an interrupted extraction resumes (:func:`divita.features.extract.extract`);
2. writes ``OUT/<study>/mtgc.csv``: the ``--labels`` (splits generated, seeded, when the CSV has none) of the
   trailers present in every store the study uses, so that all its rows train and test on the same trailers;
3. trains every (run, split) not finished yet into ``OUT/<study>/runs/<variant>/<backbone>/split<k>/``
   (:func:`divita.training.train_model`; finished runs are recognised as by ``divita reproduce``, and with
   ``--ray`` the runs are Ray tasks, :func:`divita.distributed.grid.train_grid`);
4. writes ``OUT/<study>.csv`` (one row per variant x backbone: mean and std over splits, in percent, of the test
   μAP, mAP, wAP and sAP in both AP conventions), ``OUT/<study>.md`` (the table, and the paper's reported
   differences next to ours where the paper gives them) and ``OUT/<study>.png`` (:mod:`divita.studies.tables`).

A killed study rerun with the same command redoes nothing that finished: extraction skips committed videos,
training skips finished runs, and the tables are written from the run directories.
"""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from divita.errors import DivitaError
from divita.features.plan import ExtractionSettings
from divita.studies.options import StudyOptions
from divita.studies.tables import summarise, write_outputs
from divita.studies.variants import Row, RunJob, RunSpec, variant_key, variant_settings

if TYPE_CHECKING:
    import pandas as pd

    from divita.studies.base import Study
    from divita.studies.tables import StudyResult

VARIANT_FILE = "variant.json"
LABELS_FILE = "mtgc.csv"

Log = Callable[[str], None]


# ------------------------------------------------------------------------------------------ step 1: features


def store_path(opts: StudyOptions, features: ExtractionSettings, backbone: str) -> Path:
    """Where the store of ``backbone`` under ``features`` lives."""
    from divita.backbones import get_spec
    from divita.features.store import store_dir_name

    spec = get_spec(backbone)
    return (
        opts.features_dir
        / variant_key(features)
        / store_dir_name(spec.store_prefix, backbone, features.fps, features.fpc)
    )


def _failed_ids(directory: Path) -> set[str]:
    import csv

    path = directory / "failures.csv"
    if not path.is_file():
        return set()
    with open(path, newline="") as f:
        return {Path(r["video"]).stem for r in csv.DictReader(f) if r.get("video")}


def ensure_features(
    opts: StudyOptions, streams: Sequence[tuple[ExtractionSettings, str]], videos: Sequence[Path], log: Log
) -> dict:
    """Extract what is missing of ``videos`` in every (variant, backbone) store; returns (variant, backbone) -> store
    path.

    One extraction per variant key (every backbone of it decodes the video once); a variant whose stores already
    hold every video (or its recorded failure) is not touched, so a finished study reruns without loading a
    network."""
    from divita.features.store import committed_ids
    from divita.fileio import atomic_write_text

    ids = {p.stem for p in videos}
    by_key: dict[str, tuple[ExtractionSettings, list[str]]] = {}
    for features, backbone in streams:
        names = by_key.setdefault(variant_key(features), (features, []))[1]
        if backbone not in names:
            names.append(backbone)
    paths = {(features, b): store_path(opts, features, b) for features, b in streams}
    for i, (key, (features, backbones)) in enumerate(by_key.items(), 1):
        directory = opts.features_dir / key
        stores = [store_path(opts, features, b) for b in backbones]
        done = set.intersection(*(committed_ids(p) for p in stores)) | _failed_ids(directory)
        label = f"features {i}/{len(by_key)} {directory.name} ({', '.join(backbones)})"
        if ids <= done:
            log(f"{label}: complete")
            continue
        log(f"{label}: {len(ids - done)} of {len(ids)} videos to extract")
        directory.mkdir(parents=True, exist_ok=True)
        known = sorted(set(backbones) | _known_backbones(directory))
        text = json.dumps({"settings": variant_settings(features), "backbones": known}, indent=2)
        atomic_write_text(directory / VARIANT_FILE, text + "\n")
        summary = _extract(opts, replace(features, backbones=tuple(backbones)), directory, videos, log)
        if summary.failed:
            log(f"{label}: {len(summary.failed)} video(s) failed, left out (see {directory / 'failures.csv'})")
    return paths


def _known_backbones(directory: Path) -> set[str]:
    try:
        return set(json.loads((directory / VARIANT_FILE).read_text()).get("backbones", []))
    except (OSError, ValueError):
        return set()


def _extract(opts: StudyOptions, settings: ExtractionSettings, directory: Path, videos: Sequence[Path], log: Log):
    """One variant's extraction (``settings`` with its backbones) into ``directory``: locally, or on Ray with
    ``opts.ray``."""
    run = dict(settings=settings, threads=opts.threads, decode_threads=opts.decode_threads, progress=opts.progress)
    if opts.ray is not None:
        from divita.distributed.extract import extract_ray

        return extract_ray(videos, None, directory, address=opts.ray, log=log, **run)
    from divita.features.extract import extract

    return extract(videos, None, directory, device=opts.device, log=log, **run)


# ------------------------------------------------------------------------------------------ step 2: labels


def study_videos(opts: StudyOptions, log: Log) -> tuple[list[Path], pd.DataFrame]:
    """The labelled videos found in ``opts.videos`` and their labels table (mtgc.csv's columns): the CSV's splits, or
    splits generated (stratified, seeded by ``split_seed``) over those videos, the same for every study. Checks the
    labels before anything is extracted; videos without a label are left out."""
    import pandas as pd

    from divita.features.outputs import labels_table
    from divita.video import find_videos

    if not opts.labels:
        raise DivitaError(None, "--labels CSV is needed (mid and the 10 genre columns, optional split0..2)")
    videos = find_videos(opts.videos)
    if not videos:
        raise DivitaError(None, "no video files found in the inputs")
    ids = {p.stem for p in videos}

    def quiet(line: str) -> None:  # labels_table speaks as `divita extract`
        log(line.replace("divita extract: ", "", 1).replace("have no features (failed or not given)", "have no video"))

    text = labels_table(opts.labels, ids, seed=opts.split_seed, log=quiet)
    table = pd.read_csv(io.StringIO(text), dtype={"mid": str})
    labelled = set(table["mid"])
    unlabelled = sorted(ids - labelled)
    if unlabelled:
        log(
            f"{len(unlabelled)} video(s) have no label in {opts.labels} and are left out: "
            + ", ".join(unlabelled[:10])
            + (" ..." if len(unlabelled) > 10 else "")
        )
    return [p for p in videos if p.stem in labelled], table


def write_study_labels(
    table: pd.DataFrame, study_dir: Path, stores: Sequence[Path], log: Log, where: str | None = None
) -> Path:
    """``study_dir/mtgc.csv``: the rows of the labels ``table`` whose videos have features in every store of
    ``stores``, so that every row of the study trains and tests on the same trailers (rewritten only on change)."""
    from divita.features.store import committed_ids
    from divita.fileio import atomic_write_text

    complete = set.intersection(*(committed_ids(p) for p in stores))
    missing = table.loc[~table["mid"].isin(complete), "mid"].tolist()
    if missing:
        log(
            f"{len(missing)} labelled video(s) lack features in some store of the study (failed) and are left out: "
            + ", ".join(missing[:10])
            + (" ..." if len(missing) > 10 else "")
        )
    table = table[table["mid"].isin(complete)]
    if table.empty:
        raise DivitaError(where, "no labelled video has features in every store the study uses")
    study_dir.mkdir(parents=True, exist_ok=True)
    path = study_dir / LABELS_FILE
    text = table.to_csv(index=False)
    if not path.is_file() or path.read_text() != text:
        atomic_write_text(path, text)
    return path


# ------------------------------------------------------------------------------------------ step 3: runs


def plan_runs(opts: StudyOptions, study_dir: Path, rows: Sequence[Row], stores: dict, labels: Path) -> dict:
    """(RunSpec, split) -> RunJob for every run the rows need. Paths in the configurations are relative to
    ``opts.out`` (the runs' data directory), so a moved results folder still resumes."""
    base = opts.base_config()
    jobs: dict[tuple[RunSpec, int], RunJob] = {}
    for row in rows:
        spec = row.run
        refs = {"image_store": None, "video_store": None}
        for s in spec.streams:
            key = f"{s.modality}_store"
            if refs.get(key):
                raise DivitaError(
                    None, f"study run {spec.variant} {spec.backbone}: two streams in the {s.modality} slot"
                )
            refs[key] = os.path.relpath(stores[(s.features, s.backbone)], opts.out)
        for split in opts.splits:
            if (spec, split) in jobs:
                continue
            cfg = replace(base, split=split, labels=os.path.relpath(labels, opts.out), **refs, **dict(spec.overrides))
            jobs[(spec, split)] = RunJob(spec, split, cfg, study_dir / "runs" / spec.path / f"split{split}")
    return jobs


def train_runs(study: Study, opts: StudyOptions, jobs: Sequence[RunJob], log: Log, cache=None) -> None:
    """Train every job whose run directory does not hold its finished run (locally, or on Ray with ``opts.ray``).

    ``opts.stop`` (see :func:`divita.training.train_model`): once set, the current run ends after its step and is
    written as it stands, marked interrupted (a rerun trains it again); :class:`divita.errors.Interrupted` is raised
    saying how many runs are finished and kept."""
    from divita.errors import Interrupted
    from divita.evaluation.reproduce import check_resumable, run_line
    from divita.training import train_model

    todo = [j for j in jobs if not check_resumable(j.run_dir, j.cfg)]
    log(f"study {study.name}: {len(jobs)} runs, {len(jobs) - len(todo)} already finished, {len(todo)} to train")
    if not todo:
        return
    select_by = todo[0].cfg.select_by
    if opts.ray is not None:
        from divita.distributed.grid import train_grid

        def report(label: str, res: dict) -> None:
            log(run_line(label, res["metrics"], res["best_epoch"], res["epochs"], res["seconds"], select_by))

        train_grid(
            [(j.cfg, j.run_dir, j.label) for j in todo],
            opts.ray,
            cpus_per_run=opts.ray_cpus_per_run,
            gpus_per_run=opts.ray_gpus_per_run,
            on_result=report,
            progress=opts.progress,
        )
        return
    bar = None
    if opts.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc=f"study {study.name}", unit="run")
    finished = len(jobs) - len(todo)
    try:
        for j in todo:
            try:
                res = train_model(j.cfg, j.run_dir, cache=cache, progress=opts.progress, desc=j.label, stop=opts.stop)
            except Interrupted as e:
                raise Interrupted(
                    e.signum, f"{j.label} {e.detail}; {finished} of {len(jobs)} runs finished and kept"
                ) from None
            if res.interrupted:
                raise Interrupted(
                    getattr(opts.stop, "signum", None) or 2,
                    f"{j.label} stopped after {res.epochs} epoch(s) and written as it stands (not counted as "
                    f"finished); {finished} of {len(jobs)} runs finished and kept",
                )
            finished += 1
            log(run_line(j.label, res.metrics, res.best_epoch, res.epochs, res.seconds, select_by))
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()


def run_training_study(study: Study, opts: StudyOptions, log: Log | None = None) -> StudyResult:
    """Steps 1-4 of the module docstring for ``study``'s rows."""
    from divita.training import FeatureCache

    log = log or (lambda s: print(s, file=sys.stderr))
    rows = study.rows(opts)
    if not rows:
        raise DivitaError(None, f"study {study.name}: nothing to compare")
    study_dir = opts.out / study.name
    videos, table = study_videos(opts, log)
    streams = [(s.features, s.backbone) for row in rows for s in row.run.streams]
    stores = ensure_features(opts, streams, videos, log)
    labels = write_study_labels(table, study_dir, sorted(set(stores.values())), log, opts.labels)
    jobs = plan_runs(opts, study_dir, rows, stores, labels)
    cache = FeatureCache(opts.progress)
    train_runs(study, opts, list(jobs.values()), log, cache)
    files = {(row, s): study.metrics_file(row, jobs[(row.run, s)], cache) for row in rows for s in opts.splits}
    table = summarise(rows, files, opts.splits, opts.base_config().select_by)
    result = write_outputs(study, opts, table, log, extra_md=_where(opts, study_dir, stores))
    result.runs = {job.label: job.run_dir for job in jobs.values()}
    return result


def _where(opts: StudyOptions, study_dir: Path, stores: dict) -> str:
    lines = [
        "## Files",
        "",
        f"- runs: `{study_dir / 'runs'}/<variant>/<backbone>/split<k>/`",
        f"- labels (the trailers every row trains and tests on): `{study_dir / LABELS_FILE}`",
    ]
    for (features, backbone), path in sorted(stores.items(), key=lambda kv: str(kv[1])):
        lines.append(f"- {backbone} features, {json.dumps(variant_settings(features))}: `{path}`")
    return "\n".join(lines)


__all__ = [
    "LABELS_FILE",
    "VARIANT_FILE",
    "ensure_features",
    "plan_runs",
    "run_training_study",
    "store_path",
    "study_videos",
    "train_runs",
    "write_study_labels",
]
