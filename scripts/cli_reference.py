"""Write docs/cli.md, the command-line reference: the ``--help`` of ``divita`` and of every subcommand.

The text comes from the parser the ``divita`` command itself builds (``divita.cli.build_parser()``), formatted
at a fixed width of 100 columns so that the file is the same on every terminal. ``--check`` writes nothing and
exits with status 1 when docs/cli.md differs from what would be written (CI runs it).
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib
import io
import os
import pkgutil
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "docs" / "cli.md"
WIDTH = 100

HEADER = """\
# Command-line reference

Every option of every `divita` command, as `divita COMMAND --help` prints it. This page is generated from the
parser itself by `scripts/cli_reference.py` (`make cli-docs`); CI fails when it is out of date, so edit the
help texts in `src/divita/cli/`, not this file. The user guide is the [README](../README.md); the other pages
of `docs/` explain what the commands do.
"""


def help_text(argv: list[str]) -> str:
    """What ``divita ARGV --help`` prints on stdout (ARGV: [] for the top level, [command] for a subcommand)."""
    from divita.cli import build_parser

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        build_parser().parse_args([*argv, "--help"])
    if not out.getvalue():
        raise SystemExit(f"divita {' '.join(argv)} --help printed nothing: is it a command?")
    return out.getvalue().rstrip() + "\n"


def commands() -> list[str]:
    """The subcommands: one per public module of ``divita.cli``, named after it (its ``add_parser``)."""
    import divita.cli

    names = [m.name for m in pkgutil.iter_modules(divita.cli.__path__) if not m.name.startswith("_")]
    return sorted(n for n in names if hasattr(importlib.import_module(f"divita.cli.{n}"), "add_parser"))


def render() -> str:
    """The whole of docs/cli.md."""
    os.environ["COLUMNS"] = str(WIDTH)  # argparse wraps help at the terminal's width; fix it
    os.environ["NO_COLOR"] = "1"
    names = commands()
    links = "Commands: " + ", ".join(f"[`{n}`](#divita-{n})" for n in names) + "."
    parts = [HEADER, textwrap.fill(links, WIDTH + 10, break_long_words=False, break_on_hyphens=False) + "\n"]
    parts.append(f"## divita\n\n```text\n{help_text([])}```\n")
    for name in names:
        parts.append(f"## divita {name}\n\n```text\n{help_text([name])}```\n")
        parts += [f"### divita {name} {sub}\n\n```text\n{help_text([name, sub])}```\n" for sub in subcommands(name)]
    return "\n".join(parts)


def subcommands(name: str) -> list[str]:
    """The subcommands of a command that has them (``divita study NAME``)."""
    if name == "study":
        from divita.studies import list_studies

        return list_studies()
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the file is out of date; write nothing")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the file (default: docs/cli.md)")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.out.read_text() if args.out.exists() else ""
        if current == text:
            print(f"{args.out} is up to date")
            return 0
        diff = difflib.unified_diff(current.splitlines(True), text.splitlines(True), str(args.out), "generated")
        sys.stderr.writelines(list(diff)[:60])
        print(f"{args.out} is out of date: run `make cli-docs` (python scripts/cli_reference.py)", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
