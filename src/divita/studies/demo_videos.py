"""Small generated trailers whose genre is visible, cut into shots, for ``divita demo --study`` and the tests.

Each genre has a look: a base colour and vertical stripes moving sideways at a genre speed (``LOOKS``). A
trailer of genre ``g`` is a few shots of different lengths; each shot shows ``g``'s look with its own tint,
stripe width and phase, and a hard cut separates shots (a clear colour change, which TransNetV2 finds). Some
shots are "neutral" (grey, still), so that a clip that crosses a cut mixes a genre shot with a neutral one:
the segmentation study then has something to find. Videos are H.264 MP4 at 24 fps, 96x64 by default.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from divita.errors import DivitaError
from divita.fileio import atomic_write_text
from divita.genres import GENRES

# genre -> (RGB colour, stripe speed in pixels per frame at 24 fps)
LOOKS: dict[str, tuple[tuple[int, int, int], int]] = {
    "action": ((220, 40, 30), 6),
    "comedy": ((250, 220, 60), 1),
    "horror": ((20, 30, 90), 0),
    "romance": ((230, 120, 190), 2),
}
NEUTRAL = (128, 128, 128)
FPS = 24


def shot_frames(
    colour: Sequence[int], speed: int, frames: int, rng: np.random.Generator, size: tuple[int, int] = (96, 64)
) -> Iterator[np.ndarray]:
    """uint8 (H, W, 3) frames of one shot: ``colour`` brightened or darkened and tinted at random, dark stripes of a
    random width moving ``speed`` px/frame to the right."""
    w, h = size
    base = np.clip(np.asarray(colour) * rng.uniform(0.7, 1.15) + rng.integers(-40, 41, 3), 0, 255).astype(np.uint8)
    dark = (base * 0.55).astype(np.uint8)
    width = int(rng.integers(5, 13))
    phase = int(rng.integers(0, 2 * width))
    x = np.arange(w)
    for i in range(frames):
        img = np.empty((h, w, 3), np.uint8)
        img[:] = base
        img[:, ((x + phase + speed * i) // width) % 2 == 0] = dark
        yield img


def trailer_frames(
    genres: str | Sequence[str],
    rng: np.random.Generator,
    shots: int = 4,
    size: tuple[int, int] = (96, 64),
    min_frames: int = 20,
    max_frames: int = 44,
    neutral: float = 0.3,
) -> Iterator[np.ndarray]:
    """The frames of one trailer of ``genres``: ``shots`` shots of ``min_frames..max_frames`` frames, each neutral
    with probability ``neutral`` (never the first), else the look of one of its genres (the first shot: the first
    genre's)."""
    genres = [genres] if isinstance(genres, str) else list(genres)
    for k in range(shots):
        length = int(rng.integers(min_frames, max_frames + 1))
        if k > 0 and rng.random() < neutral:
            yield from shot_frames(NEUTRAL, 0, length, rng, size)
        else:
            colour, speed = LOOKS[genres[0] if k == 0 else genres[int(rng.integers(len(genres)))]]
            yield from shot_frames(colour, speed, length, rng, size)


def write_video(path: str | Path, frames: Iterator[np.ndarray], fps: int = FPS) -> Path:
    """Encode uint8 (H, W, 3) RGB frames as H.264 (yuv420p) at ``fps``."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    frames = iter(frames)
    first = next(frames)
    with av.open(str(tmp), mode="w") as out:
        stream = out.add_stream("libx264", rate=Fraction(fps))
        stream.height, stream.width = first.shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "18"}
        img, i = first, 0
        while img is not None:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
            i += 1
            img = next(frames, None)
        for packet in stream.encode():
            out.mux(packet)
    tmp.replace(path)
    return path


def make_demo_videos(
    out: str | Path,
    per_genre: int = 9,
    genres: Sequence[str] = tuple(LOOKS),
    shots: int = 4,
    size: tuple[int, int] = (96, 64),
    seed: int = 0,
    splits: bool = True,
    second_genre: float = 0.35,
) -> tuple[Path, Path]:
    """Write ``out/videos/<genre><k>.mp4`` (``per_genre`` per genre) and ``out/labels.csv`` (mid, the 10 genres,
    and, with ``splits``, split0..2 dealing each genre's videos about 70/15/15 into train/val/test, shifted per
    split). A video of ``genre`` also has, with probability ``second_genre``, a second genre among ``genres``, whose
    look some of its shots show.

    Videos already there are kept (a rerun only writes what is missing). Returns (video directory, labels CSV)."""
    import pandas as pd

    unknown = [g for g in genres if g not in LOOKS]
    if unknown:
        raise DivitaError(None, f"no look for genre(s) {', '.join(unknown)}; choose from {', '.join(LOOKS)}")
    if per_genre < 3 and splits:
        raise DivitaError(None, f"at least 3 videos per genre are needed for train/val/test splits, got {per_genre}")
    out = Path(out)
    videos = out / "videos"
    rows = []
    for gi, genre in enumerate(genres):
        codes = subset_codes(per_genre)
        for k in range(per_genre):
            mid = f"{genre}{k}"
            path = videos / f"{mid}.mp4"
            rng = np.random.default_rng([seed, gi, k])
            own = [genre]
            if len(genres) > 1 and rng.random() < second_genre:
                own.append(genres[(gi + 1 + int(rng.integers(len(genres) - 1))) % len(genres)])
            if not path.is_file():
                write_video(path, trailer_frames(own, rng, shots=shots, size=size))
            row = {"mid": mid, **{g: int(g in own) for g in GENRES}}
            if splits:
                row.update({f"split{s}": int(codes[(k + 3 * s) % per_genre]) for s in range(3)})
            rows.append(row)
    labels = out / "labels.csv"
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(labels, pd.DataFrame(rows).to_csv(index=False))
    return videos, labels


def subset_codes(n: int) -> list[int]:
    """Subset codes (0 train, 1 validation, 2 test) for ``n`` items: at least one validation and one test item,
    about 70/15/15."""
    val = max(1, round(0.15 * n))
    tst = max(1, round(0.15 * n))
    return [0] * (n - val - tst) + [1] * val + [2] * tst


__all__ = ["LOOKS", "make_demo_videos", "shot_frames", "subset_codes", "trailer_frames", "write_video"]
