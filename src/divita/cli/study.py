"""`divita study NAME`: the paper's studies beyond Table 6 on a folder of labelled trailer videos (see
:mod:`divita.studies`): segmentation, fps, extension, aggregation, fusion, cost."""

from __future__ import annotations

import argparse

from divita.cli._train_options import add_config_option, add_train_options, train_config

FILES = (
    "Writes OUT/<name>.csv (one row per variant x backbone: mean and std over splits of the test μAP, mAP, wAP "
    "and sAP in both AP conventions), OUT/<name>.md (the table, and the paper's reported differences beside ours) "
    "and OUT/<name>.png. Feature variants are extracted once into OUT/features/<settings>/ (--features), shared "
    "by every study that needs them; runs go to OUT/<name>/runs/. A killed study rerun with the same command "
    "redoes nothing that finished."
)


def add_parser(sub) -> None:
    from divita.cli._extraction_options import add_extraction_options
    from divita.studies import get_study, list_studies

    p = sub.add_parser(
        "study",
        help="rerun one of the paper's studies (segmentation, fps, extension, aggregation, fusion, cost)",
        description="Rerun one of the paper's studies beyond Table 6 on any folder of labelled trailer videos: extract "
        "the feature variants it compares, train each on every split, and write its table. " + FILES,
    )
    names = p.add_subparsers(dest="study", metavar="NAME")
    names.required = True
    for name in list_studies():
        study = get_study(name)
        q = names.add_parser(
            name, help=study.summary, description=study.description + (" " + FILES if study.trains else "")
        )
        if study.trains:
            add_study_arguments(q, study)
        else:
            q.add_argument("--out", required=True, metavar="DIR", help="output directory")
            q.add_argument("--backbone", metavar="NAME[,NAME...]", help="backbones (default: every registered one)")
            q.add_argument(
                "--device",
                default="auto",
                help="where clips/s is measured: cpu, cuda, cuda:N, or auto = the CPU and CUDA when there is one",
            )
            add_extraction_options(q, ("frames_per_clip_2d",))
            add_config_option(q, "num_clips")
            study.add_arguments(q)
        q.set_defaults(func=run)


def add_study_arguments(q: argparse.ArgumentParser, study) -> None:
    from divita.cli._extraction_options import add_extraction_options, option_default
    from divita.cli.extract import CLIP_OPTIONS
    from divita.cli.shots import add_detector_args

    q.add_argument(
        "videos",
        nargs="+",
        metavar="VIDEO_DIR",
        help="video files and/or directories (searched recursively); a video's id is its file stem",
    )
    q.add_argument(
        "--labels",
        required=True,
        metavar="CSV",
        help="labels: mid (= video file stem), the 10 genre columns (0/1), optional split0..2 (generated, "
        "seeded by --split-seed, when absent)",
    )
    q.add_argument("--out", required=True, metavar="DIR", help="results directory")
    q.add_argument(
        "--backbone",
        metavar="NAME[,NAME...]",
        help=f"backbone(s), comma-separated (default: {','.join(study.default_backbones)}; see `divita backbones`)",
    )
    q.add_argument(
        "--splits",
        type=int,
        nargs="+",
        choices=(0, 1, 2),
        default=[0, 1, 2],
        help="splits to train on (default: 0 1 2)",
    )
    q.add_argument(
        "--features", metavar="DIR", help="feature variants' directory, shared between studies (default: OUT/features)"
    )
    g = q.add_argument_group("extraction (the settings every variant shares unless the study varies them)")
    g.add_argument(
        "--weights",
        default=option_default("weights"),
        metavar="W|NAME=W[,...]",
        help="backbone weights: default (pretrained), random (tests only) or a checkpoint PATH, for every "
        "backbone or per backbone as NAME=W (e.g. shufflenet3d=kinetics.pth)",
    )
    add_detector_args(g)
    add_extraction_options(g, CLIP_OPTIONS)
    add_extraction_options(
        g,
        ("precision", "batch_size"),
        flags={"precision": "--extract-precision", "batch_size": "--extract-batch-size"},
        precision="inference precision of the backbones and TransNetV2",
        batch_size="clips per backbone call",
    )
    g.add_argument(
        "--decode-threads", type=int, default=0, metavar="N", help="decoder threads (default: FFmpeg's choice)"
    )
    g.add_argument(
        "--split-seed", type=int, default=0, metavar="S", help="seed of the splits generated when --labels has none"
    )
    s = q.add_argument_group(f"study {study.name}")
    study.add_arguments(s)
    r = q.add_argument_group("Ray (optional extra: pip install 'divita[ray]')")
    r.add_argument(
        "--ray",
        nargs="?",
        const="local",
        default=None,
        metavar="ADDRESS",
        help="extract on Ray (as `divita extract --ray`) and train the runs as parallel Ray tasks (as "
        "`divita reproduce --ray`): no ADDRESS starts a local Ray instance, 'auto' joins the cluster "
        "running here, or HOST:PORT / ray://HOST:10001. The videos and OUT must be at the same path on "
        "every node",
    )
    r.add_argument(
        "--ray-cpus-per-run",
        type=float,
        default=None,
        metavar="K",
        help="CPUs per training run (and torch threads; default 1 with a GPU, else 2)",
    )
    r.add_argument(
        "--ray-gpus-per-run",
        type=float,
        default=None,
        metavar="G",
        help="GPUs per training run (default 1 when the cluster has GPUs, else 0)",
    )
    add_train_options(q)


def run(args: argparse.Namespace) -> int:
    import contextlib
    import os

    from divita.cli._errors import stop_on_signals

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from divita.cli._extraction_options import extraction_settings
    from divita.studies import StudyOptions, get_study, parse_weights

    study = get_study(args.study)
    backbones = [b.strip() for b in (args.backbone or "").split(",") if b.strip()]
    if not study.trains:
        options = StudyOptions(
            out=args.out,
            backbones=backbones,
            device=args.device,
            extraction=extraction_settings(args),
            extra=study.configure(args),
            train=train_config(args, data_dir=args.out, image_store="(none)", video_store=None),
        )
        result = study.run(options)
        print(result.markdown)
        return 0
    if args.ray is not None:
        from divita.distributed.cluster import require_ray

        require_ray()  # before any extraction or training: a missing extra is a usage error
    options = StudyOptions(
        out=args.out,
        videos=args.videos,
        labels=args.labels,
        backbones=backbones,
        splits=args.splits,
        train=train_config(args, data_dir=args.out, image_store="(per run)", video_store=None, split=0),
        features_dir=args.features,
        weights=parse_weights(args.weights),
        extraction=extraction_settings(args, skip=("weights",)),  # --weights: per backbone, above
        device=args.device,
        threads=args.threads,
        decode_threads=args.decode_threads,
        split_seed=args.split_seed,
        ray=args.ray,
        ray_cpus_per_run=args.ray_cpus_per_run,
        ray_gpus_per_run=args.ray_gpus_per_run,
        progress=not args.no_progress,
        extra=study.configure(args),
    )
    # Ctrl-C / SIGTERM while a run trains: it stops after its step and is kept as it stands (trained again by a
    # rerun), finished runs are kept; elsewhere (extraction, which resumes by video) it stops at once
    with stop_on_signals() if args.ray is None else contextlib.nullcontext() as stop:
        options.stop = stop
        result = study.run(options)
    print()
    print(result.markdown)
    return 0
