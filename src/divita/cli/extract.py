"""``divita extract``: trailer videos -> clip-feature stores that ``divita train`` reads like the release's."""

from __future__ import annotations

import argparse
import sys

from divita.cli._limits import add_limit_options

CLIP_OPTIONS = ("fpc", "min_clip_frames", "frames_per_clip_2d")  # how shots are cut into clips, what a 2D backbone sees


def add_parser(sub) -> None:
    from divita.cli._extraction_options import add_extraction_options
    from divita.cli.shots import add_detector_args

    p = sub.add_parser(
        "extract",
        help="extract clip features from videos into release-layout feature stores",
        description=(
            "Decode each video once (resampled to --fps), detect shots, cut each shot into clips of --fpc "
            "frames that never cross a cut, and encode every clip with each backbone. Writes, per backbone, "
            "OUT/trailers_{i|k|ik}_{name}_fps{fps}_fpc{fpc}.zarr (one float32 (clips, features) array per "
            "video id = file stem, with its shots and clip spans), OUT/shots/<id>.json, OUT/videos.csv and, "
            "for videos that could not be used, OUT/failures.csv. Resumable: a rerun skips finished videos. "
            "With --labels, also OUT/mtgc.csv so that `divita train --data-dir OUT` trains on the result. "
            "Exit status: 0 all done, 1 some video failed, 2 usage error."
        ),
    )
    p.add_argument(
        "videos", nargs="+", metavar="VIDEO_OR_DIR", help="video files and/or directories (searched recursively)"
    )
    p.add_argument(
        "--backbone",
        required=True,
        metavar="NAME[,NAME...]",
        help="backbone(s), comma-separated (see `divita backbones`)",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (created if needed)")
    add_extraction_options(p, ("weights",))
    add_detector_args(p)
    add_extraction_options(p, (*CLIP_OPTIONS, "precision", "batch_size"))
    p.add_argument("--threads", type=int, default=None, metavar="N", help="torch threads (default: torch's choice)")
    p.add_argument(
        "--decode-threads", type=int, default=0, metavar="N", help="decoder threads (default: FFmpeg's choice)"
    )
    p.add_argument(
        "--labels",
        metavar="CSV",
        help="labels in the mtgc.csv layout (mid, 10 genres, optional split0..2): write OUT/mtgc.csv",
    )
    p.add_argument(
        "--split-seed",
        type=int,
        default=0,
        metavar="S",
        help="seed for generated splits when --labels has none (default: 0)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    g = p.add_argument_group("Ray (optional extra: pip install 'divita[ray]')")
    g.add_argument(
        "--ray",
        nargs="?",
        const="local",
        default=None,
        metavar="ADDRESS",
        help="run on Ray: decode + shots in CPU tasks, backbones in (GPU) actors that load their weights once. "
        "No ADDRESS starts a local Ray instance (put --ray after the videos, or write --ray=local); "
        "'auto' joins the cluster running here; or HOST:PORT / ray://HOST:10001. Same stores and "
        "failures.csv as without --ray: either resumes the other's work",
    )
    g.add_argument(
        "--ray-encoders",
        type=int,
        default=None,
        metavar="N",
        help="encoder actors (default: one per GPU of the cluster, else 1)",
    )
    g.add_argument(
        "--ray-encoder-gpus",
        type=float,
        default=None,
        metavar="G",
        help="GPUs per encoder actor; fractions share a GPU, e.g. 0.5 (default: 1 when the cluster has GPUs, else 0)",
    )
    g.add_argument(
        "--ray-encoder-cpus", type=float, default=1.0, metavar="C", help="CPUs per encoder actor (default: 1)"
    )
    g.add_argument(
        "--ray-prepare-cpus", type=float, default=1.0, metavar="C", help="CPUs per decode/shots task (default: 1)"
    )
    g.add_argument(
        "--ray-prepare-gpus",
        type=float,
        default=0.0,
        metavar="G",
        help="GPUs per decode/shots task: TransNetV2 then runs on CUDA (default: 0, CPU)",
    )
    g.add_argument(
        "--ray-in-flight",
        type=int,
        default=None,
        metavar="N",
        help="videos in the pipeline at once (default: prepare tasks that fit next to the encoders + encoders)",
    )
    g.add_argument(
        "--ray-retries",
        type=int,
        default=2,
        metavar="K",
        help="times a video is resubmitted after its worker or actor died before it is recorded as failed (default: 2)",
    )
    g.add_argument(
        "--storage-options",
        metavar="JSON",
        default=None,
        help="fsspec options for a URL --out (e.g. s3://bucket/prefix with --ray), as a JSON object",
    )
    add_limit_options(p, run)  # no limits unless given: a person chose the files


def run(args: argparse.Namespace) -> int:
    import os

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: no spinning threads next to the decoder
    from divita.cli._extraction_options import extraction_settings
    from divita.errors import DivitaError
    from divita.features.extract import extract, format_summary
    from divita.features.outputs import is_url

    names = [b.strip() for b in args.backbone.split(",") if b.strip()]
    if not names:
        raise DivitaError(None, "--backbone names no backbone")
    settings = extraction_settings(args, names)  # checked before anything loads
    if args.ray is not None:
        if args.max_duration is not None or args.max_pixels is not None:
            raise DivitaError(None, "--max-duration and --max-pixels apply to local extraction only (not with --ray)")
        return run_ray(args, settings)
    if is_url(args.out):
        raise DivitaError(args.out, "an output URL needs --ray (the local path writes to a directory)")
    if args.storage_options:
        raise DivitaError(None, "--storage-options applies to a URL --out, which needs --ray")
    summary = extract(
        args.videos,
        None,
        args.out,
        settings=settings,
        device=args.device,
        threads=args.threads,
        decode_threads=args.decode_threads,
        labels=args.labels,
        split_seed=args.split_seed,
        progress=not args.no_progress,
    )
    print(format_summary(summary), file=sys.stderr)
    return 0 if summary.ok else 1


def run_ray(args: argparse.Namespace, settings) -> int:
    """``--ray``: the same extraction on a Ray cluster (the prepare tasks run the detector on CUDA exactly when
    they get a GPU share)."""
    import json

    from divita.distributed.cluster import require_ray
    from divita.errors import DivitaError
    from divita.features.extract import format_summary

    require_ray()
    from divita.distributed.extract import extract_ray
    from divita.distributed.options import RayOptions

    options = None
    if args.storage_options:
        try:
            options = json.loads(args.storage_options)
        except ValueError as e:
            raise DivitaError(None, f"--storage-options is not JSON ({e})") from None
        if not isinstance(options, dict):
            raise DivitaError(None, "--storage-options must be a JSON object")
    encoder_gpus = args.ray_encoder_gpus
    if encoder_gpus is None and str(args.device) == "cpu":
        encoder_gpus = 0.0  # --device cpu: no GPU share even on a GPU cluster
    ray_options = RayOptions(
        address=args.ray,
        encoders=args.ray_encoders,
        encoder_gpus=encoder_gpus,
        encoder_cpus=args.ray_encoder_cpus,
        prepare_cpus=args.ray_prepare_cpus,
        prepare_gpus=args.ray_prepare_gpus,
        in_flight=args.ray_in_flight,
        retries=args.ray_retries,
    )
    summary = extract_ray(
        args.videos,
        None,
        args.out,
        settings=settings,
        options=ray_options,
        storage_options=options,
        threads=args.threads,
        decode_threads=args.decode_threads,
        labels=args.labels,
        split_seed=args.split_seed,
        progress=not args.no_progress,
    )
    print(format_summary(summary), file=sys.stderr)
    return 0 if summary.ok else 1
