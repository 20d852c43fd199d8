"""`divita reproduce`: the 8 rows of the paper's Table 6 x 3 splits, resumable, with the comparison table."""

from __future__ import annotations

from divita.cli._train_options import add_train_options, train_config


def add_parser(sub) -> None:
    from divita.datasets.release import TABLE6, ZENODO_BASE_URL

    p = sub.add_parser(
        "reproduce",
        help="reproduce Table 6 (8 rows x 3 splits)",
        description="Train every Table 6 row on every split (finished runs are kept), then write "
        "OUT/transfer/{val,tst}.csv (mean ± std over splits) and OUT/transfer/table6.md (ours vs the paper).",
    )
    p.add_argument("--data-dir", required=True, help="dataset directory (mtgc.csv and the release stores)")
    p.add_argument("--out", default="results", help="results directory (default ./results)")
    p.add_argument("--splits", type=int, nargs="+", choices=(0, 1, 2), default=[0, 1, 2])
    p.add_argument(
        "--rows",
        nargs="+",
        metavar="ROW",
        help="Table 6 rows to run (default all): " + ", ".join(r.name for r in TABLE6),
    )
    p.add_argument("--download", action="store_true", help="fetch missing release files first (see `divita download`)")
    p.add_argument(
        "--base-url", default=ZENODO_BASE_URL, help="mirror holding the release file names (with --download)"
    )
    p.add_argument("--checksums", help="md5sum-format file overriding the published md5s (with --download)")
    add_ray_options(p)
    add_train_options(p)
    p.set_defaults(func=run)


def add_ray_options(p) -> None:
    g = p.add_argument_group("Ray (optional extra: pip install 'divita[ray]')")
    g.add_argument(
        "--ray",
        nargs="?",
        const="local",
        default=None,
        metavar="ADDRESS",
        help="train the runs as parallel Ray tasks: no ADDRESS starts a local Ray instance, 'auto' joins "
        "the cluster running here, or HOST:PORT / ray://HOST:10001. Run directories must be on a "
        "filesystem the driver writes; --data-dir must be readable at the same path on every node",
    )
    g.add_argument(
        "--ray-cpus-per-run",
        type=float,
        default=None,
        metavar="K",
        help="CPUs per training run (and torch threads; default 1 with a GPU, else 2)",
    )
    g.add_argument(
        "--ray-gpus-per-run",
        type=float,
        default=None,
        metavar="G",
        help="GPUs per training run (default 1 when the cluster has GPUs, else 0)",
    )


def run(args) -> int:
    import contextlib

    from divita.cli._errors import stop_on_signals
    from divita.datasets.download import download_release
    from divita.datasets.release_files import read_checksums, require_data
    from divita.evaluation.reproduce import reproduce

    if args.ray is not None:
        from divita.distributed.cluster import require_ray

        require_ray()  # before any download or training: a missing extra is a usage error
    base = train_config(args, data_dir=args.data_dir, image_store="(per row)", video_store=None, split=0)

    def ensure(stores: list[str]) -> None:
        if args.download:
            checksums = read_checksums(args.checksums) if args.checksums else None
            download_release(
                args.data_dir,
                only=["mtgc.csv", *stores],
                base_url=args.base_url,
                checksums=checksums,
                progress=not args.no_progress,
            )
        require_data(args.data_dir, stores)

    # Ctrl-C / SIGTERM: the current run stops after its step and is kept as it stands, finished runs are kept
    with stop_on_signals() if args.ray is None else contextlib.nullcontext() as stop:
        result = reproduce(
            args.data_dir,
            args.out,
            rows=args.rows,
            splits=args.splits,
            base=base,
            progress=not args.no_progress,
            ensure_data=ensure,
            ray_address=args.ray,
            ray_cpus_per_run=args.ray_cpus_per_run,
            ray_gpus_per_run=args.ray_gpus_per_run,
            stop=stop,
        )
    print()
    print(result["table"])
    print(f"tables: {result['dir']}/tst.csv, {result['dir']}/val.csv, {result['dir']}/table6.md")
    return 0
