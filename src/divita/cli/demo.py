"""`divita demo`: the reproduction flow end to end, offline, on a generated miniature release."""

from __future__ import annotations

from divita.cli._train_options import add_train_options, train_config

DEMO_ROWS = ("ShuffleNet-2D", "ShuffleNet-Fusion")
DEMO_TRAILERS = 300
STUDIES = ("segmentation", "fps", "extension", "aggregation", "fusion")  # those that train (cost needs no demo)
STUDY_VIDEOS = 36


def add_parser(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="offline end-to-end demo on a generated miniature dataset",
        description="Generate a miniature release-format dataset with a planted, learnable genre signal "
        f"(mtgc.csv + image and video zarr stores), then run the same flow as `divita reproduce` for "
        f"{' and '.join(DEMO_ROWS)} on the 3 splits and print the Table-6-shaped result. No download.",
    )
    p.add_argument("--out", default="results/demo", help="output directory (default results/demo)")
    p.add_argument(
        "--trailers",
        type=int,
        default=None,
        help=f"trailers in the generated dataset (default {DEMO_TRAILERS}; with --study, videos: default "
        f"{STUDY_VIDEOS})",
    )
    p.add_argument(
        "--study",
        choices=STUDIES,
        default=None,
        metavar="NAME",
        help="instead, run `divita study NAME` (" + ", ".join(STUDIES) + ") on generated trailer videos "
        "whose genres are visible, with EfficientNet-Lite0's packaged ImageNet weights (fusion: and a "
        "random-weight ShuffleNet-3D as the video stream), offline; `make demo-study` runs "
        "segmentation",
    )
    # a small dataset needs fewer epochs, and larger steps than the paper's 1e-4 to learn within a couple of minutes
    add_train_options(p, max_epochs=20, lr=1e-3, scheduler_patience=5, stop_patience=8)
    p.set_defaults(func=run)


def run(args) -> int:
    import time
    from pathlib import Path

    from divita.cli._errors import stop_on_signals
    from divita.datasets.synthetic import SyntheticSpec, make_release
    from divita.evaluation.reproduce import reproduce

    if args.study is not None:
        return run_study(args)
    t0 = time.perf_counter()
    out = Path(args.out)
    args.trailers = args.trailers or DEMO_TRAILERS
    data_dir = make_release(
        out / "data", SyntheticSpec(num_trailers=args.trailers, seed=args.seed), progress=not args.no_progress
    )
    print(f"generated a miniature Trailers12k-format dataset: {data_dir} ({args.trailers} trailers)")
    base = train_config(args, data_dir=str(data_dir), image_store="(per row)", video_store=None, split=0)
    with stop_on_signals() as stop:  # Ctrl-C: the current run stops after its step, finished runs are kept
        result = reproduce(
            data_dir, out, rows=list(DEMO_ROWS), splits=(0, 1, 2), base=base, progress=not args.no_progress, stop=stop
        )
    print()
    print("Synthetic data: the paper's columns are shown for the table's shape only.")
    print(result["table"])
    print(f"tables: {result['dir']}/tst.csv, {result['dir']}/val.csv, {result['dir']}/table6.md")
    from divita.reporting.report import make_report

    page = make_report(out, log=lambda s: None)
    pictures = sorted(str(p.relative_to(page.parent)) for p in page.parent.rglob("*.png"))
    print(f"pictures: {len(pictures)} PNGs in {page.parent}/ ({', '.join(pictures[:3])}, ...), described in {page}")
    print(f"demo finished in {time.perf_counter() - t0:.1f}s")
    return 0


def run_study(args) -> int:
    """``--study NAME``: generated videos with visible genres (:mod:`divita.studies.demo_videos`), then the study on
    them with offline weights, the demo's training settings and the 3 splits."""
    import time
    from pathlib import Path

    from divita.studies import StudyOptions, run_study
    from divita.studies.demo_videos import LOOKS, make_demo_videos

    t0 = time.perf_counter()
    out = Path(args.out)
    per_genre = max(3, (args.trailers or STUDY_VIDEOS) // len(LOOKS))
    videos, labels = make_demo_videos(out / "data", per_genre=per_genre, seed=args.seed)
    print(
        f"generated {per_genre * len(LOOKS)} trailer videos ({', '.join(LOOKS)}; shots with cuts): {videos}, {labels}"
    )
    fusion = args.study == "fusion"
    options = StudyOptions(
        out=out,
        videos=[str(videos)],
        labels=str(labels),
        backbones=["efficientnet_lite0", "shufflenet3d"] if fusion else ["efficientnet_lite0"],
        weights={"*": "default", "shufflenet3d": "random"},
        train=train_config(args, data_dir=str(out), image_store="(per run)", video_store=None, split=0),
        threads=args.threads,
        progress=not args.no_progress,
    )
    result = run_study(args.study, options)
    print()
    print("Generated videos: the study's flow and files on a small scale, not the paper's numbers.")
    print(result.markdown)
    print(f"demo finished in {time.perf_counter() - t0:.1f}s")
    return 0
