"""The ``divita`` command line: a thin layer over the Python API.

Each subcommand lives in ``divita.cli.<name>`` with an ``add_parser(subparsers)`` function that
registers its arguments and sets ``func(args) -> int``; modules there stay cheap to import (torch and
friends are imported inside the command's function), so that ``divita --help`` is instant. Errors the user can fix (:class:`DivitaError`)
print one line naming the file and the problem and exit nonzero, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from divita.errors import DivitaError


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
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except DivitaError as e:
        print(f"divita {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"divita {args.command}: interrupted", file=sys.stderr)
        return 130
    except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as e:
        if os.environ.get("DIVITA_DEBUG"):
            raise
        where = getattr(e, "filename", None)
        print(f"divita {args.command}: error: {where}: {e.strerror or e}", file=sys.stderr)
        return 2
