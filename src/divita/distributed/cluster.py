"""The Ray connection: import it (an optional extra), join or start a cluster, fail fast on a dead address.

Ray is an optional extra (``pip install 'divita[ray]'``); nothing here imports it before a function is called,
and :func:`require_ray` turns its absence into a one-line :class:`DivitaError`.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

from divita.errors import DivitaError

INSTALL_HINT = "Ray is not installed: pip install 'divita[ray]'"
CONNECT_TIMEOUT_S = 5.0  # an address must accept a TCP connection this fast (ray.init itself retries for minutes)
TASK_RETRIES = 3  # Ray-level retries of prepare/train tasks and of actor calls after a restart


def require_ray():
    """The ``ray`` module, or DivitaError telling how to install it."""
    try:
        import ray
    except ImportError:
        raise DivitaError(None, INSTALL_HINT) from None
    return ray


def is_local_address(address: str | None) -> bool:
    """True for the addresses that start a new Ray instance on this machine (None, "" or "local")."""
    return address in (None, "", "local")


def connect(
    address: str | None = None,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    object_store_memory: int | None = None,
    quiet: bool = True,
) -> bool:
    """Make sure this process is a Ray driver; returns True when this call started it (then call
    :func:`disconnect`). ``address`` None or "local": a new local instance on this machine; "auto": the
    cluster running here (``ray start --head`` / a worker node); "HOST:PORT" or "ray://HOST:10001": that one.
    Reuses a session already initialised by the caller."""
    ray = require_ray()
    if ray.is_initialized():
        return False
    import logging

    kw: dict[str, Any] = {
        "log_to_driver": not quiet or bool(os.environ.get("DIVITA_DEBUG")),
        "logging_level": logging.WARNING if quiet else logging.INFO,
    }
    if is_local_address(address):
        kw.update(
            address="local",
            include_dashboard=False,
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            object_store_memory=object_store_memory,
        )
    else:
        kw["address"] = address
        check_reachable(address)
    try:
        ray.init(**kw)
    except ConnectionError as e:
        raise DivitaError(address, f"cannot reach a Ray cluster ({e}); start one with `ray start --head`") from None
    return True


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Raise DivitaError unless ``address`` ("HOST:PORT" or "ray://HOST:PORT") accepts a TCP connection within
    ``timeout`` seconds; given an address nobody answers at, ``ray.init`` retries for minutes before failing.
    "auto" and addresses without a port are left to Ray (it fails fast on those)."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        reason = "timed out" if isinstance(e, TimeoutError) else (e.strerror or str(e)).lower()
        raise DivitaError(
            address,
            f"cannot reach a Ray cluster there ({reason}); start one with `ray start --head` "
            "or give the address it printed",
        ) from None


def disconnect(started: bool) -> None:
    """Shut Ray down when :func:`connect` started it (``started``), else leave the caller's session alone."""
    if started:
        require_ray().shutdown()


def ray_reason(err: BaseException) -> str:
    """One line saying why Ray failed (the innermost cause's type and first line)."""
    cause = getattr(err, "cause", None) or err
    text = str(cause).strip().splitlines()
    first = next((t for t in text if t.strip() and not t.startswith(("\x1b", " "))), text[0] if text else "")
    return f"{type(cause).__name__}: {first}"[:300]


_REMOTE: dict[Callable, Any] = {}


def remote(fn: Callable):
    """``ray.remote(fn)``, made once per process on first use (so importing a module of remote functions needs no
    Ray)."""
    if fn not in _REMOTE:
        _REMOTE[fn] = require_ray().remote(fn)
    return _REMOTE[fn]


def cancel_all(refs) -> None:
    """Cancel the tasks of ``refs`` still running (after an error or an interrupt), ignoring those already gone."""
    ray = require_ray()
    for ref in refs:
        try:
            ray.cancel(ref, force=True)
        except Exception:
            pass


__all__ = [
    "CONNECT_TIMEOUT_S",
    "INSTALL_HINT",
    "TASK_RETRIES",
    "check_reachable",
    "connect",
    "disconnect",
    "is_local_address",
    "ray_reason",
    "remote",
    "require_ray",
]
