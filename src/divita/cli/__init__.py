"""The ``divita`` command line: a thin layer over the Python API.

Each subcommand lives in ``divita.cli.<name>`` with an ``add_parser(subparsers)`` function that
registers its arguments and sets ``func(args) -> int``; modules there stay cheap to import (torch and
friends are imported inside the command's function), so that ``divita --help`` is instant. Faults the user can act on
(:class:`DivitaError`, a full disk, an unwritable output, a damaged store, Ctrl-C or SIGTERM) print one line naming
the file and the problem and exit nonzero, without a traceback (``DIVITA_DEBUG=1`` shows it): see
:mod:`divita.cli._errors`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys


def build_parser() -> argparse.ArgumentParser:
    from divita import __version__

    parser = argparse.ArgumentParser(prog="divita", description="Movie trailer genre classification with DIViTA.")
    parser.add_argument("--version", action="version", version=f"divita {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"divita.cli.{info.name}")
        if hasattr(module, "add_parser"):
            module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Before torch loads: idle OpenMP threads sleep instead of spinning, so a busy neighbour (another job,
    # a decode thread) does not make every parallel region wait for a descheduled spinning thread.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        args = build_parser().parse_args(argv)
    except KeyboardInterrupt:  # Ctrl-C while the commands' modules load
        print("divita: interrupted", file=sys.stderr)
        return 130
    from divita.cli._errors import run_command

    return run_command(args.command, lambda: args.func(args))
