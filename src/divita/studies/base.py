"""What every study shares: feature variants keyed by their extraction settings, the study's labels, one training
run per (row, split) reusing the Table 6 machinery, and the three files each study writes.

A study lists :class:`Row` s (one line of its table: a variant of what it compares, on a backbone); each row
names the :class:`RunSpec` that trains it (streams of features and training overrides) and how that run is
scored (``all`` snippets of a trailer, or its ``central`` one). :func:`run_training_study` then

1. extracts every feature variant the rows need, once: ``FEATURES/<key>/`` holds the stores of one
   :class:`FeatureVariant` (shot detector, frame rate, clip rules, weights), ``<key>`` readable and ending in a
   hash of those settings, so a variant another study (or an earlier run) already made is reused, and an
   interrupted extraction resumes (:func:`divita.features.extract.extract`);
2. writes ``OUT/<study>/mtgc.csv``: the ``--labels`` (splits generated, seeded, when the CSV has none) of the
   trailers present in every store the study uses, so that all its rows train and test on the same trailers;
3. trains every (run, split) not finished yet into ``OUT/<study>/runs/<variant>/<backbone>/split<k>/``
   (:func:`divita.training.train_model`; finished runs are recognised as by ``divita reproduce``, and with
   ``--ray`` the runs are Ray tasks, :func:`divita.distributed.grid.train_grid`);
4. writes ``OUT/<study>.csv`` (one row per variant x backbone: mean and std over splits, in percent, of the test
   μAP, mAP, wAP and sAP in both AP conventions), ``OUT/<study>.md`` (the table, and the paper's reported
   differences next to ours where the paper gives them) and ``OUT/<study>.png``.

A killed study rerun with the same command redoes nothing that finished: extraction skips committed videos,
training skips finished runs, and the tables are written from the run directories.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from divita.errors import DivitaError

if TYPE_CHECKING:
    import argparse

    import pandas as pd

    from divita.training import TrainConfig

FEATURES_DIR = "features"
VARIANT_FILE = "variant.json"
LABELS_FILE = "mtgc.csv"
EVALUATIONS = ("all", "central")  # every snippet of a trailer, averaged | only its central snippet
METRICS = ("uap", "map", "wap", "sap")
METRIC_LABELS = {"uap": "μAP", "map": "mAP", "wap": "wAP", "sap": "sAP"}
CONVENTION_SUFFIX = {"paper": "", "sklearn": "_sklearn"}

Log = Callable[[str], None]


def slug(text: str) -> str:
    """A file-name-safe form of a row label: lower case, runs of other characters as one ``-``."""
    return re.sub(r"[^a-z0-9._]+", "-", str(text).lower()).strip("-") or "x"


# ------------------------------------------------------------------------------------------ feature variants


@dataclass(frozen=True)
class FeatureVariant:
    """How clip features are made, apart from the backbone: the shot detector (``fixed``: constant ``fpc``-frame
    segments, no detection), the frame rate, the clip rules, the frames a 2D backbone averages, the weights.

    Two variants with equal :meth:`settings` make the same features: they share one directory, ``key()``."""

    detector: str = "transnetv2"
    fps: float = 24.0
    fpc: int = 24
    min_clip_frames: int | None = None
    threshold: float = 0.5
    content_threshold: float = 27.0
    frames_per_clip_2d: int = 3
    weights: str = "default"

    def settings(self) -> dict[str, Any]:
        """The settings that change the features, canonical: what :meth:`key` hashes and ``variant.json`` holds."""
        from divita.clips import default_min_frames

        out: dict[str, Any] = {
            "detector": self.detector,
            "fps": float(self.fps),
            "fpc": int(self.fpc),
            "min_clip_frames": default_min_frames(self.fpc)
            if self.min_clip_frames is None
            else int(self.min_clip_frames),
            "frames_per_clip_2d": int(self.frames_per_clip_2d),
            "weights": str(self.weights),
        }
        if self.detector.startswith("transnetv2"):
            out["threshold"] = float(self.threshold)
        if "content" in self.detector:
            out["content_threshold"] = float(self.content_threshold)
        if self.detector == "fixed":
            out["segment_frames"] = int(self.fpc)
        return out

    def key(self) -> str:
        """The variant's directory name: ``<detector>_fps<fps>_fpc<fpc>[_random|_weights]_<hash of settings>``."""
        digest = hashlib.sha1(json.dumps(self.settings(), sort_keys=True).encode()).hexdigest()[:8]
        weights = "" if self.weights == "default" else ("_random" if self.weights == "random" else "_weights")
        return f"{slug(self.detector)}_fps{float(self.fps):g}_fpc{int(self.fpc)}{weights}_{digest}"

    def check(self) -> None:
        """The values :class:`~divita.features.plan.ExtractionSettings` would refuse, refused now."""
        from divita.shots import list_detectors

        if self.detector not in list_detectors():
            raise DivitaError(
                None, f"unknown shot detector {self.detector!r}; choose from: {', '.join(list_detectors())}"
            )
        if not self.fps or self.fps <= 0:
            raise DivitaError(None, f"fps must be positive, got {self.fps}")
        if self.fpc < 1:
            raise DivitaError(None, f"frames per clip must be at least 1, got {self.fpc}")
        if self.min_clip_frames is not None and not 1 <= self.min_clip_frames <= self.fpc:
            raise DivitaError(
                None, f"--min-clip-frames must be between 1 and fpc={self.fpc}, got {self.min_clip_frames}"
            )


