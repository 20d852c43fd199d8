"""``divita download``: fetch, verify and unpack the Trailers12k release (Zenodo record 5716410)."""

from __future__ import annotations

import argparse
import sys

from divita.datasets.release import ZENODO_BASE_URL

DEFAULT_DATA_DIR = "trailers12k"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "download",
        help="download, verify (md5) and unpack the Trailers12k release features",
        description=(
            "Download mtgc.csv and the six *.zarr.tar.gz feature archives of the Trailers12k release "
            "(Zenodo record 5716410, ~40 GB in all), verify their md5, and unpack each archive into "
            "DIR/<name>.zarr. Interrupted transfers resume; a rerun skips what is already verified."
        ),
    )
    p.add_argument(
        "--data-dir",
        default=DEFAULT_DATA_DIR,
        metavar="DIR",
        help=f"where the release goes (default: ./{DEFAULT_DATA_DIR})",
    )
    p.add_argument(
        "--only", nargs="+", metavar="NAME",
        help="fetch only these files: mtgc.csv, or an archive by file name, store name or stem "
        "(e.g. trailers_i_shufflenet_fpc24); default: all",
    )  # fmt: skip
    p.add_argument(
        "--base-url", default=ZENODO_BASE_URL, metavar="URL",
        help="a mirror holding the same file names (fetched as URL/NAME?download=1); default: Zenodo",
    )  # fmt: skip
    p.add_argument(
        "--checksums", metavar="FILE", help="md5sum-format file ('<md5>  <name>' lines) overriding the published md5s"
    )
    p.add_argument(
        "--keep-archives", action="store_true", help="keep each .tar.gz after unpacking it (default: delete it)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars or status lines on stderr")
    p.add_argument(
        "--retries",
        type=int,
        default=3,
        metavar="N",
        help="retries after a network error that made no progress (default: 3)",
    )
    p.add_argument("--timeout", type=float, default=60.0, metavar="S", help="network timeout in seconds (default: 60)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from divita.datasets.download import fetch_release
    from divita.datasets.release_files import read_checksums

    checksums = read_checksums(args.checksums) if args.checksums else None
    results = fetch_release(
        args.data_dir,
        only=args.only,
        base_url=args.base_url,
        checksums=checksums,
        progress=not args.no_progress,
        timeout=args.timeout,
        retries=max(0, args.retries),
        keep_archives=args.keep_archives,
    )
    for r in results:
        if r.skipped:
            what = "already verified, skipped"
        else:
            what = (
                ("resumed and downloaded" if r.resumed else "downloaded") if r.downloaded else "verified existing file"
            )
            what += ", md5 ok"
            if r.extracted:
                what += ", extracted" + ("" if r.archive_kept else " (archive deleted)")
        print(f"{r.name}: {what} -> {r.path}")
    n_down = sum(r.downloaded for r in results)
    n_skip = sum(r.skipped for r in results)
    n_extr = sum(r.extracted for r in results)
    print(
        f"{len(results)} files in {args.data_dir}: {n_down} downloaded, {n_skip} skipped, {n_extr} extracted",
        file=sys.stdout,
    )
    return 0
