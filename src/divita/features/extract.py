"""Trailer videos -> clip features: decode once, detect shots, cut clips, encode with every backbone, store.

:func:`process_video` handles one video (the function ``predict`` reuses): a decode thread feeds a bounded
queue with chunks of frames at every size the run needs (one decode for all stages and backbones), the
calling thread pushes the 48x27 frames to the shot detector's stream and, as soon as a shot's clips are
certain, encodes them in batches with each backbone and frees the frames no later clip needs. Memory does not
grow with the video's length (about 800 frames at the backbone sizes at most).

:func:`extract` runs :func:`process_video` over many videos and writes, per backbone, a zarr v3 store in the
release layout (``OUT/trailers_{prefix}_{name}_fps{fps}_fpc{fpc}.zarr``: one float32 (clips, features)
array per video id = file stem, group attributes ``num_features`` and ``extraction``), plus
``OUT/shots/<id>.json`` (shots, clips, seconds), ``OUT/videos.csv`` (one row per finished video) and
``OUT/failures.csv`` (video, reason) for the videos that could not be used. A video's arrays are committed
atomically; a rerun skips videos present in every requested store, recomputes the missing ones and cleans up
what a killed run left behind. With ``labels`` it also writes ``OUT/mtgc.csv`` so ``divita train --data-dir
OUT`` can train on the result.
"""

from __future__ import annotations

import csv
import io
import json
import os
import queue
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from divita.clips import ClipStream, clip_frame_indices, default_min_frames
from divita.errors import DivitaError
from divita.fileio import atomic_write_text
from divita.shots import TRANSNET_SIZE, Detector, Span, shots_from_gaps
from divita.video import OutputSize, VideoDecoder, VideoError, find_videos

MAX_ASPECT = 8.0  # wider (or taller) than this: no sensible centre crop, recorded as a failure
CHUNK_FRAMES = 24  # frames per decode-queue item
QUEUE_CHUNKS = 12  # bounded decode queue (12 x 24 frames, ~125 MB at 455x256 + 228x128)
FAILURES_FILE = "failures.csv"
VIDEOS_FILE = "videos.csv"
SHOTS_DIR = "shots"


# ------------------------------------------------------------------------------------------ frame buffer


class FrameBuffer:
    """Frames ``[start, end)`` of one size, held as chunks; frames before a point can be dropped."""

    def __init__(self):
        self.chunks: list[tuple[int, np.ndarray]] = []  # (first index, (n, H, W, 3))
        self.end = 0

    def append(self, frames: np.ndarray) -> None:
        self.chunks.append((self.end, frames))
        self.end += len(frames)

    @property
    def start(self) -> int:
        return self.chunks[0][0] if self.chunks else self.end

    def drop_before(self, index: int) -> None:
        while self.chunks and self.chunks[0][0] + len(self.chunks[0][1]) <= index:
            self.chunks.pop(0)

    def take(self, indices: Sequence[int]) -> np.ndarray:
        """Frames at ``indices`` (uint8 (len, H, W, 3))."""
        out = []
        ci = 0
        for i in indices:
            if i < self.start or i >= self.end:
                raise IndexError(f"frame {i} is not held (buffer has [{self.start}, {self.end}))")
            # chunks are sorted; indices are mostly increasing
            if not (self.chunks[ci][0] <= i < self.chunks[ci][0] + len(self.chunks[ci][1])):
                ci = next(k for k, (s, c) in enumerate(self.chunks) if s <= i < s + len(c))
            s, c = self.chunks[ci]
            out.append(c[i - s])
        return np.stack(out)


# ------------------------------------------------------------------------------------------ one video


@dataclass
class VideoResult:
    """What :func:`process_video` found and computed for one video."""

    path: str
    fps: float
    num_frames: int
    shots: list[Span]
    clips: list[Span]
    features: dict[str, np.ndarray]  # backbone name -> (clips, num_features) float32
    info: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)

    def clip_seconds(self) -> list[list[float]]:
        return [[round(s / self.fps, 4), round((e + 1) / self.fps, 4)] for s, e in self.clips]

    def record(self) -> dict:
        """JSON-able summary (shots/<id>.json)."""
        return {
            "video": self.path, "fps": self.fps, "num_frames": self.num_frames,
            "shots": [list(s) for s in self.shots], "clips": [list(c) for c in self.clips],
            "clip_seconds": self.clip_seconds(), **self.info,
        }


