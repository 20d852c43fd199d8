"""The CLI's error boundary: what a command's fault looks like to the user.

Every command runs inside :func:`run_command`. A fault the user can act on ends in one line on stderr,
``divita <command>: error: <path>: <problem>``, and a nonzero exit status, without a traceback:

- :class:`~divita.errors.DivitaError` (bad input, a damaged store, a full disk the code saw coming);
- an ``OSError`` with an errno (a full disk, a read-only or unwritable output, a missing file), also when a
  library raised its own error while handling it (``torch.save``'s ``RuntimeError: ... unexpected pos``);
- an interrupt: SIGINT (Ctrl-C) gives ``divita <command>: interrupted`` and exit 130, SIGTERM the same with
  exit 143. Commands that stop gracefully (``train``, ``reproduce``) catch the signals themselves with
  :func:`stop_on_signals`.

``DIVITA_DEBUG=1`` prints the traceback before the line. Anything else (a bug) keeps its traceback.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator

from divita.errors import DivitaError, Interrupted

EXIT_SIGNAL_BASE = 128  # a command stopped by signal N exits 128 + N: 130 for SIGINT, 143 for SIGTERM


def debug() -> bool:
    return bool(os.environ.get("DIVITA_DEBUG"))


def as_divita_error(e: BaseException) -> DivitaError | None:
    """The one-line error a fault means to the user, or None for an exception that is a bug."""
    from divita.fileio import os_error_in_chain, os_error_reason

    if isinstance(e, DivitaError):
        return e
    if not isinstance(e, (OSError, RuntimeError)):
        return None  # a bug, even when it happened while an OSError was handled
    cause = os_error_in_chain(e)
    if cause is None:
        if isinstance(e, OSError):  # an OSError without an errno: its message is all there is
            return DivitaError(getattr(e, "filename", None), str(e).splitlines()[0] if str(e) else type(e).__name__)
        return None
    where = cause.filename if cause.filename not in (None, "") else None
    problem = os_error_reason(cause)
    if cause.filename2 not in (None, ""):
        problem += f" (to {cause.filename2})"
    return DivitaError(os.fsdecode(where) if where is not None else None, problem)


def signal_exit_code(signum: int) -> int:
    return EXIT_SIGNAL_BASE + int(signum)


def in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """While inside: SIGTERM raises :class:`Interrupted` (like Ctrl-C raises KeyboardInterrupt), so that a
    terminated command unwinds (atomic writes remove their temporary files) and exits 143 with one line.
    Installed only from the main thread; the previous handler comes back on exit."""
    if not in_main_thread():
        yield
        return

    def handler(signum, frame):
        raise Interrupted(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class StopRequest:
    """Set by :func:`stop_on_signals` when SIGINT or SIGTERM arrives while a job runs :meth:`graceful`; the job
    polls :meth:`is_set` between steps (``train_model(stop=...)``) and ends there. Outside :meth:`graceful`
    (loading data, writing results) a signal interrupts at once. ``signum``: the first signal received."""

    def __init__(self):
        self._event = threading.Event()
        self.signum: int | None = None
        self.armed = False

    @contextlib.contextmanager
    def graceful(self) -> Iterator[None]:
        """While inside, a signal only sets the request (the job stops after its current step)."""
        before, self.armed = self.armed, True
        try:
            yield
        finally:
            self.armed = before

    def set(self, signum: int = signal.SIGINT) -> None:
        if self.signum is None:
            self.signum = int(signum)
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    @property
    def exit_code(self) -> int:
        return signal_exit_code(self.signum or signal.SIGINT)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum or signal.SIGINT).name


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """While inside: the first SIGINT or SIGTERM during the job's :meth:`StopRequest.graceful` part sets the
    yielded request instead of stopping the process, so that the job can finish its current step and write
    what it has; any other (a second one, one outside that part) raises :class:`Interrupted` at once.
    Installed only from the main thread (elsewhere the request is never set by a signal); the previous
    handlers come back on exit."""
    stop = StopRequest()
    if not in_main_thread():
        yield stop
        return

    def handler(signum, frame):
        if stop.is_set() or not stop.armed:
            raise Interrupted(signum)
        stop.set(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def run_command(command: str, func: Callable[[], int | None]) -> int:
    """Run ``func`` (a command's body) and return its exit status; a fault is one line on stderr (see the
    module's docstring)."""
    try:
        with terminate_as_interrupt():
            return int(func() or 0)
    except KeyboardInterrupt as e:
        if debug():
            traceback.print_exc()
        detail = getattr(e, "detail", "")
        print(one_line(f"divita {command}: interrupted" + (f": {detail}" if detail else "")), file=sys.stderr)
        return signal_exit_code(getattr(e, "signum", signal.SIGINT))
    except Exception as e:
        err = as_divita_error(e)
        if err is None:
            raise
        if debug():
            traceback.print_exc()
        print(one_line(f"divita {command}: error: {err}"), file=sys.stderr)
        return err.exit_code


def one_line(text: str) -> str:
    """``text`` with its line breaks as spaces: a library's multi-line message still prints on one line."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip())
