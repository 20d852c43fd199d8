"""The exported inference runtimes as pytest parameters: each skipped only when its package is not installed."""

from __future__ import annotations

import importlib.util

import pytest

from divita.backbones import runtime as R

EXPORTED = [r for r in R.RUNTIMES if r != "torch"]
RUNTIME_PARAMS = [
    pytest.param(r, marks=pytest.mark.skipif(importlib.util.find_spec(r) is None, reason=f"{r} is not installed"))
    for r in EXPORTED
]
