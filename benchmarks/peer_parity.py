"""Parity of `divita train --protocol paper` with the authors' published code, on the same generated data.

For the 3 splits of ShuffleNet-2D (image store alone) and ShuffleNet-Fusion (image + video, late fusion), trains
the authors' ``train.py`` and ``divita train --protocol paper`` on one release-format dataset with a planted
signal (:mod:`divita.datasets.synthetic`; every trailer at least one snippet long, since their code fails on
shorter ones), and prints per split and row: test μAP, mAP, wAP, sAP of both (the paper's AP convention, in %),
the difference, the epoch kept, the epochs run and the wall time; then the spread of both over ``--seeds``
seeds on split 0 of ShuffleNet-Fusion. Each job's result is kept in ``--out`` (a rerun skips finished jobs).

The authors' code (not part of divita; pinned commit below) in its own virtual environment:

    git clone https://github.com/richardtml/DIViTA /tmp/DIViTA
    git -C /tmp/DIViTA checkout 40973d6ceaf6ffbab2e9958f1ebc8fdd56758d9c
    python3.11 -m venv /tmp/divita-upstream-venv
    /tmp/divita-upstream-venv/bin/pip install torch==2.13.0 "pytorch-lightning==1.9.5" "zarr<3" "numpy<2" \\
        "setuptools<81" pandas scikit-learn tqdm tensorboard

(their Lightning 1.9.5 imports pkg_resources, hence setuptools<81; zarr<3 and numpy<2 for their zarr API). Then:

    python benchmarks/peer_parity.py --upstream /tmp/DIViTA --upstream-python /tmp/divita-upstream-venv/bin/python \\
        --out /tmp/parity [--trailers 1000] [--max-epochs 100] [--jobs 2]

Their ``train.py`` runs with their defaults except ``--lr 1e-4 --max_epochs 100`` (what their ``experiment.py``
passes for the paper; ``--lr``, ``--max-epochs`` and the patiences change both implementations alike) and
``--num_workers 0``; each job runs with one thread (``OMP_NUM_THREADS=1``, ``divita --threads 1``) and ``--jobs``
jobs at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

PINNED = "40973d6ceaf6ffbab2e9958f1ebc8fdd56758d9c"
IMAGE = "trailers_i_shufflenet_fpc24.zarr"
VIDEO = "trailers_k_shufflenet_fps24_fpc24.zarr"
ROWS = {"ShuffleNet-2D": (IMAGE, None), "ShuffleNet-Fusion": (IMAGE, VIDEO)}
METRICS = ("uap", "map", "wap", "sap")
LABELS = {"uap": "μAP", "map": "mAP", "wap": "wAP", "sap": "sAP"}

# runs their train.py unchanged, and prints the epochs Lightning ran (their script does not)
RUNNER = """
import runpy, sys
import pytorch_lightning as pl
fit = pl.Trainer.fit
def counted_fit(self, *a, **k):
    out = fit(self, *a, **k)
    print(f"EPOCHS_RUN {self.current_epoch}", flush=True)
    return out
