"""Shot-detector quality on generated videos with known transitions (hard cuts, dissolves, dips to white,
fades through black): recall per transition kind and precision, for every detector divita offers.

    python benchmarks/shot_detectors.py [--videos 24] [--seed 0]

A detected transition is the gap between two consecutive shots (last frame of one, first of the next); it
matches a true transition when the two overlap allowing ``--tolerance`` frames (default 2).
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tolerance", type=int, default=2)
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args(argv)

    from divita.shots import DETECTORS, TRANSNET_SIZE, detect
    from divita.video import read_frames

    with tempfile.TemporaryDirectory() as d:
        truths = make_videos(args.videos, args.seed, Path(d))
        frames = [read_frames(t.path, 24, size=TRANSNET_SIZE) for t in truths]
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
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
