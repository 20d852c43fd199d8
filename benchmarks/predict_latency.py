"""Latency of `divita predict` on one generated 2-minute 1280x720 24-fps trailer, from a fresh process.

Builds two late-fusion checkpoints (short trainings on stores extracted from three tiny generated videos;
backbone weights ``random`` so it runs offline, with the same compute as the pretrained ones):
``shufflenet`` + ``r2plus1d`` and ``shufflenet`` + ``shufflenet3d``, then measures on the trailer:

- end to end: ``python -m divita predict TRAILER --checkpoint CKPT --json`` in a fresh process, from its start
  to the JSON line (wall seconds, and CPU seconds of the child from ``resource.getrusage``);
- each stage alone, in a fresh process per checkout: decode at every size the run needs (frames/s with the
  default decoder threads, and frames per CPU-second with one decoder thread), shot detection (TransNetV2),
  each backbone on the trailer's clips, the DIViTA head, and the start-up (imports + loading the checkpoint).

``--before SRC`` runs the same measurements against another checkout's ``src`` directory (e.g. a
``git worktree`` of an earlier commit), alternating before/after for ``--repeat`` rounds, and prints the best
(minimum) of each side and their ratio; the genres the two predict are compared too. Timings depend on what
else runs on the machine: compare the ratios, measured side by side.

    python benchmarks/predict_latency.py [--seconds 120] [--repeat 3] [--before /tmp/base/src]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

PAIRS = {"shufflenet+r2plus1d": "shufflenet,r2plus1d", "shufflenet+shufflenet3d": "shufflenet,shufflenet3d"}


# ------------------------------------------------------------------------------------------ inputs


def make_checkpoint(work: Path, backbones: str, detector: str) -> Path:
    """A late-fusion checkpoint of ``backbones`` (image, video) trained on `divita extract` stores of tiny videos."""
    import pandas as pd

    from builders import videos
    from divita.cli import main as divita
    from divita.genres import GENRES

    rows = []
    for i in range(3):
        videos.shots_video(work / "tiny" / f"v{i}.mp4", shots=(24, 30), size=(96, 64), seed=i)
        rows.append({"mid": f"v{i}", **{g: int(g == GENRES[i]) for g in GENRES}, "split0": i, "split1": i, "split2": i})
    pd.DataFrame(rows).to_csv(work / "labels.csv", index=False)
    data = work / "data"
    extract = ["extract", str(work / "tiny"), "--backbone", backbones, "--weights", "random", "--out", str(data)]
    extract += ["--detector", detector]
    assert divita([*extract, "--labels", str(work / "labels.csv"), "--no-progress"]) == 0
    stores = {p.name.split("_")[1]: p.name for p in data.iterdir() if p.suffix == ".zarr"}
    run = work / "run"
    train = ["train", "--data-dir", str(data), "--ix", stores["i"], "--vx", stores["k"], "--split", "0"]
    assert divita([*train, "--out", str(run), "--max-epochs", "1", "--no-progress"]) == 0
    return run / "best.ckpt"


def trailer(cache: Path, seconds: float) -> Path:
    from builders import videos

    video = cache / f"trailer_{int(seconds)}s_1280x720_24fps.mp4"
    if not video.is_file():
        tmp = video.with_suffix(".tmp.mp4")
        videos.streamed_shots_video(tmp, seconds=seconds, size=(1280, 720), fps=24, mean_shot=2.5)
        os.replace(tmp, video)
    return video


def checkpoint(cache: Path, name: str, detector: str) -> Path:
    """The cached checkpoint of one backbone pair whose stores were cut by ``detector`` (built once, with this
    checkout); `divita predict` replays that detector."""
    ckpt = cache / f"ckpt_{name.replace('+', '_')}_{detector}.ckpt"
    if not ckpt.is_file():
        with tempfile.TemporaryDirectory(dir=cache) as work:
            made = make_checkpoint(Path(work), PAIRS[name], detector)
            os.replace(made, ckpt)
    return ckpt


# ------------------------------------------------------------------------------------------ measurements


def child_env(src: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(src), str(ROOT / "tests")])
    return env


def end_to_end(src: Path, ckpt: Path, video: Path, extra: tuple[str, ...] = ()) -> dict:
    """`python -m divita predict --json` in a fresh process: wall and CPU seconds, and what it printed."""
    cmd = [sys.executable, "-m", "divita", "predict", str(video), "--checkpoint", str(ckpt), "--json", "--no-progress"]
    cmd += list(extra)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    out = subprocess.run(cmd, env=child_env(src), capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode:
        raise SystemExit(f"predict failed with {src}:\n{out.stderr[-2000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "genres": res["genres"], "predicted": res["predicted"], "shots": res["shots"]}


def stages(src: Path, ckpt: Path, video: Path) -> dict:
    """Each stage alone, in a fresh process that imports ``src`` (see :func:`stage_worker`)."""
    cmd = [sys.executable, __file__, "--stage-worker", str(ckpt), str(video)]
    out = subprocess.run(cmd, env=child_env(src), capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"stage measurement failed with {src}:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def stage_worker(ckpt: str, video: str) -> None:
    """Run in a child: time each stage alone with whatever ``divita`` is on the path; print one JSON line."""
    t0, c0 = time.perf_counter(), _cpu()
    import numpy as np

    from divita.clips import clip_frame_indices, partition_shots
    from divita.inference.predict import GenreClassifier
    from divita.shots import TRANSNET_SIZE, detect
    from divita.video import OutputSize, VideoDecoder

    clf = GenreClassifier.from_checkpoint(ckpt)
    r = {"startup": time.perf_counter() - t0, "startup_cpu": _cpu() - c0}
    encoders = list(clf.encoders.values())
    outputs = {f"side{e.min_side}": OutputSize(min_side=e.min_side) for e in encoders}
    outputs["small"] = OutputSize(exact=TRANSNET_SIZE)

    def decode_all(threads: int):
        keep = {k: [] for k in outputs}
        for f in VideoDecoder(video, clf.plan.fps, outputs, threads=threads):
            for k, v in f.items():
                keep[k].append(v)
        return {k: np.stack(v) for k, v in keep.items()}

    for threads, key in ((1, "decode_1thread"), (0, "decode")):
        t, c = time.perf_counter(), _cpu()
        frames = decode_all(threads)
        r[key], r[key + "_cpu"] = time.perf_counter() - t, _cpu() - c
    n = len(frames["small"])
    r["frames"] = n
    r["sizes"] = {k: f"{v.shape[2]}x{v.shape[1]}" for k, v in frames.items()}
    t, c = time.perf_counter(), _cpu()
    shots = detect(frames["small"], clf.detector)
    r["shots"], r["shots_cpu"] = time.perf_counter() - t, _cpu() - c
    clips = partition_shots(shots, clf.plan.fpc, min_frames=clf.plan.min_clip_frames, num_frames=n)
    feats = []
    for e in encoders:
        imgs = frames[f"side{e.min_side}"]
        t, c = time.perf_counter(), _cpu()
        out = []
        for i in range(0, len(clips), 16):
            batch = np.stack([imgs[clip_frame_indices(s, clf.plan.fpc)] for s in clips[i : i + 16]])
            out.append(np.asarray(e.encode(batch), dtype=np.float32))
        r[e.spec.name], r[e.spec.name + "_cpu"] = time.perf_counter() - t, _cpu() - c
        feats.append(np.concatenate(out))
    t = time.perf_counter()
    clf.classify(feats)
    r["head"] = time.perf_counter() - t
    r["clips"] = len(clips)
    print(json.dumps(r))


# ------------------------------------------------------------------------------------------ report


def rows_of(e2e: dict[str, list[dict]], st: list[dict]) -> dict[str, float]:
    """The reported figures of one checkout: minimum over repeats (end to end per pair, stages)."""
    rows = {}
    for name, runs in e2e.items():
        rows[f"predict {name} (s)"] = min(r["wall"] for r in runs)
        rows[f"predict {name} median (s)"] = statistics.median(r["wall"] for r in runs)
        rows[f"predict {name} CPU (s)"] = min(r["cpu"] for r in runs)
    best = {k: min(s[k] for s in st) for k, v in st[0].items() if isinstance(v, float)}
    n = st[0]["frames"]
    rows["start-up: imports + checkpoint (s)"] = best["startup"]
    rows["decode, all sizes (s)"] = best["decode"]
    rows["decode frames/s (default threads)"] = n / best["decode"]
    rows["decode frames per CPU-s (default threads)"] = n / best["decode_cpu"]
    rows["decode frames per CPU-s (1 thread)"] = n / best["decode_1thread_cpu"]
    rows["shots alone (s)"] = best["shots"]
    for k in st[0]:
        if k not in best or k.endswith("_cpu") or k in ("startup", "decode", "decode_1thread", "shots", "head"):
            continue
        rows[f"{k} alone (s)"] = best[k]
    rows["head (s)"] = best["head"]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--repeat", type=int, default=3, help="rounds (before and after alternate in each)")
    ap.add_argument("--before", metavar="SRC", help="another checkout's src directory, measured side by side")
    ap.add_argument("--pairs", nargs="+", default=list(PAIRS), choices=list(PAIRS))
    ap.add_argument("--no-stages", action="store_true", help="end to end only")
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "divita-bench"))
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    ap.add_argument(
        "--detector",
        default="transnetv2",
        help="the checkpoints' shot detector, which predict replays (default transnetv2, which earlier checkouts know)",
    )
    ap.add_argument(
        "--runtime",
        action="append",
        default=[],
        metavar="NAME",
        help="also time this checkout's predict with --runtime NAME (end to end; repeatable)",
    )
    ap.add_argument("--stage-worker", nargs=2, metavar=("CKPT", "VIDEO"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.stage_worker:
        stage_worker(*args.stage_worker)
        return

    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    video = trailer(cache, args.seconds)
    ckpts = {name: checkpoint(cache, name, args.detector) for name in args.pairs}
    sides = {"after": ROOT / "src"}
    if args.before:
        sides = {"before": Path(args.before).resolve(), **sides}
    extra = {f"after --runtime {r}": ("--runtime", r) for r in args.runtime}
    sides.update({name: ROOT / "src" for name in extra})
    e2e = {side: {name: [] for name in ckpts} for side in sides}
    st: dict[str, list[dict]] = {side: [] for side in sides}
    for rnd in range(args.repeat):
        for side, src in sides.items():
            for name, ckpt in ckpts.items():
                e2e[side][name].append(end_to_end(src, ckpt, video, extra.get(side, ())))
                print(f"round {rnd + 1} {side} {name}: {e2e[side][name][-1]['wall']:.2f} s", file=sys.stderr)
            if not args.no_stages and side not in extra:
                st[side].append(stages(src, ckpts[args.pairs[0]], video))
    print(f"trailer: {video.name}; {os.cpu_count()} cores; best of {args.repeat} rounds, sides alternating")
    if not args.no_stages:
        s = st["after"][0]
        print(f"frames {s['frames']}, clips {s['clips']}, decoded sizes {s['sizes']}; stages with {args.pairs[0]}")
    table = {
        side: rows_of(e2e[side], st[side]) if not args.no_stages and side not in extra else rows_of_e2e(e2e[side])
        for side in sides
    }
    names = list(table["after"])
    if args.before:
        print(f"{'':48} {'before':>10} {'after':>10} {'after/before':>12}")
        for k in names:
            b, a = table["before"][k], table["after"][k]
            print(f"{k:48} {b:10.2f} {a:10.2f} {a / b:12.3f}")
        for name in ckpts:
            same = all(r["genres"] == e2e["before"][name][0]["genres"] for r in e2e["after"][name])
            shots = all(r["shots"] == e2e["before"][name][0]["shots"] for r in e2e["after"][name])
            print(f"{name}: genres identical before/after: {same}; shots identical: {shots}")
    else:
        for k in names:
            print(f"{k:48} {table['after'][k]:10.2f}")
    for side in extra:
        print(side)
        for k, v in table[side].items():
            print(f"  {k:46} {v:10.2f}  ({v / table['after'][k]:.3f} of the default runtime's)")
        for name in ckpts:
            same = all(r["genres"] == e2e["after"][name][0]["genres"] for r in e2e[side][name])
            print(f"  {name}: genres identical to the default runtime's: {same}")
    if args.json:
        Path(args.json).write_text(json.dumps({"table": table, "end_to_end": e2e, "stages": st}, indent=1))


def rows_of_e2e(e2e: dict[str, list[dict]]) -> dict[str, float]:
    rows = {}
    for name, runs in e2e.items():
        rows[f"predict {name} (s)"] = min(r["wall"] for r in runs)
        rows[f"predict {name} median (s)"] = statistics.median(r["wall"] for r in runs)
        rows[f"predict {name} CPU (s)"] = min(r["cpu"] for r in runs)
    return rows


if __name__ == "__main__":
    main()