pl.Trainer.fit = counted_fit
sys.argv = ["train.py", *sys.argv[1:]]
sys.path.insert(0, ".")
runpy.run_path("train.py", run_name="__main__")
"""


def make_data(out: Path, trailers: int, seed: int) -> Path:
    """A release-format dataset with a planted signal, every trailer 30..90 clips (their code needs >= 30)."""
    from divita.datasets.synthetic import SyntheticSpec, make_release

    data = out / f"data-{trailers}"
    if not (data / "mtgc.csv").is_file():
        make_release(data, SyntheticSpec(num_trailers=trailers, min_clips=30, max_clips=90, seed=seed))
    return data


def run_upstream(args, data: Path, row: str, split: int, seed: int, job: Path) -> dict:
    """Their train.py on (row, split, seed): test metrics of the epoch they keep, the epoch, epochs run, seconds."""
    ix, vx = ROWS[row]
    results = job / "results"
    cmd = [args.upstream_python, "-c", RUNNER, "--data_dir", str(data.resolve()), "--split", str(split)]
    cmd += [
        "--ix",
        ix,
        "--vx",
        vx or "none",
        "--seed",
        str(seed),
        "--lr",
        str(args.lr),
        "--max_epochs",
        str(args.max_epochs),
    ]
    cmd += ["--scheduler_patience", str(args.scheduler_patience), "--stop_patience", str(args.stop_patience)]
    cmd += ["--num_workers", "0", "--results_dir", str(results.resolve()), "--exp", "parity", "--run", "run"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    t = time.perf_counter()
    with open(job / "log.txt", "w") as log:
        proc = subprocess.run(cmd, cwd=args.upstream, env=env, stdout=log, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"their train.py failed ({proc.returncode}); see {job / 'log.txt'}")
    tst = pd.read_csv(results / "parity" / "tst_run.csv").iloc[-1]
    epochs = [line.split()[1] for line in (job / "log.txt").read_text().splitlines() if line.startswith("EPOCHS_RUN")]
    return {
        **{m: float(tst["iap" if m == "sap" else m]) for m in METRICS},
        "epoch": int(tst["epoch"]),
        "epochs": int(epochs[-1]) if epochs else None,
        "seconds": seconds,
    }


def run_divita(args, data: Path, row: str, split: int, seed: int, job: Path, protocol: str = "paper") -> dict:
    """`divita train --protocol paper` on (row, split, seed), in its own process."""
    ix, vx = ROWS[row]
    cmd = [sys.executable, "-m", "divita", "train", "--data-dir", str(data), "--split", str(split), "--out", str(job)]
    cmd += ["--image-store", ix, "--video-store", vx or "none", "--seed", str(seed), "--protocol", protocol]
    cmd += ["--max-epochs", str(args.max_epochs), "--threads", "1", "--no-progress", "--cache-dir", "none"]
    cmd += ["--lr", str(args.lr), "--scheduler-patience", str(args.scheduler_patience)]
    cmd += ["--stop-patience", str(args.stop_patience)]
    t = time.perf_counter()
    with open(job / "log.txt", "w") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"divita train failed ({proc.returncode}); see {job / 'log.txt'}")
    m = pd.read_csv(job / "metrics.csv")
    r = m[(m.subset == "tst") & (m.convention == "paper") & (m.selection == "loss")].iloc[0]
    return {
        **{k: 100 * float(r[k]) for k in METRICS},
        "epoch": int(r["epoch"]),
        "epochs": len(pd.read_csv(job / "history.csv")),
        "seconds": seconds,
    }


def run_job(args, data: Path, impl: str, row: str, split: int, seed: int) -> dict:
    job = args.out / "jobs" / f"{impl}-{row}-split{split}-seed{seed}"
    done = job / "result.json"
    if done.is_file():
        return json.loads(done.read_text())
    if args.finished_only:
        return None
    job.mkdir(parents=True, exist_ok=True)
    fn = run_upstream if impl == "authors" else run_divita
    res = {"impl": impl, "row": row, "split": split, "seed": seed, **fn(args, data, row, split, seed, job)}
    done.write_text(json.dumps(res))
    print(
        f"  {impl} {row} split{split} seed{seed}: μAP {res['uap']:.2f}, epoch {res['epoch']}/{res['epochs']}, "
        f"{res['seconds']:.0f}s",
        flush=True,
    )
    return res


def parity_table(df: pd.DataFrame) -> str:
    """Per split and row: both implementations' test metrics, divita − authors, epoch kept / run, seconds."""
    head = ["Row", "split"] + [f"{LABELS[m]} authors / divita (Δ)" for m in METRICS]
    head += ["epoch kept / run: authors", "divita", "wall s: authors", "divita"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    first = df[df.seed == 0]
    for row in ROWS:
        deltas = []
        for split in (0, 1, 2):
            a = first[(first.impl == "authors") & (first.row == row) & (first.split == split)]
            d = first[(first.impl == "divita") & (first.row == row) & (first.split == split)]
            if a.empty or d.empty:
                continue
            a, d = a.iloc[0], d.iloc[0]
            deltas.append([d[m] - a[m] for m in METRICS])
            cells = [f"{a[m]:.2f} / {d[m]:.2f} ({d[m] - a[m]:+.2f})" for m in METRICS]
            lines.append(
                "| "
                + " | ".join(
                    [row, str(split), *cells, f"{a.epoch}/{a.epochs}", f"{d.epoch}/{d.epochs}"]
                    + [f"{a.seconds:.0f}", f"{d.seconds:.0f}"]
                )
                + " |"
            )
        if deltas:
            mean = np.mean(deltas, axis=0)
            lines.append("| " + " | ".join([row, "mean Δ", *[f"{v:+.2f}" for v in mean], "", "", "", ""]) + " |")
    return "\n".join(lines)


def seed_table(df: pd.DataFrame, row: str, split: int) -> str:
    lines = [
        "| implementation | seeds | " + " | ".join(f"{LABELS[m]} mean ± std" for m in METRICS) + " | epochs kept |"
    ]
    lines.append("|---|---|" + "---|" * len(METRICS) + "---|")
    for impl in ("authors", "divita"):
        s = df[(df.impl == impl) & (df.row == row) & (df.split == split)].sort_values("seed")
        if s.empty:
            continue
        stats = [f"{s[m].mean():.2f} ± {s[m].std(ddof=1) if len(s) > 1 else 0:.2f}" for m in METRICS]
        lines.append(f"| {impl} | {len(s)} | " + " | ".join(stats) + f" | {', '.join(map(str, s.epoch))} |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--upstream", type=Path, required=True, help="checkout of richardtml/DIViTA (pinned commit)")
    p.add_argument("--upstream-python", default="/tmp/divita-upstream-venv/bin/python", help="its venv's python")
    p.add_argument("--out", type=Path, default=Path("/tmp/divita-parity"))
    p.add_argument("--trailers", type=int, default=1000)
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--max-epochs", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-4, help="both (the paper's 1e-4; `divita demo` uses 1e-3)")
    p.add_argument("--scheduler-patience", type=int, default=10)
    p.add_argument("--stop-patience", type=int, default=20)
    p.add_argument("--seeds", type=int, default=3, help="seeds of ShuffleNet-Fusion split 0 (of --seed-impls)")
    p.add_argument(
        "--seed-impls", nargs="+", default=["authors", "divita"], choices=["authors", "divita"], help="whose seeds"
    )
    p.add_argument("--jobs", type=int, default=2, help="jobs at a time (one thread each)")
    p.add_argument("--finished-only", action="store_true", help="train nothing: the tables of the finished jobs")
    args = p.parse_args()
    if not (args.upstream / "train.py").is_file():
        sys.exit(f"{args.upstream}: no train.py (a checkout of richardtml/DIViTA is needed)")
    try:
        head = subprocess.run(["git", "-C", str(args.upstream), "rev-parse", "HEAD"], capture_output=True, text=True)
        commit = head.stdout.strip() if head.returncode == 0 else "(not a git checkout)"
    except OSError:
        commit = "(git not found)"
    if commit != PINNED:
        print(f"note: {args.upstream} is at {commit}, the figures were taken at {PINNED}", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    data = make_data(args.out, args.trailers, args.data_seed)
    print(f"data: {data} ({args.trailers} trailers, 30-90 clips); at most {args.max_epochs} epochs", flush=True)
    todo = [(impl, row, split, 0) for row in ROWS for split in (0, 1, 2) for impl in ("authors", "divita")]
    todo += [(impl, "ShuffleNet-Fusion", 0, seed) for seed in range(1, args.seeds) for impl in args.seed_impls]
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda j: run_job(args, data, *j), todo))
    df = pd.DataFrame([r for r in results if r is not None])
    df.to_csv(args.out / "parity.csv", index=False)
    text = (
        f"Test metrics (%, the paper's AP convention) of the authors' train.py ({PINNED[:7]}) and "
        f"`divita train --protocol paper`, {args.trailers} generated trailers, lr {args.lr}, patience "
        f"{args.scheduler_patience}/{args.stop_patience}, at most {args.max_epochs} epochs:\n\n"
        + parity_table(df)
        + f"\n\nShuffleNet-Fusion split 0 over {args.seeds} seeds:\n\n"
        + seed_table(df, "ShuffleNet-Fusion", 0)
        + "\n"
    )
    (args.out / "parity.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