@dataclass(frozen=True)
class Stream:
    """One input stream of a run: the DIViTA modality slot (``image`` or ``video``), its features and backbone."""

    modality: str
    features: FeatureVariant
    backbone: str


@dataclass(frozen=True)
class RunSpec:
    """One training configuration of a study (trained once per split): ``variant`` and ``backbone`` name its
    directory; ``streams`` its stores; ``overrides`` the TrainConfig fields it sets (aggregator, fusion, ...)."""

    variant: str
    backbone: str
    streams: tuple[Stream, ...]
    overrides: tuple[tuple[str, Any], ...] = ()

    @property
    def path(self) -> str:
        return f"{slug(self.variant)}/{slug(self.backbone)}"


@dataclass(frozen=True)
class Row:
    """One line of a study's table: ``variant`` x ``backbone``, from ``run`` scored on ``evaluation`` snippets."""

    variant: str
    backbone: str
    run: RunSpec
    evaluation: str = "all"


@dataclass
class RunJob:
    """A RunSpec on one split: its TrainConfig and directory."""

    spec: RunSpec
    split: int
    cfg: TrainConfig
    run_dir: Path

    @property
    def label(self) -> str:
        return f"{self.spec.variant} {self.spec.backbone} split{self.split}"


# ------------------------------------------------------------------------------------------ options


@dataclass
class StudyOptions:
    """Everything a study run needs. ``weights``: backbone -> weights ("default", "random", a checkpoint path),
    ``"*"`` for the others. ``extra``: the study's own options (see each study's ``add_arguments``)."""

    out: Path
    videos: Sequence[str] = ()
    labels: str | None = None
    backbones: Sequence[str] = ()
    splits: Sequence[int] = (0, 1, 2)
    train: TrainConfig | None = None
    features_dir: Path | None = None
    weights: dict[str, str] = field(default_factory=lambda: {"*": "default"})
    detector: str = "transnetv2"
    fps: float = 24.0
    fpc: int = 24
    min_clip_frames: int | None = None
    threshold: float = 0.5
    content_threshold: float = 27.0
    frames_per_clip_2d: int = 3
    precision: str = "auto"
    extract_batch_size: int = 16
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
        for s in self.splits:
            if s not in (0, 1, 2):
                raise DivitaError(None, f"split must be 0, 1 or 2, got {s}")
        if not self.splits:
            raise DivitaError(None, "no split given")

    def weights_for(self, backbone: str) -> str:
        return str(self.weights.get(backbone, self.weights.get("*", "default")))

    def variant(self, backbone: str, **changes) -> FeatureVariant:
        """The feature variant of ``backbone`` under these options, with ``changes`` (e.g. ``detector="fixed"``)."""
        base = FeatureVariant(
            detector=self.detector,
            fps=self.fps,
            fpc=self.fpc,
            min_clip_frames=self.min_clip_frames,
            threshold=self.threshold,
            content_threshold=self.content_threshold,
            frames_per_clip_2d=self.frames_per_clip_2d,
            weights=self.weights_for(backbone),
        )
        return replace(base, **changes)

    def base_config(self) -> TrainConfig:
        from divita.training import TrainConfig

        cfg = self.train or TrainConfig(data_dir=str(self.out), image_store="(per run)", video_store=None)
        return replace(cfg, data_dir=str(self.out), threads=cfg.threads or self.threads)


