"""`divita predict`: the genres of trailer files, from a trained checkpoint."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser(
        "predict",
        help="predict the genres of trailer files",
        description="Run the checkpoint's own feature extraction (shots, clips, backbones) on each video, then its "
        "head; print a ranked table of the 10 genres (or JSON lines). A checkpoint trained on the published release "
        "features is refused: no matching extractor is known for them.",
    )
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="video files or directories")
    p.add_argument("--checkpoint", required=True, help="best.ckpt of a `divita train` run on `divita extract` stores")
    p.add_argument("--json", action="store_true", help="one JSON object per video on stdout")
    p.add_argument("--top", type=int, default=None, metavar="K", help="show only the K most probable genres")
    p.add_argument("--threshold", type=float, default=None, metavar="T", help="one decision threshold for every genre (default: the per-genre thresholds tuned on validation)")
    p.add_argument("--plot", metavar="FILE.png", help="timeline picture (with several videos: FILE_<video>.png)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--weights", action="append", default=[], metavar="BACKBONE=PATH", help="weights file for a backbone whose recorded weights cannot be fetched here")
    p.add_argument("--failures", metavar="CSV", help="also write failed videos and reasons to this CSV")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    import csv
    import io
    import json
    import sys
    from pathlib import Path

    import torch

    from divita.errors import DivitaError
    from divita.fileio import atomic_write_text
    from divita.inference.predict import GenreClassifier, plot_timeline, predict_many
    from divita.video import find_videos

    if args.threshold is not None and not 0.0 < args.threshold < 1.0:
        raise DivitaError(None, f"--threshold must be in (0, 1), got {args.threshold}")
    weights = {}
    for item in args.weights:
        name, sep, path = item.partition("=")
        if not sep:
            raise DivitaError(None, f"--weights takes BACKBONE=PATH, got {item!r}")
        weights[name] = path
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    clf = GenreClassifier.from_checkpoint(args.checkpoint, device=device, weights=weights, threshold=args.threshold)
    videos = find_videos(args.videos)
    missing = [v for v in args.videos if not Path(v).exists()]
    failures: list[tuple[str, str]] = [(v, "file not found") for v in missing]
    for v, reason in failures:
        print(f"divita predict: {v}: {reason}", file=sys.stderr)
    if not videos and not failures:
        raise DivitaError(None, "no video files found in the inputs")

    def show(res: dict) -> None:
        if args.plot:
            png = Path(args.plot)
            if len(videos) > 1:
                png = png.with_name(f"{png.stem}_{Path(res['video']).stem}{png.suffix or '.png'}")
            res["plot"] = str(plot_timeline(res, png))
        if args.json:
            print(json.dumps(res), flush=True)
            return
        genres = list(res["genres"].items())[: args.top or None]
        print(f"{res['video']}  ({len(res['shots'])} shots, {len(res['snippets'])} snippets, {res['timings']['extract_s'] + res['timings']['head_s']:.1f}s)")
        for g, p in genres:
            mark = "*" if g in res["predicted"] else " "
            print(f"  {mark} {g:<10} {p:6.3f}  {'#' * int(round(30 * p))}")
        print(f"  predicted: {', '.join(res['predicted']) or '(none above threshold)'}")
        if "plot" in res:
            print(f"  timeline: {res['plot']}")

    def fail(video: str, reason: str) -> None:
        failures.append((video, reason))
        print(f"divita predict: {video}: {reason}", file=sys.stderr)

    ok, _ = predict_many(clf, videos, show, fail, progress=not args.no_progress)
    if args.failures:
        buf = io.StringIO(newline="")
        w = csv.writer(buf)
        w.writerow(["video", "reason"])
        w.writerows(failures)
        atomic_write_text(args.failures, buf.getvalue())
    if failures:
        print(f"divita predict: {ok} predicted, {len(failures)} failed", file=sys.stderr)
        return 1
    return 0
