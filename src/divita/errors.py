"""The one exception type the CLI turns into a one-line message and a nonzero exit."""

from __future__ import annotations

from pathlib import Path


class DivitaError(Exception):
    """A user-facing error about one file or input: ``"<where>: <problem>"``.

    The CLI prints ``str(error)`` on one line, without a traceback, and exits with ``error.exit_code``.
    """

    exit_code = 2

    def __init__(self, where: str | Path | None, problem: str):
        self.where = str(where) if where is not None else None
        self.problem = problem
        super().__init__(f"{self.where}: {problem}" if self.where else problem)


class Interrupted(KeyboardInterrupt):
    """A job stopped by a signal (SIGINT = Ctrl-C, SIGTERM): the CLI prints ``"<command>: interrupted"`` and
    ``detail`` (what was kept) on one line and exits 128 + ``signum`` (130, 143)."""

    def __init__(self, signum: int = 2, detail: str = ""):
        super().__init__(detail)
        self.signum = int(signum)
        self.detail = detail
