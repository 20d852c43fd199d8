"""`divita reproduce`: the 8 rows of the paper's Table 6 x 3 splits, resumable, with the comparison table."""

from __future__ import annotations

from divita.commands._train_options import add_train_options, quiet_lightning, train_config


def add_parser(sub) -> None:
    from divita.release import TABLE6, ZENODO_BASE_URL

    p = sub.add_parser(
        "reproduce",
        help="reproduce Table 6 (8 rows x 3 splits)",
        description="Train every Table 6 row on every split (finished runs are kept), then write "
        "OUT/transfer/{val,tst}.csv (mean ± std over splits) and OUT/transfer/table6.md (ours vs the paper).",
    )
    p.add_argument("--data-dir", required=True, help="dataset directory (mtgc.csv and the release stores)")
    p.add_argument("--out", default="results", help="results directory (default ./results)")
    p.add_argument("--splits", type=int, nargs="+", choices=(0, 1, 2), default=[0, 1, 2])
    p.add_argument("--rows", nargs="+", metavar="ROW", help="Table 6 rows to run (default all): " + ", ".join(r.name for r in TABLE6))
    p.add_argument("--download", action="store_true", help="fetch missing release files first (see `divita download`)")
    p.add_argument("--base-url", default=ZENODO_BASE_URL, help="mirror holding the release file names (with --download)")
    p.add_argument("--checksums", help="md5sum-format file overriding the published md5s (with --download)")
    add_train_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from divita.download import download_release, read_checksums, require_data
    from divita.reproduce import reproduce

    quiet_lightning()
    base = train_config(args, args.data_dir, "(per row)", None, 0)

    def ensure(stores: list[str]) -> None:
        if args.download:
            checksums = read_checksums(args.checksums) if args.checksums else None
            download_release(args.data_dir, only=["mtgc.csv", *stores], base_url=args.base_url, checksums=checksums, progress=not args.no_progress)
        require_data(args.data_dir, stores)

    result = reproduce(args.data_dir, args.out, rows=args.rows, splits=args.splits, base=base, progress=not args.no_progress, ensure_data=ensure)
    print()
    print(result["table"])
    print(f"tables: {result['dir']}/tst.csv, {result['dir']}/val.csv, {result['dir']}/table6.md")
    return 0