def parse_weights(text: str | None) -> dict[str, str]:
    """``--weights``: ``W`` for every backbone, or ``NAME=W[,NAME=W...]`` per backbone (``W``: default, random or a
    checkpoint path); a bare ``W`` among them applies to the backbones not named."""
    out = {"*": "default"}
    for part in (text or "default").split(","):
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


def single_stream(
    opts: StudyOptions, variant: str, backbone: str, features: FeatureVariant | None = None, **overrides
) -> RunSpec:
    """A run on one backbone's features: a 2D backbone in the image slot, a 3D one in the video slot."""
    from divita.backbones import get_spec

    modality = "image" if get_spec(backbone).kind == "2d" else "video"
    features = features or opts.variant(backbone)
    return RunSpec(variant, backbone, (Stream(modality, features, backbone),), tuple(sorted(overrides.items())))


# ------------------------------------------------------------------------------------------ the study


class Study:
    """One study: what it compares (``rows``) and what the paper says of it (``paper_lines``).

    Subclasses set ``name``, ``summary`` (one line), ``description`` and ``default_backbones``, add their own
    options (``add_arguments``, read back by ``configure`` into ``StudyOptions.extra``) and list their rows."""

    name = ""
    summary = ""
    description = ""
    default_backbones: tuple[str, ...] = ("shufflenet",)
    trains = True  # False: no videos, labels or training (cost)
    min_backbones = 1
    max_backbones: int | None = None

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The study's own command-line options."""

    def configure(self, args: argparse.Namespace) -> dict[str, Any]:
        """``StudyOptions.extra`` from the parsed options of :meth:`add_arguments`."""
        return {}

    def defaults(self) -> dict[str, Any]:
        """``StudyOptions.extra`` when the study runs from Python without options."""
        return {}

    def rows(self, opts: StudyOptions) -> list[Row]:
        raise NotImplementedError

    def compared(self, opts: StudyOptions) -> str:
        """One sentence: what the rows compare."""
        return ""

    def paper_lines(self, table: pd.DataFrame, opts: StudyOptions) -> list[str]:
        """Markdown lines: the differences the paper reports, next to ours (or why there are none)."""
        return []

    def metrics_file(self, row: Row, job: RunJob, cache) -> Path:
        """The metrics.csv-shaped file a row is scored from (``evaluation == "all"``: the run's own)."""
        if row.evaluation != "all":
            raise DivitaError(None, f"study {self.name}: no evaluation {row.evaluation!r}")
        return job.run_dir / "metrics.csv"

    def check_backbones(self, backbones: Sequence[str]) -> list[str]:
        from divita.backbones import get_spec

        names = list(backbones or self.default_backbones)
        for b in names:
            get_spec(b)
        if len(set(names)) != len(names):
            raise DivitaError(None, f"backbone listed twice: {', '.join(names)}")
        if len(names) < self.min_backbones or (self.max_backbones is not None and len(names) > self.max_backbones):
            want = (
                f"exactly {self.min_backbones}"
                if self.max_backbones == self.min_backbones
                else f"at least {self.min_backbones}"
            )
            raise DivitaError(None, f"study {self.name} needs {want} backbone(s), got {len(names)}: {', '.join(names)}")
        return names

    def run(self, opts: StudyOptions, log: Log | None = None) -> StudyResult:
        return run_training_study(self, opts, log)


@dataclass
class StudyResult:
    """What a study wrote: ``csv``, ``md`` and ``png`` paths, the table (a DataFrame) and its markdown text."""

    name: str
    csv: Path
    md: Path
    png: Path
    table: Any
    markdown: str
    runs: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ step 1: features


def store_path(opts: StudyOptions, features: FeatureVariant, backbone: str) -> Path:
    """Where the store of ``backbone`` under ``features`` lives."""
    from divita.backbones import get_spec
    from divita.features.store import store_dir_name

    spec = get_spec(backbone)
    return opts.features_dir / features.key() / store_dir_name(spec.store_prefix, backbone, features.fps, features.fpc)


