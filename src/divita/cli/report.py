"""`divita report`: PNG figures and a markdown page for a run directory or a results directory."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser(
        "report",
        help="figures and a markdown page for a run or results directory",
        description="Draw PNG figures and write report.md for RUN_OR_RESULTS_DIR: a `divita train` run directory "
        "(per-genre test AP in both conventions, precision-recall curves, label co-occurrence, "
        "prediction-error matrix, training curves) or a `divita reproduce`/`divita demo` results directory "
        "(μAP/mAP/wAP/sAP per Table 6 row next to the paper's, per-genre AP per row, and the pictures of one "
        "representative run per row).",
    )
    p.add_argument(
        "path", metavar="RUN_OR_RESULTS_DIR", help="a run directory, a results directory, or its transfer/ directory"
    )
    p.add_argument("--out", default=None, help="where to write the report (default RUN_OR_RESULTS_DIR/report)")
    p.add_argument("--quiet", action="store_true", help="print only the markdown file's path")
    p.set_defaults(func=run)


def run(args) -> int:
    from divita.reporting.report import make_report

    pictures: list[str] = []
    md = make_report(args.path, args.out, log=pictures.append)
    if args.quiet:
        print(md)
        return 0
    print(f"{len(pictures)} pictures:")
    for p in pictures:
        print(p)
    print(f"report: {md}")
    return 0
