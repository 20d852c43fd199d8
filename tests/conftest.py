"""Shared fixtures: a small generated release-format dataset (stores + mtgc.csv)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # no spinning threads when the suite shares 2 cores


@pytest.fixture(scope="session")
def tiny_release(tmp_path_factory):
    """60 trailers, 5..50 clips (some shorter than one 30-clip snippet), 16-d image and 12-d video features."""
    from divita.datasets.synthetic import SyntheticSpec, make_release

    return make_release(
        tmp_path_factory.mktemp("release"),
        SyntheticSpec(num_trailers=60, min_clips=5, max_clips=50, image_features=16, video_features=12, seed=1),
    )


@pytest.fixture(scope="module")
def runtime_cache(tmp_path_factory):
    """A runtime cache (a torch.hub directory) per test module: each network is exported once there."""
    import torch

    from divita.backbones import runtime as R

    before = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path_factory.mktemp("hub")))
    try:
        yield R.cache_dir()
    finally:
        torch.hub.set_dir(before)