def _failed_ids(directory: Path) -> set[str]:
    import csv

    path = directory / "failures.csv"
    if not path.is_file():
        return set()
    with open(path, newline="") as f:
        return {Path(r["video"]).stem for r in csv.DictReader(f) if r.get("video")}


def ensure_features(
    opts: StudyOptions, streams: Sequence[tuple[FeatureVariant, str]], videos: Sequence[Path], log: Log
) -> dict:
    """Extract what is missing of ``videos`` in every (variant, backbone) store; returns (variant, backbone) -> store
    path.

    One extraction per variant (every backbone of it decodes the video once); a variant whose stores already hold
    every video (or its recorded failure) is not touched, so a finished study reruns without loading a network."""
    from divita.features.store import committed_ids
    from divita.fileio import atomic_write_text

    ids = {p.stem for p in videos}
    by_variant: dict[FeatureVariant, list[str]] = {}
    for features, backbone in streams:
        by_variant.setdefault(features, [])
        if backbone not in by_variant[features]:
            by_variant[features].append(backbone)
    paths = {}
    for i, (features, backbones) in enumerate(by_variant.items(), 1):
        features.check()
        directory = opts.features_dir / features.key()
        stores = {b: store_path(opts, features, b) for b in backbones}
        paths.update({(features, b): p for b, p in stores.items()})
        done = set.intersection(*(committed_ids(p) for p in stores.values())) | _failed_ids(directory)
        label = f"features {i}/{len(by_variant)} {directory.name} ({', '.join(backbones)})"
        if ids <= done:
            log(f"{label}: complete")
            continue
        log(f"{label}: {len(ids - done)} of {len(ids)} videos to extract")
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write_text(
            directory / VARIANT_FILE,
            json.dumps(
                {"settings": features.settings(), "backbones": sorted(set(backbones) | _known_backbones(directory))},
                indent=2,
            )
            + "\n",
        )
        summary = _extract(opts, features, backbones, directory, videos, log)
        if summary.failed:
            log(f"{label}: {len(summary.failed)} video(s) failed, left out (see {directory / 'failures.csv'})")
    return paths


def _known_backbones(directory: Path) -> set[str]:
    try:
        return set(json.loads((directory / VARIANT_FILE).read_text()).get("backbones", []))
    except (OSError, ValueError):
        return set()


def _extract(
    opts: StudyOptions,
    features: FeatureVariant,
    backbones: list[str],
    directory: Path,
    videos: Sequence[Path],
    log: Log,
):
    from divita.features.plan import ExtractionSettings

    settings = ExtractionSettings(
        backbones,
        weights=features.weights,
        fps=features.fps,
        fpc=features.fpc,
        min_clip_frames=features.min_clip_frames,
        detector=features.detector,
        threshold=features.threshold,
        content_threshold=features.content_threshold,
        precision=opts.precision,
        frames_per_clip_2d=features.frames_per_clip_2d,
        batch_size=opts.extract_batch_size,
    )
    if opts.ray is not None:
        from divita.distributed.extract import RayOptions, run_ray_extraction

        return run_ray_extraction(
            videos,
            settings,
            directory,
            RayOptions(address=opts.ray),
            threads=opts.threads,
            decode_threads=opts.decode_threads,
            progress=opts.progress,
            log=log,
        )
    from divita.features.extract import run_extraction

    return run_extraction(
        videos,
        settings,
        directory,
        device=opts.device,
        threads=opts.threads,
        decode_threads=opts.decode_threads,
        progress=opts.progress,
        log=log,
    )


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


# ------------------------------------------------------------------------------------------ step 4: tables


