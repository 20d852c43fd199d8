"""Videos/s of `divita extract` locally and on Ray (1 and 2 workers) on this machine, and Ray's cost per video.

    python benchmarks/extract_scaling.py [--videos 8] [--seconds 10] [--size 640x360] [--backbone shufflenet]
                                         [--detector transnetv2] [--workers 1 2] [--json FILE]

Generates ``--videos`` trailers-like videos (shots of ~2 s joined by hard cuts), then extracts them:

- **local**: ``divita.features.extract.extract`` (one process; decode thread + TransNetV2 + backbone, torch
  threads = cores);
- **ray W**: ``divita.distributed.extract.extract_ray`` on a local Ray instance with W encoder actors and W decode/shot
  tasks at a time (one torch thread each; Ray is given 2·W logical CPUs so that the W + W processes are
  scheduled whatever the physical core count). Ray's workers run at nice 0 here, like the local process (Ray's
  default, nice 15, lets anything else running on the machine starve them). Each Ray run starts with empty
  outputs and fresh actors.

Reported: steady-state videos/s and frames/s (the extraction loop only, models loaded) and the start-up
cost separately (local: loading the models; Ray: ``ray.init`` + actors loading the backbones). Then Ray's own
cost per video: 1-s 64x36 videos with the ``fixed`` detector, where the compute is close to nothing, extracted
one at a time (``in_flight=1``) by both paths: the difference in seconds per video is what Ray adds (task
scheduling, actor calls, moving frames through the object store, returning features). Also printed: the uint8
frames shipped to the encoders per clip and per minute of video, at the chosen backbone's decode size.

Backbone weights are ``random`` (same compute as the pretrained ones, offline). Not a timed test: numbers
depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Ray starts its workers at nice 15 (polite on a shared workstation; nothing competes on a cluster node). Here
# the local path runs at nice 0, so Ray's workers must too, or anything else on the machine starves them.
os.environ.setdefault("RAY_worker_niceness", "0")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def make_videos(cache: Path, n: int, seconds: float, size: tuple[int, int]) -> Path:
    from builders import videos

    d = cache / f"scaling_{n}x{seconds:g}s_{size[0]}x{size[1]}"
    d.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        p = d / f"v{i:03d}.mp4"
        if not p.is_file():
            tmp = p.with_suffix(".tmp.mp4")
            videos.streamed_shots_video(tmp, seconds=seconds, size=size, fps=24, seed=100 + i, mean_shot=2.0)
            os.replace(tmp, p)
    return d


def tiny_videos(cache: Path, n: int) -> Path:
    from builders import videos

    d = cache / f"scaling_tiny_{n}"
    d.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        p = d / f"t{i:03d}.mp4"
        if not p.is_file():
            videos.cuts_video(p, shots=(24,), size=(64, 36), seed=i)
    return d


def run_local(src: Path, out: Path, backbone: str, detector: str, threads: int | None = None) -> dict:
    from divita.features.extract import extract

    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    s = extract(
        [src], [backbone], out, weights="random", detector=detector, progress=False, threads=threads, log=lambda m: None
    )
    wall = time.perf_counter() - t
    assert not s.failed, s.failed
    return {"videos": len(s.done), "frames": s.frames, "loop_s": s.seconds, "startup_s": wall - s.seconds}


def run_ray(src: Path, out: Path, backbone: str, detector: str, workers: int, in_flight: int | None = None) -> dict:
    import ray

    from divita.distributed.extract import extract_ray
    from divita.distributed.options import RayExtractStats

    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    ray.init(num_cpus=2 * workers, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    init_s = time.perf_counter() - t
    try:
        stats = RayExtractStats()
        s = extract_ray(
            [src],
            [backbone],
            out,
            weights="random",
            detector=detector,
            progress=False,
            encoders=workers,
            encoder_cpus=1,
            prepare_cpus=1,
            threads=1,
            in_flight=in_flight,
            stats=stats,
            log=lambda m: None,
        )
    finally:
        ray.shutdown()
    assert not s.failed, s.failed
    return {
        "videos": len(s.done),
        "frames": s.frames,
        "loop_s": s.seconds,
        "startup_s": init_s + stats.startup_s,
        "ray_init_s": init_s,
        "in_flight": stats.in_flight,
        "video_latency_s": sum(stats.video_wall) / max(1, len(stats.video_wall)),
        "prepare_s": sum(stats.prepare_wall) / max(1, len(stats.prepare_wall)),
        "waiting_for_encoders_s": sum(stats.waiting_for_encoders) / max(1, len(stats.waiting_for_encoders)),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--backbone", default="shufflenet")
    ap.add_argument("--detector", default="transnetv2")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--tiny", type=int, default=12, help="1-s videos for the per-video overhead (default 12)")
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "divita-bench"))
    ap.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    args = ap.parse_args(argv)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    cache = Path(args.cache)
    src = make_videos(cache, args.videos, args.seconds, size)
    work = Path(tempfile.mkdtemp(prefix="divita-scaling-"))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"{args.videos} videos x {args.seconds:g} s at {size[0]}x{size[1]} 24 fps, "
        f"backbone {args.backbone} (random weights), "
        f"detector {args.detector}, {cores} CPU cores"
    )
    results: dict[str, dict] = {}
    try:
        results["local"] = run_local(src, work / "local", args.backbone, args.detector)
        for w in args.workers:
            results[f"ray {w}"] = run_ray(src, work / f"ray{w}", args.backbone, args.detector, w)

        print()
        head = f"{'':<10}{'videos/s':>10}{'frames/s':>10}{'vs local':>10}{'start-up s':>12}{'latency s/video':>17}"
        print(head)
        print("-" * len(head))
        base = results["local"]["videos"] / results["local"]["loop_s"]
        for name, r in results.items():
            vps = r["videos"] / r["loop_s"]
            lat = f"{r['video_latency_s']:.2f}" if "video_latency_s" in r else "-"
            print(
                f"{name:<10}{vps:>10.3f}{r['frames'] / r['loop_s']:>10.1f}{vps / base:>9.2f}x"
                f"{r['startup_s']:>12.1f}{lat:>17}"
            )

        tiny = tiny_videos(cache, args.tiny)
        loc = run_local(tiny, work / "tiny_local", args.backbone, "fixed", threads=1)
        ray1 = run_ray(tiny, work / "tiny_ray", args.backbone, "fixed", 1, in_flight=1)
        per_local, per_ray = loc["loop_s"] / loc["videos"], ray1["loop_s"] / ray1["videos"]
        results["overhead"] = {
            "local_s_per_video": per_local,
            "ray_s_per_video": per_ray,
            "ray_overhead_s": per_ray - per_local,
        }
        print()
        print(
            f"Ray's own cost per video ({args.tiny} x 1-s 64x36 videos, fixed detector, one video at a time): "
            f"local {1000 * per_local:.0f} ms/video, Ray {1000 * per_ray:.0f} ms/video -> "
            f"{1000 * (per_ray - per_local):+.0f} ms per video"
        )

        from divita.backbones import load_encoder

        enc = load_encoder(args.backbone, weights="random", precision="float32")
        w, h = size
        side = enc.min_side
        dw, dh = (max(side, round(w * side / h)), side) if h <= w else (side, max(side, round(h * side / w)))
        per_frame = dw * dh * 3
        n = enc.clip_frames if enc.spec.kind == "3d" else enc.frames_per_clip_2d
        per_clip = per_frame * n
        results["shipped"] = {"bytes_per_clip": per_clip, "bytes_per_minute": per_clip * 60}
        print(
            f"frames shipped to the encoders: {n} x {dw}x{dh} uint8 = {per_clip / 1e6:.2f} MB per clip, "
            f"~{per_clip * 60 / 1e6:.0f} MB per minute of video (about one clip per second)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
