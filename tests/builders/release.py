"""The tiny release-format dataset's store names and a TrainConfig over it (the ``tiny_release`` fixture of
``tests/conftest.py`` makes the dataset)."""

from __future__ import annotations

IMAGE_STORE = "trailers_i_shufflenet_fpc24.zarr"
VIDEO_STORE = "trailers_k_shufflenet_fps24_fpc24.zarr"


def tiny_config(release, **kw):
    """A TrainConfig over both stores of ``release`` (split 0, 3 epochs, batch 8, one thread), ``kw`` overriding."""
    from divita.training import TrainConfig

    base = dict(
        data_dir=str(release),
        image_store=IMAGE_STORE,
        video_store=VIDEO_STORE,
        split=0,
        max_epochs=3,
        batch_size=8,
        threads=1,
    )
    return TrainConfig(**{**base, **kw})