def summarise(rows: Sequence[Row], files: dict[tuple[Row, int], Path], splits: Sequence[int], select_by: str):
    """The study table: one row per (variant, backbone), test-set mean and std (ddof=1; 0 for one split) over
    ``splits``, in percent, of μAP, mAP, wAP, sAP in the paper's AP convention (``uap_mean``...) and the step-wise
    one (``uap_mean_sklearn``...)."""
    import numpy as np
    import pandas as pd

    records = []
    for row in rows:
        rec: dict[str, Any] = {"variant": row.variant, "backbone": row.backbone, "splits": len(splits)}
        frames = {s: pd.read_csv(files[(row, s)]) for s in splits}
        for convention, suffix in CONVENTION_SUFFIX.items():
            vals = []
            for s in splits:
                m = frames[s]
                m = m[(m.subset == "tst") & (m.convention == convention) & (m.selection == select_by)]
                vals.append(100 * m[list(METRICS)].to_numpy(float)[0])
            a = np.stack(vals)
            for j, k in enumerate(METRICS):
                rec[f"{k}_mean{suffix}"] = float(a[:, j].mean())
                rec[f"{k}_std{suffix}"] = float(a[:, j].std(ddof=1)) if len(a) > 1 else 0.0
        records.append(rec)
    return pd.DataFrame(records)


def table_markdown(table: pd.DataFrame) -> str:
    """The study table in markdown: mean ± std per metric, paper convention then step-wise."""
    head = [
        "variant",
        "backbone",
        *(METRIC_LABELS[m] for m in METRICS),
        *(f"{METRIC_LABELS[m]} (step-wise)" for m in METRICS),
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in table.iterrows():
        cells = [str(r["variant"]), str(r["backbone"])]
        for suffix in CONVENTION_SUFFIX.values():
            cells += [f"{r[f'{m}_mean{suffix}']:.2f} ± {r[f'{m}_std{suffix}']:.2f}" for m in METRICS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def gain(
    table: pd.DataFrame, backbone: str, better: str, worse: str, metric: str = "uap"
) -> tuple[float, float] | None:
    """(difference in points, relative difference in percent) of ``metric`` between two variants on ``backbone``."""
    t = table.set_index(["variant", "backbone"])
    if (better, backbone) not in t.index or (worse, backbone) not in t.index:
        return None
    a, b = t.loc[(better, backbone), f"{metric}_mean"], t.loc[(worse, backbone), f"{metric}_mean"]
    return float(a - b), float(100 * (a - b) / b) if b else float("nan")


def write_outputs(
    study: Study, opts: StudyOptions, table: pd.DataFrame, log: Log, extra_md: str = "", plot: Callable | None = None
) -> StudyResult:
    """``OUT/<name>.csv``, ``OUT/<name>.md`` and ``OUT/<name>.png`` of a study table."""
    from divita.fileio import atomic_write_text
    from divita.studies.plots import grouped_bars

    opts.out.mkdir(parents=True, exist_ok=True)
    csv = opts.out / f"{study.name}.csv"
    md = opts.out / f"{study.name}.md"
    png = opts.out / f"{study.name}.png"
    atomic_write_text(csv, table.to_csv(index=False, float_format="%.2f"))
    base = opts.base_config()
    parts = [
        f"# Study: {study.name}",
        "",
        study.compared(opts),
        "",
        f"Test set of split(s) {', '.join(map(str, opts.splits))}; the epoch selected by validation "
        f"{'loss' if base.select_by == 'loss' else 'μAP'}; mean ± std over splits, in percent. The paper's columns "
        "use its trapezoid AP; the step-wise ones scikit-learn's average precision (see docs/training.md).",
        "",
        table_markdown(table),
        "",
        "## Next to the paper",
        "",
        *study.paper_lines(table, opts),
        "",
    ]
    if extra_md:
        parts += [extra_md, ""]
    text = "\n".join(parts)
    atomic_write_text(md, text)
    (plot or grouped_bars)(table, png, title=f"divita study {study.name}")
    log(f"study {study.name}: {csv}, {md}, {png}")
    return StudyResult(study.name, csv, md, png, table, text)


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
        lines.append(f"- {backbone} features, {json.dumps(features.settings())}: `{path}`")
    return "\n".join(lines)


__all__ = [
    "EVALUATIONS",
    "FeatureVariant",
    "Row",
    "RunJob",
    "RunSpec",
    "Stream",
    "Study",
    "StudyOptions",
    "StudyResult",
    "ensure_features",
    "gain",
    "parse_weights",
    "plan_runs",
    "run_training_study",
    "single_stream",
    "store_path",
    "study_videos",
    "summarise",
    "table_markdown",
    "train_runs",
    "write_outputs",
    "write_study_labels",
]
