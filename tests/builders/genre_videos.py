"""Generated videos whose genre is visible (a colour and a stripe motion per genre), and a checkpoint trained on
them through the CLI: `divita extract` (EfficientNet-Lite0 with its packaged ImageNet weights, fixed shots), then
`divita train` on the image store. Shared by the predict, serve and browser tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from builders.videos import write_video
from divita.cli import main
from divita.genres import GENRES

# genre -> (RGB colour, horizontal stripe speed in pixels/frame)
LOOKS = {"action": ((220, 40, 30), 6), "comedy": ((250, 220, 60), 1), "horror": ((20, 30, 90), 0)}


def genre_video(path, genre, seed, frames=72, size=(96, 64)):
    """A small video whose colour and stripe motion say its genre."""
    colour, speed = LOOKS[genre]
    rng = np.random.default_rng(seed)
    w, h = size
    base = np.clip(np.array(colour) + rng.integers(-25, 26, 3), 0, 255).astype(np.uint8)
    x = np.arange(w)

    def frame(i):
        img = np.empty((h, w, 3), np.uint8)
        img[:] = base
        img[:, ((x + speed * i) // 8) % 2 == 0] = (base * 0.55).astype(np.uint8)
        return img

    return write_video(path, (frame(i) for i in range(frames)), fps=24)


def train_genre_checkpoint(
    root: Path, splits: Sequence[int], seed: Callable[[str, int, str], int], max_epochs: int, batch_size: int
) -> Path:
    """Per genre, one video ``<genre><k>`` for each entry of ``splits`` (its split, 0 train / 1 val / 2 test, the
    same in split0..2; ``seed(genre, k, mid)`` seeds its colour), in root/videos with root/labels.csv, and a
    held-out root/new/new_<genre>.mp4; extract them into root/data and train root/run on split 0 (one thread,
    lr 3e-3). Returns root/run/best.ckpt."""
    rows = []
    for g in LOOKS:
        for k, split in enumerate(splits):
            mid = f"{g}{k}"
            genre_video(root / "videos" / f"{mid}.mp4", g, seed=seed(g, k, mid))
            rows.append({"mid": mid, **{c: int(c == g) for c in GENRES}, **{f"split{s}": split for s in range(3)}})
        genre_video(root / "new" / f"new_{g}.mp4", g, seed=999)  # held out: nobody trains on it
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)
    data = root / "data"
    extract = ["extract", str(root / "videos"), "--backbone", "efficientnet_lite0", "--out", str(data)]
    assert main([*extract, "--detector", "fixed", "--labels", str(root / "labels.csv"), "--no-progress"]) == 0
    store = next(p.name for p in data.iterdir() if p.suffix == ".zarr")
    run = root / "run"
    train = ["train", "--data-dir", str(data), "--ix", store, "--vx", "none", "--split", "0", "--out", str(run)]
    options = ["--max-epochs", str(max_epochs), "--lr", "3e-3", "--batch-size", str(batch_size), "--threads", "1"]
    assert main([*train, *options, "--no-progress"]) == 0
    return run / "best.ckpt"
