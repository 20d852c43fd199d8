"""Trailer videos -> clip features, in this process: the local driver :func:`extract` (``divita.extract_features``).

:func:`extract` runs the per-video engine (:func:`divita.features.engine.process_video`) over many videos and
writes, per backbone, a zarr v3 store in the release layout (``OUT/trailers_{prefix}_{name}_fps{fps}_fpc{fpc}.zarr``:
one float32 (clips, features) array per video id = file stem, group attributes ``num_features`` and
``extraction``), plus ``OUT/shots/<id>.json`` (shots, clips, seconds), ``OUT/videos.csv`` (one row per finished
video) and ``OUT/failures.csv`` (video, reason) for the videos that could not be used. A video's arrays are
committed atomically; a rerun skips videos present in every requested store, recomputes the missing ones and
cleans up what a killed run left behind. With ``labels`` it also writes ``OUT/mtgc.csv`` so ``divita train
--data-dir OUT`` can train on the result. The extraction is one
:class:`~divita.features.plan.ExtractionSettings` (checked once, recorded in every store); every file goes
through a :class:`~divita.features.outputs.FeatureOutput`, and :class:`~divita.features.run.ExtractionRun` keeps
the books (stores, failures, commits) that the Ray driver shares.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from divita.errors import DivitaError
from divita.features.engine import DecodeFeed, decode_outputs, describe_encoder, load_encoders, process_video
from divita.features.outputs import FAILURES_FILE, FeatureOutput, is_url, open_output
from divita.features.plan import ExtractionSettings
from divita.features.run import ExtractionRun, ExtractSummary
from divita.video import VideoError, find_videos


def extract(
    inputs: Sequence[str | os.PathLike],
    backbones: Sequence[Any] | None,
    out_dir: str | os.PathLike | FeatureOutput,
    *,
    settings: ExtractionSettings | None = None,
    device: str = "auto",
    threads: int | None = None,
    decode_threads: int = 0,
    labels: str | os.PathLike | None = None,
    split_seed: int = 0,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    **extraction: Any,
) -> ExtractSummary:
    """Extract the clip features of every video in ``inputs`` with every backbone, into release-format stores.

    Available as `divita.extract_features`. Each video is decoded once: shots are detected, cut into clips that
    never cross a cut, and every backbone encodes each clip to one feature vector; a video's features are an
    array (clips, F) in each backbone's store ``out_dir/trailers_{prefix}_{backbone}_fps{fps}_fpc{fpc}.zarr``.
    A rerun skips the videos already complete; a video that cannot be used is recorded in the summary and in
    ``out_dir/failures.csv`` and the others go on.

    Args:
        inputs: video files and/or directories (searched recursively); a video's id is its file stem.
        backbones: backbone names (`list_backbones()`) or ready encoders; None: those of ``settings``.
        out_dir: the output directory, or a ready ``FeatureOutput`` (an output URL is written by
            ``divita.distributed.extract.extract_ray``).
        settings: an `ExtractionSettings` to start from (default: its defaults).
        device: where the backbones and TransNetV2 run; ``"auto"``: CUDA when there is one.
        threads: torch threads (default: the cores available).
        decode_threads: FFmpeg's decoding threads (0: FFmpeg's choice).
        labels: a labels CSV (``mid`` + the 10 genre columns) to write ``out_dir/mtgc.csv`` from.
        split_seed: seeds the splits written to ``mtgc.csv`` when ``labels`` has none.
        progress: show a progress bar.
        log: where progress lines go (default: stderr).
        **extraction: `ExtractionSettings` fields by keyword (``fps``, ``fpc``, ``detector``, ``weights``,
            ``precision``, ...), applied over ``settings``.

    Returns:
        ExtractSummary: the stores written (backbone -> path), the ids done, skipped and failed.

    Raises:
        TypeError: a keyword that is not an extraction setting.
        DivitaError: a bad setting, an unknown backbone or detector, no video found, or an output that cannot
            be written (all checked before anything is loaded or written, where they can be).
    """
    import torch

    settings = ExtractionSettings.build(backbones, settings, **extraction).require_backbones()
    if str(device) == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    ready = not isinstance(settings.detector, str)
    detector = settings.detector if ready else settings.shot_detector(device)  # checked before anything is written
    log = log or (lambda s: print(s, file=sys.stderr))
    if not isinstance(out_dir, FeatureOutput) and is_url(out_dir):
        raise DivitaError(str(out_dir), "an output URL needs --ray (the local path writes to a directory)")
    output = open_output(out_dir)
    videos = find_videos(inputs)
    if not videos:
        raise DivitaError(None, "no video files found in the inputs")
    output.prepare()
    if threads:
        torch.set_num_threads(int(threads))
    detector.load()
    encoders = load_encoders(
        settings.backbones, settings.weights, device, settings.precision, settings.frames_per_clip_2d, settings.runtime
    )
    by_name = {e.spec.name: e for e in encoders}
    run = ExtractionRun(settings, output, log)
    run.create_stores({n: describe_encoder(e) for n, e in by_name.items()}, detector.params())
    jobs = run.pending(videos)
    try:
        _extract_each(run, jobs, by_name, detector, decode_threads, progress)
    finally:
        run.finish()
    if labels is not None:
        run.write_labels(labels, split_seed)
    return run.summary


def _extract_each(run: ExtractionRun, jobs: list, by_name: dict, detector, decode_threads: int, progress: bool) -> None:
    """Every pending (id, path, backbones) job through the engine, committed or recorded as a failure."""
    from divita.features.store import check_array_id

    settings, summary = run.settings, run.summary
    bar_videos = bar_frames = None
    if progress:
        from tqdm import tqdm

        bar_videos = tqdm(
            total=run.total, initial=len(summary.skipped), desc="videos", unit="video", position=0, dynamic_ncols=True
        )
        bar_frames = tqdm(desc="frames", unit="frame", position=1, dynamic_ncols=True, smoothing=0.1)
    t0 = time.perf_counter()
    try:
        ahead: dict[str, DecodeFeed] = {}  # the next video's decoding, started when this one's is done

        def start_next(i: int) -> None:
            if i < len(jobs):
                _, path, names = jobs[i]
                sides = [int(getattr(by_name[n], "min_side", 0) or 0) for n in names]
                try:
                    ahead[str(path)] = DecodeFeed(
                        path, settings.fps, decode_outputs(sides, detector.looks_at_frames), threads=decode_threads
                    ).start()
                except DivitaError:
                    pass  # its own run reports why

        for i, (mid, path, names) in enumerate(jobs):
            try:
                check_array_id(mid)
                result = process_video(
                    path,
                    [by_name[n] for n in names],
                    detector,
                    fps=settings.fps,
                    fpc=settings.fpc,
                    min_clip_frames=settings.min_clip_frames,
                    batch_size=settings.batch_size,
                    decode_threads=decode_threads,
                    on_frames=(bar_frames.update if bar_frames is not None else None),
                    feed=ahead.pop(str(path), None),
                    on_decoded=lambda i=i: start_next(i + 1),
                )
            except (VideoError, DivitaError) as err:
                run.fail(path, err.problem)
            except Exception as err:  # a bug or an odd file we did not foresee: record it and go on
                if os.environ.get("DIVITA_DEBUG"):
                    raise
                run.fail(path, f"{type(err).__name__}: {err}".splitlines()[0][:300])
                run.log(traceback.format_exc(limit=3))
            else:
                run.commit(mid, result, names)
            if bar_videos is not None:
                bar_videos.update(1)
    finally:
        for feed in ahead.values():
            feed.close()
        for bar in (bar_frames, bar_videos):
            if bar is not None:
                bar.close()
        summary.seconds = time.perf_counter() - t0


def format_summary(s: ExtractSummary) -> str:
    """What `divita extract` prints at the end: counts, speed, the stores, the first failures, the labels."""
    lines = [
        f"extracted {len(s.done)} video(s), skipped {len(s.skipped)} already done, {len(s.failed)} failed"
        + (
            f"; {s.frames} frames in {s.seconds:.1f} s ({s.frames / s.seconds:.0f} frames/s)"
            if s.seconds > 0 and s.frames
            else ""
        ),
    ]
    for name, p in s.stores.items():
        lines.append(f"  {name}: {p}")
    if s.failed:
        lines.append(f"  failures ({Path(s.out_dir) / FAILURES_FILE}):")
        for v, r in list(s.failed.items())[:20]:
            lines.append(f"    {v}: {r}")
        if len(s.failed) > 20:
            lines.append(f"    ... and {len(s.failed) - 20} more")
    if s.labels:
        lines.append(f"  labels: {s.labels}")
    return "\n".join(lines)


__all__ = ["ExtractSummary", "extract", "format_summary"]
