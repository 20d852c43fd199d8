"""Miniature release-format datasets with a planted, learnable genre signal.

Used by ``divita demo`` (an offline end-to-end run of the reproduction flow), by the tests and by the
benchmarks. The layout is the published Trailers12k one: ``mtgc.csv`` plus zarr format-2 stores with
attribute ``num_features`` and one float32 array (clips, features) per trailer id.

The signal: every genre has a prototype direction per modality; a clip shows one of its trailer's
genres (or nothing, for a noise clip) as ``noise + strength * prototype``. The image stream carries
some genres more clearly and the video stream others, so late fusion beats either stream alone.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from divita.datasets.labels import LABEL_COLUMNS
from divita.fileio import file_hexdigest
from divita.genres import GENRES, NUM_GENRES

# Approximate genre prevalences of Trailers12k (drama and comedy common, sci-fi and fantasy rare).
PREVALENCE = np.array([0.28, 0.18, 0.36, 0.18, 0.48, 0.10, 0.16, 0.22, 0.10, 0.28])


@dataclass
class SyntheticSpec:
    num_trailers: int = 300
    min_clips: int = 12
    max_clips: int = 90
    image_features: int = 64
    video_features: int = 48
    image_store: str = "trailers_i_shufflenet_fpc24.zarr"
    video_store: str = "trailers_k_shufflenet_fps24_fpc24.zarr"
    strength: float = 1.5
    noise_clip_fraction: float = 0.35
    seed: int = 0


def make_labels(num_trailers: int, rng: np.random.Generator) -> np.ndarray:
    """(N, 10) 0/1 labels with realistic prevalences and at least one genre per trailer."""
    y = (rng.random((num_trailers, NUM_GENRES)) < PREVALENCE).astype(np.int64)
    empty = y.sum(1) == 0
    y[empty, rng.choice(NUM_GENRES, empty.sum(), p=PREVALENCE / PREVALENCE.sum())] = 1
    return y


def make_splits(num_trailers: int, rng: np.random.Generator, fractions=(0.7, 0.15, 0.15)) -> np.ndarray:
    """(N, 3) subset codes (0 train, 1 validation, 2 test) for 3 independent random splits."""
    out = np.zeros((num_trailers, 3), dtype=np.int64)
    n_trn = int(round(fractions[0] * num_trailers))
    n_val = int(round(fractions[1] * num_trailers))
    for s in range(3):
        order = rng.permutation(num_trailers)
        out[order[n_trn : n_trn + n_val], s] = 1
        out[order[n_trn + n_val :], s] = 2
    return out


def make_clips(
    labels_row: np.ndarray, prototypes: np.ndarray, genre_gain: np.ndarray, n: int, spec: SyntheticSpec, rng
) -> np.ndarray:
    """(n, F) float32 clip features of one trailer for one modality."""
    num_features = prototypes.shape[1]
    genres = np.flatnonzero(labels_row)
    shown = rng.choice(genres, n)
    signal = spec.strength * genre_gain[shown, None] * prototypes[shown]
    signal[rng.random(n) < spec.noise_clip_fraction] = 0.0
    x = rng.standard_normal((n, num_features)) + signal
    return (0.5 * x + 0.2).astype(np.float32)  # an offset and scale, as real backbone features have


def write_store(path: Path, arrays: dict[str, np.ndarray], num_features: int, zarr_format: int = 2) -> None:
    import zarr

    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    group = zarr.open_group(str(tmp), mode="w", zarr_format=zarr_format)
    group.attrs["num_features"] = int(num_features)
    for mid, x in arrays.items():
        a = group.create_array(mid, shape=x.shape, dtype="float32", chunks=x.shape)
        a[...] = x
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)


def make_release(data_dir: str | Path, spec: SyntheticSpec | None = None, progress: bool = False) -> Path:
    """Write mtgc.csv and the image and video stores of ``spec`` into ``data_dir``; returns data_dir."""
    import pandas as pd

    spec = spec or SyntheticSpec()
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    mids = [f"tt{9000000 + i:07d}" for i in range(spec.num_trailers)]
    labels = make_labels(spec.num_trailers, rng)
    splits = make_splits(spec.num_trailers, rng)
    df = pd.DataFrame({"mid": mids})
    for g, col in enumerate(GENRES):
        df[col] = labels[:, g]
    for s in range(3):
        df[f"split{s}"] = splits[:, s]
    df = df[list(LABEL_COLUMNS)]
    lengths = rng.integers(spec.min_clips, spec.max_clips + 1, spec.num_trailers)

    # Image stream sees genres 0-6 clearly, video stream genres 3-9: complementary evidence.
    gains = {"image": np.r_[np.ones(7), 0.25 * np.ones(3)], "video": np.r_[0.25 * np.ones(3), np.ones(7)]}
    for modality, store, num_features in (
        ("image", spec.image_store, spec.image_features),
        ("video", spec.video_store, spec.video_features),
    ):
        if not store:
            continue
        prototypes = rng.standard_normal((NUM_GENRES, num_features))
        prototypes /= np.linalg.norm(prototypes, axis=1, keepdims=True)  # unit directions: SNR set by strength
        arrays = {}
        it = range(spec.num_trailers)
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(it, desc=f"synthesise {store}", unit="trailer", leave=False)
        for i in it:
            arrays[mids[i]] = make_clips(labels[i], prototypes, gains[modality], int(lengths[i]), spec, rng)
        write_store(data_dir / store, arrays, num_features)
    df.to_csv(data_dir / "mtgc.csv", index=False)
    return data_dir


def make_mirror(data_dir: str | Path, mirror_dir: str | Path) -> dict[str, str]:
    """Pack a release-format directory like the Zenodo record (mtgc.csv + one .zarr.tar.gz per store)
    into ``mirror_dir``; returns file name -> md5."""
    data_dir, mirror_dir = Path(data_dir), Path(mirror_dir)
    mirror_dir.mkdir(parents=True, exist_ok=True)
    sums = {}
    shutil.copy(data_dir / "mtgc.csv", mirror_dir / "mtgc.csv")
    sums["mtgc.csv"] = file_hexdigest(mirror_dir / "mtgc.csv")
    for store in sorted(p for p in data_dir.iterdir() if p.suffix == ".zarr"):
        name = f"{store.name}.tar.gz"
        with tarfile.open(mirror_dir / name, "w:gz") as tar:
            tar.add(store, arcname=store.name)
        sums[name] = file_hexdigest(mirror_dir / name)
    return sums
