"""`divita predict`: the genres of trailer files, from a trained checkpoint or a running `divita serve`."""

from __future__ import annotations

from divita.cli._extraction_options import add_extraction_options
from divita.cli._limits import add_limit_options


def add_parser(sub) -> None:
    p = sub.add_parser(
        "predict",
        help="predict the genres of trailer files",
        description="Run the checkpoint's own feature extraction (shots, clips, backbones) on each video, then its "
        "head; print a ranked table of the 10 genres (or JSON lines). A checkpoint trained on the published release "
        "features is refused: no matching extractor is known for them. With --server URL the files are sent to a "
        "running `divita serve` instead, and the same lines are printed.",
    )
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="video files or directories")
    p.add_argument(
        "--checkpoint", help="best.ckpt of a `divita train` run on `divita extract` stores (required unless --server)"
    )
    p.add_argument(
        "--server",
        metavar="URL",
        help="send the files to a running `divita serve` at URL "
        "(e.g. http://127.0.0.1:8000) instead of loading a checkpoint",
    )
    p.add_argument("--token", default=None, help="with --server: the server's --token (default: $DIVITA_TOKEN)")
    p.add_argument("--json", action="store_true", help="one JSON object per video on stdout")
    p.add_argument("--top", type=int, default=None, metavar="K", help="show only the K most probable genres")
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        metavar="T",
        help="one decision threshold for every genre (default: the per-genre thresholds tuned on validation)",
    )
    p.add_argument("--plot", metavar="FILE.png", help="timeline picture (with several videos: FILE_<video>.png)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    add_extraction_options(p, ("runtime",))
    p.add_argument(
        "--weights",
        action="append",
        default=[],
        metavar="BACKBONE=PATH",
        help="weights file for a backbone whose recorded weights cannot be fetched here",
    )
    p.add_argument("--failures", metavar="CSV", help="also write failed videos and reasons to this CSV")
    p.add_argument("--no-progress", action="store_true")
    add_limit_options(p, run)  # --max-duration, --max-pixels: run(args) decodes under them


def plot_path(plot: str, video: str, several: bool):
    """Where ``--plot FILE.png`` puts one video's picture: FILE.png, or FILE_<video>.png with several videos."""
    from pathlib import Path

    png = Path(plot)
    if several:
        png = png.with_name(f"{png.stem}_{Path(video).stem}{png.suffix or '.png'}")
    return png


def print_result(res: dict, as_json: bool, top: int | None) -> None:
    """What `divita predict` prints for one result: a JSON line, or the ranked table."""
    import json

    if as_json:
        print(json.dumps(res), flush=True)
        return
    genres = list(res["genres"].items())[: top or None]
    print(
        f"{res['video']}  ({len(res['shots'])} shots, {len(res['snippets'])} snippets, "
        f"{res['timings']['extract_s'] + res['timings']['head_s']:.1f}s)"
    )
    for g, p in genres:
        mark = "*" if g in res["predicted"] else " "
        print(f"  {mark} {g:<10} {p:6.3f}  {'#' * int(round(30 * p))}")
    print(f"  predicted: {', '.join(res['predicted']) or '(none above threshold)'}")
    if "plot" in res:
        print(f"  timeline: {res['plot']}")


def write_failures(csv_path: str | None, failures: list[tuple[str, str]]) -> None:
    """``--failures CSV``: the failed videos and their reasons, written atomically."""
    if not csv_path:
        return
    import csv
    import io

    from divita.fileio import atomic_write_text

    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(["video", "reason"])
    w.writerows(failures)
    atomic_write_text(csv_path, buf.getvalue())


def inputs(args) -> tuple[list, list[tuple[str, str]]]:
    """The video files named by the arguments, and (argument, "file not found") for those that do not exist."""
    import sys
    from pathlib import Path

    from divita.errors import DivitaError
    from divita.video import find_videos

    videos = find_videos(args.videos)
    failures = [(v, "file not found") for v in args.videos if not Path(v).exists()]
    for v, reason in failures:
        print(f"divita predict: {v}: {reason}", file=sys.stderr)
    if not videos and not failures:
        raise DivitaError(None, "no video files found in the inputs")
    return videos, failures


def early_feed(args):
    """The first video's decoding, started before torch loads (None when it cannot be started early). Torch's
    OpenMP threads are set to sleep when idle, not spin, unless $OMP_WAIT_POLICY says otherwise: they share the
    cores with the decoder's."""
    import os

    from divita.inference.early import prefetch
    from divita.video import find_videos

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    first = next((v for v in find_videos(args.videos) if v.is_file()), None)
    return prefetch(args.checkpoint, first) if first is not None else None


def run(args) -> int:
    import sys

    from divita.errors import DivitaError

    if args.server:
        return run_remote(args)
    if not args.checkpoint:
        raise DivitaError(None, "--checkpoint is required (or --server URL of a running `divita serve`)")

    if args.threshold is not None and not 0.0 < args.threshold < 1.0:
        raise DivitaError(None, f"--threshold must be in (0, 1), got {args.threshold}")
    weights = {}
    for item in args.weights:
        name, sep, path = item.partition("=")
        if not sep:
            raise DivitaError(None, f"--weights takes BACKBONE=PATH, got {item!r}")
        weights[name] = path
    feed = early_feed(args)  # the first video decodes while torch and the networks load
    import torch

    from divita.inference.predict import GenreClassifier, plot_timeline, predict_many

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    try:
        clf = GenreClassifier.from_checkpoint(
            args.checkpoint, device=device, weights=weights, threshold=args.threshold, runtime=args.runtime
        )
        videos, failures = inputs(args)
    except BaseException:
        if feed is not None:
            feed.close()
        raise

    def show(res: dict) -> None:
        if args.plot:
            res["plot"] = str(plot_timeline(res, plot_path(args.plot, res["video"], len(videos) > 1)))
        print_result(res, args.json, args.top)

    def fail(video: str, reason: str) -> None:
        failures.append((video, reason))
        print(f"divita predict: {video}: {reason}", file=sys.stderr)

    try:
        ok, _ = predict_many(clf, videos, show, fail, progress=not args.no_progress, feed=feed)
    finally:
        if feed is not None:
            feed.close()  # a no-op once its video was predicted
    write_failures(args.failures, failures)
    if failures:
        print(f"divita predict: {ok} predicted, {len(failures)} failed", file=sys.stderr)
        return 1
    return 0


def run_remote(args) -> int:
    """``--server URL``: upload every file to a running `divita serve` (all queued first, so that a server with
    several workers runs them side by side), then print each result as the local command does."""
    import os
    import sys

    from divita.errors import DivitaError
    from divita.serving.client import ServeClient, ServerRefused

    if args.checkpoint:
        raise DivitaError(
            None, "--checkpoint and --server exclude each other: the server predicts with its own checkpoint"
        )
    if args.threshold is not None or args.weights:
        raise DivitaError(
            None, "--threshold and --weights are the server's settings; they cannot be given with --server"
        )
    client = ServeClient(args.server, token=args.token or os.environ.get("DIVITA_TOKEN"))
    health = client.health()  # a wrong URL or token stops here, before any upload
    limit = float(health.get("max_upload_mb", float("inf"))) * 1024 * 1024
    videos, failures = inputs(args)

    def fail(video: str, reason: str) -> None:
        failures.append((video, reason))
        print(f"divita predict: {video}: {reason}", file=sys.stderr)

    submitted: list[tuple[str, str]] = []
    for v in videos:
        if os.path.getsize(v) > limit:
            fail(str(v), f"larger than the server's upload limit of {health['max_upload_mb']:g} MiB")
            continue
        try:
            submitted.append((str(v), client.submit(v)))
        except ServerRefused as e:
            if e.status in (401, 403):
                raise
            name = os.path.basename(str(v))
            fail(str(v), e.problem.removeprefix(f"{name}: "))
    bar = None
    if not args.no_progress and len(videos) > 1:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(submitted), desc="predict", unit="video")
    ok = 0
    for video, job_id in submitted:
        job = client.wait(job_id)
        if bar is not None:
            bar.update(1)
        if job["status"] != "done":
            fail(video, job.get("error") or job["status"])
            continue
        res = job["result"]
        res["video"] = video  # the server names the upload by its file name; print the path given here
        if args.plot:
            res["plot"] = str(client.timeline(job_id, plot_path(args.plot, video, len(videos) > 1)))
        print_result(res, args.json, args.top)
        ok += 1
    if bar is not None:
        bar.close()
    write_failures(args.failures, failures)
    if failures:
        print(f"divita predict: {ok} predicted, {len(failures)} failed", file=sys.stderr)
        return 1
    return 0
