"""Parity of `divita train --protocol paper` with the authors' published code, on the same generated data.

For the 3 splits of ShuffleNet-2D (image store alone) and ShuffleNet-Fusion (image + video, late fusion), trains
the authors' ``train.py`` and ``divita train --protocol paper`` on one release-format dataset with a planted
signal (:mod:`divita.datasets.synthetic`; every trailer at least one snippet long, since their code fails on
shorter ones), and prints per split and row: test μAP, mAP, wAP, sAP of both (the paper's AP convention, in %),
the difference, the epoch kept, the epochs run and the wall time, and the mean over the splits; then the spread
of both over ``--seeds`` seeds on split 0 of each ``--seed-rows`` row (ShuffleNet-Fusion by default). Each job's
result is kept in ``--out`` (a rerun skips finished jobs); ``parity.csv`` and ``parity.md`` hold the tables.

``--divita-protocol divita`` compares the authors' code with divita's own protocol instead (its runs are
protocol_ablation.py's ``divita`` runs, shared when ``--out`` is the same; the tables go to
``parity-divita-SELECTION.csv/.md``), ``--select-by`` picks which of the two epochs every divita run records
is compared (default: the protocol's own, uap for divita). ``--data-seed`` and ``--signal`` (the strength of the
planted signal, :class:`divita.datasets.synthetic.SyntheticSpec`) make another dataset, in its own
``OUT/data-TRAILERS-seedSEED-signalSIGNAL``.

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
SELECTION_LABELS = {"loss": "lowest validation loss", "uap": "best validation μAP"}
DEFAULT_SIGNAL = 1.5  # divita.datasets.synthetic.SyntheticSpec.strength

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


def make_data(out: Path, trailers: int, seed: int, signal: float = DEFAULT_SIGNAL) -> Path:
    """A release-format dataset with a planted signal of strength ``signal``, every trailer 30..90 clips (their
    code needs >= 30): ``OUT/data-TRAILERS`` for seed 0 and the default signal, else
    ``OUT/data-TRAILERS-seedSEED-signalSIGNAL``."""
    from divita.datasets.synthetic import SyntheticSpec, make_release

    name = f"data-{trailers}"
    if seed != 0 or signal != DEFAULT_SIGNAL:
        name += f"-seed{seed}-signal{signal:g}"
    data = out / name
    if not (data / "mtgc.csv").is_file():
        spec = SyntheticSpec(num_trailers=trailers, min_clips=30, max_clips=90, seed=seed, strength=signal)
        make_release(data, spec)
    return data


def divita_job(out: Path, protocol: str, row: str, split: int, seed: int) -> Path:
    """The directory of a divita run: ``divita-ROW-splitN-seedS`` for ``paper`` (this script's own runs),
    ``PROTOCOL-ROW-splitN[-seedS]`` for the others (protocol_ablation.py's, seed 0 without the suffix)."""
    if protocol == "paper":
        return out / "jobs" / f"divita-{row}-split{split}-seed{seed}"
    return out / "jobs" / (f"{protocol}-{row}-split{split}" + (f"-seed{seed}" if seed else ""))


def divita_result(job: Path, selection: str) -> dict:
    """A finished divita run's test metrics (%) of the epoch ``selection`` (loss or uap) keeps: every run
    records both selections in metrics.csv, whichever it kept in its checkpoint."""
    m = pd.read_csv(job / "metrics.csv")
    r = m[(m.subset == "tst") & (m.convention == "paper") & (m.selection == selection)].iloc[0]
    return {
        **{k: 100 * float(r[k]) for k in METRICS},
        "epoch": int(r["epoch"]),
        "epochs": len(pd.read_csv(job / "history.csv")),
    }


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
    return {**divita_result(job, "loss"), "seconds": seconds}


def run_job(args, data: Path, impl: str, row: str, split: int, seed: int) -> dict | None:
    """One job (or its kept result): the authors' code, or divita with ``--divita-protocol``; divita's metrics
    are those of the epoch ``--select-by`` keeps."""
    if impl == "authors":
        job = args.out / "jobs" / f"authors-{row}-split{split}-seed{seed}"
    else:
        job = divita_job(args.out, args.divita_protocol, row, split, seed)
    done = job / "result.json"
    if done.is_file():
        res = json.loads(done.read_text())
    elif args.finished_only:
        return None
    else:
        job.mkdir(parents=True, exist_ok=True)
        if impl == "authors":
            out = run_upstream(args, data, row, split, seed, job)
        else:
            out = run_divita(args, data, row, split, seed, job, args.divita_protocol)
        res = {"impl": impl, "row": row, "split": split, "seed": seed, **out}
        done.write_text(json.dumps(res))
    if impl == "divita":
        res = {**res, **divita_result(job, args.select_by), "impl": "divita", "seed": seed}
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
        deltas, pairs = [], []
        for split in (0, 1, 2):
            a = first[(first.impl == "authors") & (first.row == row) & (first.split == split)]
            d = first[(first.impl == "divita") & (first.row == row) & (first.split == split)]
            if a.empty or d.empty:
                continue
            a, d = a.iloc[0], d.iloc[0]
            deltas.append([d[m] - a[m] for m in METRICS])
            pairs.append([(a[m], d[m]) for m in METRICS])
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
            a_mean, d_mean = np.mean(pairs, axis=0).T
            won = int((np.array(deltas)[:, 0] > 0).sum())
            cells = [f"{a:.2f} / {d:.2f} ({d - a:+.2f})" for a, d in zip(a_mean, d_mean)]
            lines.append(
                "| "
                + " | ".join([row, "mean", *cells, f"divita's μAP higher on {won}/{len(deltas)}", "", "", ""])
                + " |"
            )
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
    p.add_argument("--signal", type=float, default=DEFAULT_SIGNAL, help="strength of the data's planted signal")
    p.add_argument(
        "--divita-protocol",
        default="paper",
        help="divita's side: paper (parity, the default) or divita (the package's default protocol)",
    )
    p.add_argument(
        "--select-by",
        choices=("loss", "uap"),
        help="divita's epoch kept: lowest val loss or best val μAP (default: the protocol's, loss for paper)",
    )
    p.add_argument("--seeds", type=int, default=3, help="seeds of split 0 of --seed-rows (of --seed-impls)")
    p.add_argument(
        "--seed-rows", nargs="+", choices=list(ROWS), default=["ShuffleNet-Fusion"], help="the rows of the seeds"
    )
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
    if args.select_by is None:
        args.select_by = "loss" if args.divita_protocol.startswith("paper") else "uap"
    data = make_data(args.out, args.trailers, args.data_seed, args.signal)
    print(f"data: {data} ({args.trailers} trailers, 30-90 clips); at most {args.max_epochs} epochs", flush=True)
    todo = [(impl, row, split, 0) for row in ROWS for split in (0, 1, 2) for impl in ("authors", "divita")]
    todo += [(i, row, 0, seed) for row in args.seed_rows for seed in range(1, args.seeds) for i in args.seed_impls]
    todo.sort(key=lambda j: (j[1] != "ShuffleNet-Fusion", j[0] != "authors"))  # the longest jobs first
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda j: run_job(args, data, *j), todo))
    df = pd.DataFrame([r for r in results if r is not None])
    # parity.csv/.md for --divita-protocol paper, parity-PROTOCOL-SELECTION.csv/.md for the others
    stem = "parity" if args.divita_protocol == "paper" else f"parity-{args.divita_protocol}-{args.select_by}"
    df.to_csv(args.out / f"{stem}.csv", index=False)
    text = (
        f"Test metrics (%, the paper's AP convention) of the authors' train.py ({PINNED[:7]}) and "
        f"`divita train --protocol {args.divita_protocol}` (the epoch of {SELECTION_LABELS[args.select_by]}), "
        f"{args.trailers} generated trailers (data seed {args.data_seed}, signal {args.signal:g}), lr {args.lr}, "
        f"patience {args.scheduler_patience}/{args.stop_patience}, at most {args.max_epochs} epochs:\n\n"
        + parity_table(df)
        + "".join(
            f"\n\n{row} split 0 over {args.seeds} seeds:\n\n" + seed_table(df, row, 0)
            for row in args.seed_rows
            if args.seeds > 1
        )
        + "\n"
    )
    (args.out / f"{stem}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
