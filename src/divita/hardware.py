"""What this machine offers: CPU cores, native bfloat16, the compute device. One place for each answer."""

from __future__ import annotations

import functools
import os

from divita.errors import DivitaError

BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of CPUs that compute bfloat16 natively


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