def _encoder_frames(encoder, fpc: int) -> list[int] | None:
    """Positions (within a clip of ``fpc`` frames) the encoder actually looks at, when it says so, so only
    those frames are gathered; None = pass all ``fpc`` frames."""
    try:
        from divita.backbones import sample_frame_indices
    except ImportError:
        return None
    spec = getattr(encoder, "spec", None)
    kind = getattr(spec, "kind", None)
    n = getattr(encoder, "clip_frames", None) if kind == "3d" else getattr(encoder, "frames_per_clip_2d", None)
    if not isinstance(n, int) or n < 1:
        return None
    idx = sample_frame_indices(fpc, n)
    # sampling again inside encode() must be the identity on these frames
    if sample_frame_indices(len(idx), n) != list(range(n)):
        return None
    return idx


def _side_key(side: int | None) -> str:
    return f"side{side}" if side else "native"


def _decode_thread(decoder: VideoDecoder, q: "queue.Queue", stop: threading.Event) -> None:
    """Put chunks {name: (n, H, W, 3)} on ``q``, then None; an exception is put as itself."""
    try:
        buf: dict[str, list[np.ndarray]] = {}
        count = 0
        for frames in decoder:
            if stop.is_set():
                return
            for k, v in frames.items():
                buf.setdefault(k, []).append(v)
            count += 1
            if count == CHUNK_FRAMES:
                q.put({k: np.stack(v) for k, v in buf.items()})
                buf, count = {}, 0
        if count:
            q.put({k: np.stack(v) for k, v in buf.items()})
        q.put(None)
    except BaseException as e:  # handed to the consumer
        q.put(e)


