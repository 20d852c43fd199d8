"""What this machine offers: CPU cores, native bfloat16, the compute device, and the precision vocabulary
(the names of the numeric precisions every command accepts). One place for each answer."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence

from divita.errors import DivitaError

BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of CPUs that compute bfloat16 natively

# The precision vocabulary. Canonical names: "auto" (the fastest precision checked or known to be safe here),
# "float32", "bfloat16", "float16"; `divita extract`, `shots` and `study` take exactly these (PRECISIONS).
# `divita train` takes Lightning's spellings (TRAIN_PRECISIONS); PRECISION_SPELLINGS maps every other spelling
# to its canonical name.
PRECISIONS = ("auto", "float32", "bfloat16", "float16")
TRAIN_PRECISIONS = ("auto", "32", "bf16")
PRECISION_SPELLINGS = {
    "32": "float32",
    "fp32": "float32",
    "32-true": "float32",
    "bf16": "bfloat16",
    "bf16-mixed": "bfloat16",
}


def precision_name(precision: str, choices: Sequence[str] = PRECISIONS) -> str:
    """The canonical name (one of :data:`PRECISIONS`) of ``precision``.

    Args:
        precision: one of ``choices``, or with ``choices`` other than the canonical names, another spelling of
            one of them (:data:`PRECISION_SPELLINGS`: "32" = "fp32" = "32-true" = "float32", "bf16" =
            "bf16-mixed" = "bfloat16").
        choices: what the caller accepts: :data:`PRECISIONS` (inference) or :data:`TRAIN_PRECISIONS` (training).
    Raises:
        DivitaError: "unknown precision 'x'; choose from: <choices>".
    """
    if tuple(choices) == PRECISIONS:
        ok = precision in PRECISIONS
    else:
        ok = PRECISION_SPELLINGS.get(precision, precision) in {PRECISION_SPELLINGS.get(c, c) for c in choices}
    if not ok:
        raise DivitaError(None, f"unknown precision {precision!r}; choose from: {', '.join(choices)}")
    return PRECISION_SPELLINGS.get(precision, precision)


def auto_reduced_precision(device) -> str | None:
    """The reduced precision inference under "auto" tries on ``device`` (a torch.device): float16 on CUDA,
    bfloat16 on a CPU that computes it natively (:func:`cpu_has_native_bf16`), else None (float32 stays)."""
    if device.type == "cuda":
        return "float16"
    if device.type == "cpu" and cpu_has_native_bf16():
        return "bfloat16"
    return None


def default_threads() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as the kernel lists them (empty where /proc/cpuinfo is not there)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_has_native_bf16() -> bool:
    """Whether the CPU multiplies bfloat16 natively (AMX or AVX512-BF16), where a bfloat16 model is faster
    than float32; elsewhere bfloat16 is emulated and slower."""
    return any(flag in cpu_flags() for flag in BF16_CPU_FLAGS)


def resolve_device(device):
    """``"auto"`` -> cuda when there is one, else cpu; a torch.device, or a one-line error for a bad name or
    a CUDA device on a machine without CUDA."""
    import torch

    if str(device) == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise DivitaError(None, f"unknown device {device!r} (use cpu, cuda, cuda:N or auto)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DivitaError(None, f"device {device!r} requested but CUDA is not available")
    return dev
