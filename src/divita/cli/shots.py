"""``divita shots``: shot boundaries of videos, as 0-based inclusive frame spans at the resampled rate (and
their times in seconds, end exclusive: see docs/outputs.md)."""

from __future__ import annotations

import argparse
import json
import sys


def add_detector_args(p: argparse.ArgumentParser) -> None:
    """The shot detector's flags (``divita shots``, ``divita extract``, ``divita study``), generated from
    :class:`~divita.features.plan.ExtractionSettings`, ``--device`` and ``--runtime``; ``ShotDetector.from_args``
    reads them."""
    from divita.cli._extraction_options import add_extraction_options

    add_extraction_options(p, ("detector", "threshold", "content_threshold", "fps"))
    p.add_argument(
        "--device", default="auto", help="cpu, cuda, cuda:N or auto = cuda when there is one (default: auto)"
    )
    add_extraction_options(p, ("runtime",))


def add_parser(sub) -> None:
    p = sub.add_parser(
        "shots",
        help="detect shots in videos (TransNetV2, PySceneDetect, fixed segments, ...: see --detector)",
        description=(
            "Print the shots of each video as 0-based inclusive frame spans at the resampled rate (like "
            "TransNetV2's scenes.txt): a table by default, one JSON line per video with --json, or one CSV "
            "per video with --csv DIR. The model is loaded once. Exit status 1 if some video could not be read."
        ),
    )
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="video files or directories")
    add_detector_args(p)
    from divita.shots.registry import param_default

    segment_frames = param_default("fixed", "segment_frames")
    p.add_argument(
        "--segment-frames",
        type=int,
        default=segment_frames,
        metavar="N",
        help=f"segment length for --detector fixed (default: {segment_frames})",
    )
    out = p.add_mutually_exclusive_group()
    out.add_argument(
        "--json",
        action="store_true",
        help='one JSON line per video: {"video", "fps", "num_frames", "shots" (inclusive frame spans), '
        '"shot_seconds" ([start_s, end_s) in seconds)}',
    )
    out.add_argument(
        "--csv", metavar="DIR", help="write DIR/<stem>.csv per video (start_frame,end_frame,start_s,end_s)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: no spinning threads next to the decoder

    from divita.errors import DivitaError
    from divita.features.engine import process_video
    from divita.fileio import atomic_write_text
    from divita.shots import ShotDetector
    from divita.video import VideoError, find_videos

    if args.fps <= 0:
        raise DivitaError(None, f"--fps must be positive, got {args.fps}")
    detector = ShotDetector.from_args(args).load()
    videos = find_videos(args.videos)
    if not videos:
        raise DivitaError(None, "no video files found in the inputs")
    if args.csv:
        Path(args.csv).mkdir(parents=True, exist_ok=True)
    failed = 0
    for path in videos:
        try:
            r = process_video(path, [], detector, fps=args.fps)
        except VideoError as e:
            failed += 1
            print(f"divita shots: {e}", file=sys.stderr)
            continue
        shots = [list(s) for s in r.shots]
        if args.json:
            print(
                json.dumps(
                    {
                        "video": str(path),
                        "fps": args.fps,
                        "num_frames": r.num_frames,
                        "shots": shots,
                        "shot_seconds": r.shot_seconds(),
                    }
                ),
                flush=True,
            )
        elif args.csv:
            lines = ["start_frame,end_frame,start_s,end_s"]
            lines += [f"{s},{e},{s / args.fps:.3f},{(e + 1) / args.fps:.3f}" for s, e in shots]
            atomic_write_text(Path(args.csv) / f"{path.stem}.csv", "\n".join(lines) + "\n")
            print(f"{path}: {len(shots)} shots -> {Path(args.csv) / (path.stem + '.csv')}")
        else:
            print(f"{path}  ({r.num_frames} frames at {args.fps:g} fps, {len(shots)} shots)")
            print(f"  {'shot':>5}  {'start':>7}  {'end':>7}  {'frames':>6}  {'start_s':>8}  {'end_s':>8}")
            for i, (s, e) in enumerate(shots):
                print(f"  {i:>5}  {s:>7}  {e:>7}  {e - s + 1:>6}  {s / args.fps:>8.3f}  {(e + 1) / args.fps:>8.3f}")
    return 1 if failed else 0