def process_video(
    path: str | os.PathLike,
    encoders: Sequence[Any],
    detector: Detector,
    fps: float = 24.0,
    fpc: int = 24,
    min_clip_frames: int | None = None,
    batch_size: int = 16,
    decode_threads: int = 0,
    on_frames: Callable[[int], None] | None = None,
) -> VideoResult:
    """Decode ``path`` once and return its shots, clips and each encoder's clip features.

    ``encoders``: objects with ``spec.name``, ``min_side`` and ``encode(uint8 (B, T, H, W, 3)) -> (B, F)``.
    Raises :class:`VideoError` for unusable videos.
    """
    t_start = time.perf_counter()
    sides = sorted({int(getattr(e, "min_side", 0) or 0) for e in encoders})
    outputs: dict[str, OutputSize] = {_side_key(s): OutputSize(min_side=s or None) for s in sides}
    needs_small = detector.name != "fixed"
    if needs_small:
        outputs["small"] = OutputSize(exact=TRANSNET_SIZE)
    if not outputs:
        outputs["small"] = OutputSize(exact=TRANSNET_SIZE)
    decoder = VideoDecoder(path, fps, outputs, threads=decode_threads)
    info = decoder.info
    aspect = max(info.width, info.height) / max(1, min(info.width, info.height))
    if aspect > MAX_ASPECT:
        raise VideoError(path, f"extreme aspect ratio {info.width}x{info.height} (over {MAX_ASPECT:g}:1): no sensible centre crop")

    stream = detector.stream()
    clip_stream = ClipStream(fpc, min_clip_frames)
    buffers = {_side_key(s): FrameBuffer() for s in sides}
    head: dict[str, np.ndarray] = {}  # first fpc frames per side, for the fallback clip
    positions = {id(e): _encoder_frames(e, fpc) for e in encoders}
    pending: list[Span] = []
    done_clips: list[Span] = []
    feats: dict[str, list[np.ndarray]] = {e.spec.name: [] for e in encoders}
    t_encode = 0.0

    def encode(clips: list[Span]) -> None:
        nonlocal t_encode
        if not clips:
            return
        t0 = time.perf_counter()
        for e in encoders:
            key = _side_key(int(getattr(e, "min_side", 0) or 0))
            pos = positions[id(e)]
            batch = []
            for c in clips:
                idx = clip_frame_indices(c, fpc)
                if pos is not None:
                    idx = [idx[p] for p in pos]
                if c[1] < fpc and c[0] == 0 and key in head and buffers[key].start > 0:
                    batch.append(head[key][idx])
                else:
                    batch.append(buffers[key].take(idx))
            x = np.stack(batch)
            out = e.encode(x)
            out = out.detach().cpu().numpy() if hasattr(out, "detach") else np.asarray(out)
            feats[e.spec.name].append(np.asarray(out, dtype=np.float32).reshape(len(clips), -1))
        done_clips.extend(clips)
        t_encode += time.perf_counter() - t0

    q: queue.Queue = queue.Queue(maxsize=QUEUE_CHUNKS)
    stop = threading.Event()
    th = threading.Thread(target=_decode_thread, args=(decoder, q, stop), daemon=True, name="divita-decode")
    th.start()
    n = 0
    try:
        while True:
            item = q.get()
            if item is None:
                break
            if isinstance(item, BaseException):
                raise item
            m = len(next(iter(item.values())))
            for key, buf in buffers.items():
                buf.append(item[key])
                if n < fpc:
                    have = head.get(key)
                    add = item[key][: fpc - n]
                    head[key] = add.copy() if have is None else np.concatenate([have, add])
            stream.push(item["small"] if "small" in item else np.zeros((m, 1, 1, 3), np.uint8))
            n += m
            if on_frames:
                on_frames(m)
            pending.extend(clip_stream.update(stream))
            while len(pending) >= batch_size:
                encode(pending[:batch_size])
                del pending[:batch_size]
            keep = min([c[0] for c in pending] + [max(0, stream.final - fpc)])
            for buf in buffers.values():
                buf.drop_before(keep)
    finally:
        stop.set()
        while th.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                th.join(timeout=0.05)
    stream.finish(n)
    shots = shots_from_gaps(stream.gaps, n)
    pending.extend(clip_stream.finish(stream, n))
    for i in range(0, len(pending), batch_size):
        encode(pending[i : i + batch_size])
    order = sorted(range(len(done_clips)), key=lambda i: done_clips[i])
    clips = [done_clips[i] for i in order]
    features = {}
    for name, parts in feats.items():
        x = np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
        features[name] = x[order] if len(x) else x
        if len(x) and not np.isfinite(x).all():
            raise VideoError(path, f"backbone {name} produced NaN/inf features")
    wall = time.perf_counter() - t_start
    return VideoResult(
        path=str(path), fps=float(fps), num_frames=n, shots=shots, clips=clips, features=features,
        info={"width": info.width, "height": info.height, "rotation": info.rotation, "source_fps": round(info.fps, 4),
              "source_frames": decoder.stats.source_frames, "duration": round(decoder.stats.duration, 4)},
        timings={"wall": wall, "encode": t_encode},
    )


# ------------------------------------------------------------------------------------------ the batch


@dataclass
class ExtractSummary:
    out_dir: str
    stores: dict[str, str]  # backbone -> store path
    done: list[str] = field(default_factory=list)  # ids extracted in this run
    skipped: list[str] = field(default_factory=list)  # ids already complete
    failed: dict[str, str] = field(default_factory=dict)  # video path -> reason
    frames: int = 0
    seconds: float = 0.0
    labels: str | None = None

    @property
    def ok(self) -> bool:
        return not self.failed


class FailureLog:
    """OUT/failures.csv (video, reason), rewritten atomically on every change."""

    def __init__(self, out_dir: Path):
        self.path = out_dir / FAILURES_FILE
        self.rows: dict[str, str] = {}
        if self.path.is_file():
            with open(self.path, newline="") as f:
                for row in csv.DictReader(f):
                    if row.get("video"):
                        self.rows[row["video"]] = row.get("reason", "")

    def _save(self) -> None:
        if not self.rows:
            self.path.unlink(missing_ok=True)
            return
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["video", "reason"])
        for k, v in self.rows.items():
            w.writerow([k, v])
        atomic_write_text(self.path, buf.getvalue())

    def fail(self, video: str, reason: str) -> None:
        self.rows[video] = reason
        self._save()

    def clear(self, video: str) -> None:
        if self.rows.pop(video, None) is not None:
            self._save()


