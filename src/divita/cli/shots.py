"""``divita shots``: shot boundaries of videos, as 0-based inclusive frame spans at the resampled rate (and
their times in seconds, end exclusive: see docs/outputs.md)."""

from __future__ import annotations

import argparse
import json
import sys

from divita.shots.formats import FORMATS


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
            "TransNetV2's scenes.txt): a table by default, one JSON line per video with --format json (or --json), "
            "PySceneDetect's scene-list CSV or a CMX 3600 EDL for editors with --format csv|edl (in the video's "
            "own frames and timecode), one file per video with --out DIR; --plot draws a contact sheet. "
            "The model is loaded once. Exit status 1 if some video could not be read."
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
        "--format",
        choices=FORMATS,
        default=None,
        help="table (default); json: one JSON line per video (as --json); csv: PySceneDetect's scene-list "
        "columns (1-based frames, end frame inclusive); edl: CMX 3600, one cut event per shot, timecode from "
        "00:00:00:00 (drop-frame at 29.97 and 59.94). csv and edl count the video's own frames. Several videos "
        "in csv or edl need --out DIR",
    )
    out.add_argument(
        "--json",
        action="store_true",
        help='the same as --format json: one JSON line per video: {"video", "fps", "num_frames", "shots" '
        '(inclusive frame spans), "shot_seconds" ([start_s, end_s) in seconds)}',
    )
    out.add_argument(
        "--csv",
        metavar="DIR",
        help="write DIR/<stem>.csv per video in divita's short columns (start_frame,end_frame,start_s,end_s; "
        "frames at --fps); --format csv --out DIR writes PySceneDetect's",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        help="write one file per video into DIR (<stem>.txt, .json, .csv or .edl by --format; each whole or "
        "absent) and print one line per video instead",
    )
    p.add_argument(
        "--plot",
        metavar="PNG",
        nargs="?",
        const="",
        help="also draw a contact sheet: per shot its first, middle and last frame, its time span and the "
        "transition that ends it (cut, dissolve, fade, end). --plot sheet.png names it (one video); --plot "
        "without a name writes DIR/<stem>.png per video, with --out DIR (or --csv DIR)",
    )
    p.set_defaults(func=run)


EXTENSIONS = {"table": ".txt", "json": ".json", "csv": ".csv", "edl": ".edl"}


def check_outputs(args: argparse.Namespace, fmt: str, videos: list) -> None:
    """Refuse, before any work, the combinations of --format, --out, --csv and --plot that have no sensible
    output (a one-line DivitaError)."""
    from divita.errors import DivitaError

    if args.csv and args.out:
        raise DivitaError(
            None, "--csv DIR and --out DIR: give one (--format csv --out DIR for PySceneDetect's columns)"
        )
    if fmt in ("csv", "edl") and not args.out and len(videos) > 1:
        raise DivitaError(
            None,
            f"--format {fmt} without --out prints one video's {fmt.upper()}: with {len(videos)} videos, "
            f"add --out DIR (DIR/<stem>.{fmt} each)",
        )
    if args.plot == "" and not (args.out or args.csv):
        raise DivitaError(None, "--plot without a file name writes DIR/<stem>.png: add --out DIR, or name the PNG")
    if args.plot:
        if not args.plot.lower().endswith(".png"):
            raise DivitaError(args.plot, "--plot writes a PNG: give a file name ending in .png")
        if len(videos) > 1:
            raise DivitaError(
                args.plot,
                f"--plot names one sheet but there are {len(videos)} videos: give --plot without a "
                "name and --out DIR (DIR/<stem>.png each)",
            )
    if args.out:
        seen: dict[str, object] = {}
        for v in videos:
            if v.stem in seen:
                raise DivitaError(v, f"same file name stem as {seen[v.stem]}: both would write {v.stem}.* in --out")
            seen[v.stem] = v


def render(fmt: str, path, r, fps: float) -> str:
    """One video's output in ``fmt`` (table and json exactly as printed before --format existed)."""
    from divita.shots.formats import ShotList, csv_text, edl_text

    shots = [list(s) for s in r.shots]
    if fmt == "json":
        record = {
            "video": str(path),
            "fps": fps,
            "num_frames": r.num_frames,
            "shots": shots,
            "shot_seconds": r.shot_seconds(),
        }
        return json.dumps(record) + "\n"
    if fmt == "table":
        lines = [f"{path}  ({r.num_frames} frames at {fps:g} fps, {len(shots)} shots)"]
        lines.append(f"  {'shot':>5}  {'start':>7}  {'end':>7}  {'frames':>6}  {'start_s':>8}  {'end_s':>8}")
        for i, (s, e) in enumerate(shots):
            lines.append(f"  {i:>5}  {s:>7}  {e:>7}  {e - s + 1:>6}  {s / fps:>8.3f}  {(e + 1) / fps:>8.3f}")
        return "\n".join(lines) + "\n"
    shot_list = ShotList(str(path), fps, r.num_frames, r.shots, float(r.info.get("source_fps") or 0))
    return csv_text(shot_list) if fmt == "csv" else edl_text(shot_list)


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
    fmt = "json" if args.json else (args.format or "table")
    videos = find_videos(args.videos)
    if not videos:
        raise DivitaError(None, "no video files found in the inputs")
    check_outputs(args, fmt, videos)
    detector = ShotDetector.from_args(args).load()
    for folder in (args.csv, args.out):
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
    failed = 0
    for path in videos:
        try:
            r = process_video(path, [], detector, fps=args.fps)
        except VideoError as e:
            failed += 1
            print(f"divita shots: {e}", file=sys.stderr)
            continue
        shots = [list(s) for s in r.shots]
        if args.csv:
            lines = ["start_frame,end_frame,start_s,end_s"]
            lines += [f"{s},{e},{s / args.fps:.3f},{(e + 1) / args.fps:.3f}" for s, e in shots]
            atomic_write_text(Path(args.csv) / f"{path.stem}.csv", "\n".join(lines) + "\n")
            print(f"{path}: {len(shots)} shots -> {Path(args.csv) / (path.stem + '.csv')}")
        elif args.out:
            target = atomic_write_text(Path(args.out) / f"{path.stem}{EXTENSIONS[fmt]}", render(fmt, path, r, args.fps))
            print(f"{path}: {len(shots)} shots -> {target}", flush=True)
        else:
            sys.stdout.write(render(fmt, path, r, args.fps))
            sys.stdout.flush()
        if args.plot is not None:
            try:
                plot(args, path, r, detector.name)
            except VideoError as e:  # decoding it again failed: a failed video, the batch goes on
                failed += 1
                print(f"divita shots: {e}", file=sys.stderr)
    return 1 if failed else 0


def plot(args: argparse.Namespace, path, r, detector: str) -> None:
    """Draw the contact sheet of one video (``--plot``) and say where it went: on stdout with --out or --csv,
    else on stderr (stdout holds the shots)."""
    from pathlib import Path

    from divita.shots.formats import ShotList
    from divita.shots.sheet import draw_contact_sheet

    target = Path(args.plot) if args.plot else Path(args.out or args.csv) / f"{path.stem}.png"
    shot_list = ShotList(str(path), args.fps, r.num_frames, r.shots, float(r.info.get("source_fps") or 0))
    layout = draw_contact_sheet(shot_list, target, title=f"{path.name}  —  shots by {detector}")
    print(
        f"{path}: contact sheet of {len(layout.tiles)} shots -> {target}",
        file=sys.stdout if (args.out or args.csv) else sys.stderr,
        flush=True,
    )