def load_encoders(backbones: Sequence[Any], weights: str = "default", device: str = "cpu", precision: str = "auto",
                  frames_per_clip_2d: int = 3) -> list:
    """Backbone names (or ready encoder objects, passed through) -> ClipEncoders."""
    out = []
    for b in backbones:
        if isinstance(b, str):
            from divita.backbones import load_encoder

            out.append(load_encoder(b, weights=weights, device=device, precision=precision, frames_per_clip_2d=frames_per_clip_2d))
        else:
            out.append(b)
    names = [e.spec.name for e in out]
    if len(set(names)) != len(names):
        raise DivitaError(None, f"backbone listed twice: {', '.join(names)}")
    return out


def video_ids(videos: Sequence[Path]) -> tuple[list[tuple[str, Path]], dict[str, str]]:
    """(id, path) per video (id = file stem), and failures for ids already taken by an earlier input."""
    seen: dict[str, Path] = {}
    ok, dup = [], {}
    for p in videos:
        mid = p.stem
        if mid in seen:
            dup[str(p)] = f"duplicate video id {mid!r} (same file stem as {seen[mid]}); rename one of them"
            continue
        seen[mid] = p
        ok.append((mid, p))
    return ok, dup


def extract(
    inputs: Sequence[str | os.PathLike],
    backbones: Sequence[Any],
    out_dir: str | os.PathLike,
    *,
    weights: str = "default",
    fps: float = 24.0,
    fpc: int = 24,
    min_clip_frames: int | None = None,
    detector: Detector | str = "transnetv2",
    threshold: float = 0.5,
    device: str = "auto",
    precision: str = "auto",
    frames_per_clip_2d: int = 3,
    batch_size: int = 16,
    threads: int | None = None,
    decode_threads: int = 0,
    labels: str | os.PathLike | None = None,
    split_seed: int = 0,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> ExtractSummary:
    """Extract clip features of every video in ``inputs`` (files or directories) with every backbone."""
    import torch

    from divita import __version__

    log = log or (lambda s: print(s, file=sys.stderr))
    if fpc < 1:
        raise DivitaError(None, f"frames per clip must be at least 1, got {fpc}")
    if not fps or fps <= 0:
        raise DivitaError(None, f"fps must be positive, got {fps}")
    if min_clip_frames is not None and not 1 <= min_clip_frames <= fpc:
        raise DivitaError(None, f"--min-clip-frames must be between 1 and fpc={fpc}, got {min_clip_frames}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if str(device) == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if threads:
        torch.set_num_threads(int(threads))
    if isinstance(detector, str):
        detector = Detector(detector, threshold=threshold, device=device, precision=precision, fps=fps, segment_frames=fpc)
    detector.load()
    encoders = load_encoders(backbones, weights, device, precision, frames_per_clip_2d)
    if not encoders:
        raise DivitaError(None, "no backbone given")

    from divita.features.store import clean_partial, commit_video_arrays, committed_ids, create_store, store_dir_name

    clean_partial(out)
    det_params = detector.params()
    m_frames = default_min_frames(fpc) if min_clip_frames is None else int(min_clip_frames)
    stores: dict[str, str] = {}
    for e in encoders:
        spec = e.spec
        path = out / store_dir_name(spec.store_prefix, spec.name, fps, fpc)
        extraction = {
            "backbone": e.settings(), "fps": float(fps), "fpc": int(fpc), "min_clip_frames": m_frames,
            "detector": det_params, "divita": __version__,
            "clips": "shots cut into fpc-frame clips that never cross a cut (see divita.clips)",
        }
        create_store(path, spec.num_features, extraction)
        stores[spec.name] = str(path)

    videos = find_videos(inputs)
    if not videos:
        raise DivitaError(None, "no video files found in the inputs")
    ids, dups = video_ids(videos)
    failures = FailureLog(out)
    summary = ExtractSummary(str(out), stores)
    for v, reason in dups.items():
        failures.fail(v, reason)
        summary.failed[v] = reason
    have = {name: committed_ids(p) for name, p in stores.items()}
    (out / SHOTS_DIR).mkdir(exist_ok=True)

    bar_videos = bar_frames = None
    if progress:
        from tqdm import tqdm

        bar_videos = tqdm(total=len(ids), desc="videos", unit="video", position=0, dynamic_ncols=True)
        bar_frames = tqdm(desc="frames", unit="frame", position=1, dynamic_ncols=True, smoothing=0.1)
    t0 = time.perf_counter()
    try:
        for mid, path in ids:
            todo = [e for e in encoders if mid not in have[e.spec.name]]
            if not todo:
                summary.skipped.append(mid)
                failures.clear(str(path))
                if bar_videos is not None:
                    bar_videos.update(1)
                continue
            try:
                from divita.features.store import check_array_id

                check_array_id(mid)
                result = process_video(
                    path, todo, detector, fps=fps, fpc=fpc, min_clip_frames=min_clip_frames, batch_size=batch_size,
                    decode_threads=decode_threads, on_frames=(bar_frames.update if bar_frames is not None else None),
                )
            except (VideoError, DivitaError) as err:
                reason = err.problem
                failures.fail(str(path), reason)
                summary.failed[str(path)] = reason
                log(f"divita extract: {path}: {reason}")
            except Exception as err:  # a bug or an odd file we did not foresee: record it and go on
                if os.environ.get("DIVITA_DEBUG"):
                    raise
                reason = f"{type(err).__name__}: {err}".splitlines()[0][:300]
                failures.fail(str(path), reason)
                summary.failed[str(path)] = reason
                log(f"divita extract: {path}: {reason}")
                log(traceback.format_exc(limit=3))
            else:
                record = result.record()
                atomic_write_text(out / SHOTS_DIR / f"{mid}.json", json.dumps({"id": mid, **record}))
                attrs = {
                    "shots": record["shots"], "clips": record["clips"], "clip_seconds": record["clip_seconds"],
                    "fps": float(fps), "source": str(path), "num_frames": result.num_frames,
                }
                commit_video_arrays(out, mid, {stores[e.spec.name]: (result.features[e.spec.name], attrs) for e in todo})
                failures.clear(str(path))
                summary.done.append(mid)
                summary.frames += result.num_frames
            if bar_videos is not None:
                bar_videos.update(1)
    finally:
        if bar_frames is not None:
            bar_frames.close()
        if bar_videos is not None:
            bar_videos.close()
        summary.seconds = time.perf_counter() - t0
        write_videos_csv(out, stores)
    if labels is not None:
        summary.labels = str(write_labels(labels, out, stores, seed=split_seed, log=log))
    return summary


def write_videos_csv(out: Path, stores: dict[str, str]) -> None:
    """OUT/videos.csv: one row per video complete in every store of this run (from shots/<id>.json)."""
    from divita.features.store import committed_ids

    complete = set.intersection(*(committed_ids(p) for p in stores.values())) if stores else set()
    rows = []
    for mid in sorted(complete):
        f = out / SHOTS_DIR / f"{mid}.json"
        try:
            r = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        rows.append([mid, r.get("video", ""), r.get("fps"), r.get("num_frames"), len(r.get("shots", [])),
                     len(r.get("clips", [])), r.get("duration", "")])
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["id", "video", "fps", "num_frames", "shots", "clips", "duration_s"])
    w.writerows(rows)
    atomic_write_text(out / VIDEOS_FILE, buf.getvalue())


# ------------------------------------------------------------------------------------------ labels


def make_splits(labels: np.ndarray, seed: int = 0, fractions=(0.7, 0.15, 0.15), num_splits: int = 3) -> np.ndarray:
    """(N, num_splits) subset codes (0 train, 1 validation, 2 test): random, stratified on each trailer's
    rarest genre (trailers sorted by it, then dealt in blocks of 20 as 14/3/3)."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    prevalence = labels.sum(0) + 1e-9
    rarest = np.where(labels.any(1), np.argmin(np.where(labels > 0, prevalence[None, :], np.inf), axis=1), -1)
    block = np.array([0] * round(20 * fractions[0]) + [1] * round(20 * fractions[1]) + [2] * round(20 * fractions[2]))
    out = np.zeros((n, num_splits), np.int64)
    for s in range(num_splits):
        order = rng.permutation(n)
        order = order[np.argsort(rarest[order], kind="stable")]
        codes = np.concatenate([rng.permutation(block) for _ in range(-(-n // len(block)))])[:n]
        out[order, s] = codes
        # tiny sets: make sure every subset is non-empty when possible
        for code in (1, 2, 0):
            if n >= 3 and not (out[:, s] == code).any():
                counts = np.bincount(out[:, s], minlength=3)
                donor = int(np.argmax(counts))
                i = rng.choice(np.flatnonzero(out[:, s] == donor))
                out[i, s] = code
    return out


def write_labels(labels_csv: str | os.PathLike, out: Path, stores: dict[str, str], seed: int = 0,
                 log: Callable[[str], None] | None = None) -> Path:
    """OUT/mtgc.csv in the release layout from a labels CSV (mid + the 10 genre columns, split0..2 optional),
    keeping the trailers present in every store; splits are generated when the CSV has none."""
    import pandas as pd

    from divita.datasets.labels import LABEL_COLUMNS, SPLIT_COLUMNS, read_labels_csv
    from divita.genres import GENRES
    from divita.features.store import committed_ids

    log = log or (lambda s: print(s, file=sys.stderr))
    src = Path(labels_csv)
    df = read_labels_csv(src, "labels file not found")
    missing = [c for c in ("mid", *GENRES) if c not in df.columns]
    if missing:
        raise DivitaError(src, f"missing column(s) {', '.join(missing)} (needs mid and the 10 genre columns: {', '.join(GENRES)})")
    has_splits = [c in df.columns for c in SPLIT_COLUMNS]
    if any(has_splits) and not all(has_splits):
        raise DivitaError(src, "has some but not all of split0, split1, split2")
    df["mid"] = df["mid"].astype(str).str.strip()
    if df["mid"].duplicated().any():
        raise DivitaError(src, f"duplicate mid {df['mid'][df['mid'].duplicated()].iloc[0]!r}")
    for g in GENRES:
        vals = pd.to_numeric(df[g], errors="coerce")
        if vals.isna().any() or not vals.isin([0, 1]).all():
            raise DivitaError(src, f"genre column {g!r} must hold 0/1")
        df[g] = vals.astype(np.int64)
    complete = set.intersection(*(committed_ids(p) for p in stores.values()))
    keep = df["mid"].isin(complete)
    dropped = df.loc[~keep, "mid"].tolist()
    if dropped:
        log(f"divita extract: {len(dropped)} labelled trailer(s) have no features (failed or not given) and are left out of mtgc.csv: "
            + ", ".join(dropped[:10]) + (" ..." if len(dropped) > 10 else ""))
    df = df.loc[keep].reset_index(drop=True)
    if len(df) == 0:
        raise DivitaError(src, "no labelled trailer has features in the output; mtgc.csv not written")
    if not all(has_splits):
        splits = make_splits(df[list(GENRES)].to_numpy(), seed=seed)
        for i, c in enumerate(SPLIT_COLUMNS):
            df[c] = splits[:, i]
    df = df[list(LABEL_COLUMNS)]
    path = out / "mtgc.csv"
    atomic_write_text(path, df.to_csv(index=False))
    return path


def format_summary(s: ExtractSummary) -> str:
    lines = [
        f"extracted {len(s.done)} video(s), skipped {len(s.skipped)} already done, {len(s.failed)} failed"
        + (f"; {s.frames} frames in {s.seconds:.1f} s ({s.frames / s.seconds:.0f} frames/s)" if s.seconds > 0 and s.frames else ""),
    ]
    for name, p in s.stores.items():
        lines.append(f"  {name}: {p}")
    if s.failed:
        lines.append(f"  failures ({Path(s.out_dir) / FAILURES_FILE}):")
        for v, r in list(s.failed.items())[:20]:
            lines.append(f"    {v}: {r}")
        if len(s.failed) > 20:
            lines.append(f"    ... and {len(s.failed) - 20} more")
    if s.labels:
        lines.append(f"  labels: {s.labels}")
    return "\n".join(lines)


__all__ = [
    "ExtractSummary",
    "FrameBuffer",
    "VideoResult",
    "extract",
    "format_summary",
    "load_encoders",
    "make_splits",
    "process_video",
    "write_labels",
]
