"""What each of divita's changes to the authors' protocol is worth: `divita train --protocol paper`, then paper
plus each change alone, then divita, on the 3 splits of ShuffleNet-2D and ShuffleNet-Fusion.

Rows (:mod:`divita.training.protocol`): ``paper``; ``paper+masking`` (padding masked in BatchNorm, attention and
the mean); ``paper+layer`` (torch's TransformerEncoderLayer for the authors' block); ``paper+snippet-loss``
(validation loss over all snippets, not the mean of per-batch losses: it drives the scheduler, early stopping
and the epoch kept); ``paper+fused-adamw``; ``paper+bf16`` (only where the CPU has native bfloat16, else it
is float32 and the row is left out); ``paper, kept by val μAP`` (the same paper runs, the epoch of best
validation μAP: every run records both selections, so this row needs no training); ``divita`` with the epoch of
lowest validation loss (``--select-by loss``, its rule before best validation μAP became its default); and
``divita`` as it trains by default (the epoch of best validation μAP). Writes ``ablation.csv`` (per run) and
``ablation.md`` (test metrics, mean ± sample std over the 3 splits, per row and table row, with the difference
to ``paper``).

Uses the data and the job layout of ``peer_parity.py``: with the same ``--out`` the ``paper`` runs are its
divita runs (seed 0) and are not trained again. Example:

    python benchmarks/protocol_ablation.py --out /tmp/divita-parity --trailers 800 --max-epochs 20 --lr 1e-3 \\
        --scheduler-patience 5 --stop-patience 8 --jobs 2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from peer_parity import LABELS, METRICS, ROWS, divita_job, make_data, run_divita  # noqa: E402

CHANGES = ("masking", "layer", "snippet-loss", "fused-adamw", "bf16")


def job_dir(out: Path, protocol: str, row: str, split: int) -> Path:
    """peer_parity.py's directory for the paper runs (seed 0), this script's own for the others."""
    return divita_job(out, protocol, row, split, 0)


def run(args, data: Path, protocol: str, row: str, split: int) -> list[dict]:
    """One run (or its kept result): test metrics of both selections."""
    job = job_dir(args.out, protocol, row, split)
    while not (job / "result.json").is_file() and (job / "log.txt").is_file():  # peer_parity.py may be running it
        if time.time() - (job / "log.txt").stat().st_mtime > 120 and time.time() - job.stat().st_mtime > 120:
            break
        time.sleep(10)
    if not (job / "result.json").is_file() and args.finished_only:
        return []
    if not (job / "result.json").is_file():
        job.mkdir(parents=True, exist_ok=True)
        res = {
            "impl": "divita",
            "row": row,
            "split": split,
            "seed": 0,
            **run_divita(args, data, row, split, 0, job, protocol),
        }
        (job / "result.json").write_text(json.dumps(res))
        print(
            f"  {protocol} {row} split{split}: μAP {res['uap']:.2f}, epoch {res['epoch']}/{res['epochs']}", flush=True
        )
    m = pd.read_csv(job / "metrics.csv")
    epochs = len(pd.read_csv(job / "history.csv"))
    out = []
    for selection in ("loss", "uap"):
        r = m[(m.subset == "tst") & (m.convention == "paper") & (m.selection == selection)].iloc[0]
        out.append(
            {
                "protocol": protocol,
                "selection": selection,
                "row": row,
                "split": split,
                **{k: 100 * float(r[k]) for k in METRICS},
                "epoch": int(r["epoch"]),
                "epochs": epochs,
            }
        )
    return out


def ablation_table(df: pd.DataFrame, rows: list[tuple[str, str, str]]) -> str:
    """(label, protocol, selection) rows x table rows: mean ± std over splits, Δ μAP to paper."""
    head = ["Protocol"]
    for row in ROWS:
        head += [f"{row} {LABELS[m]}" for m in METRICS] + [f"{row} ΔμAP", f"{row} epoch kept (split: epoch/run)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    paper = df[(df.protocol == "paper") & (df.selection == "loss")].set_index(["row", "split"])["uap"]
    for label, protocol, selection in rows:
        cells = [label]
        for row in ROWS:
            s = df[(df.protocol == protocol) & (df.selection == selection) & (df.row == row)]
            if s.empty:
                cells += [""] * (len(METRICS) + 2)
                continue
            cells += [f"{s[m].mean():.2f} ± {s[m].std(ddof=1) if len(s) > 1 else 0:.2f}" for m in METRICS]
            kept = ", ".join(f"{r.split}: {r.epoch}/{r.epochs}" for r in s.sort_values("split").itertuples())
            delta = np.mean([r.uap - paper[(row, r.split)] for r in s.itertuples() if (row, r.split) in paper.index])
            cells += [f"{delta:+.2f}", kept]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    from divita.hardware import cpu_has_native_bf16

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("/tmp/divita-parity"))
    p.add_argument("--trailers", type=int, default=1000)
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--max-epochs", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--scheduler-patience", type=int, default=10)
    p.add_argument("--stop-patience", type=int, default=20)
    p.add_argument("--changes", nargs="+", default=list(CHANGES), choices=CHANGES, help="the rows paper+CHANGE")
    p.add_argument("--jobs", type=int, default=2, help="runs at a time (one thread each)")
    p.add_argument("--finished-only", action="store_true", help="train nothing: the tables of the finished runs")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    data = make_data(args.out, args.trailers, args.data_seed)
    changes = [c for c in args.changes if c != "bf16" or cpu_has_native_bf16()]
    skipped = set(args.changes) - set(changes)
    protocols = ["paper", *[f"paper+{c}" for c in changes], "divita"]
    print(f"data: {data}; protocols: {', '.join(protocols)}", flush=True)
    # divita first, the small numerical changes last but one, the paper runs last (peer_parity.py, given the same
    # --out, may be training them)
    order = ["divita", *[p for p in protocols[1:-1] if p not in ("paper+fused-adamw", "paper+bf16")]]
    order += [p for p in protocols if p in ("paper+fused-adamw", "paper+bf16")] + ["paper"]
    grid = [(proto, row, split) for proto in order for row in ROWS for split in (0, 1, 2)]
    with ThreadPoolExecutor(args.jobs) as pool:
        df = pd.DataFrame([r for rs in pool.map(lambda j: run(args, data, *j), grid) for r in rs])
    df.to_csv(args.out / "ablation.csv", index=False)
    rows = [("paper", "paper", "loss")]
    rows += [(f"paper + {c}", f"paper+{c}", "loss") for c in changes]
    rows += [
        ("paper, kept by val μAP", "paper", "uap"),
        ("divita, kept by val loss (--select-by loss)", "divita", "loss"),
        ("divita (kept by val μAP, its default)", "divita", "uap"),
    ]
    text = (
        f"Test metrics (%, the paper's AP convention), mean ± sample std over splits 0-2, {args.trailers} generated "
        f"trailers, lr {args.lr}, patience {args.scheduler_patience}/{args.stop_patience}, at most "
        f"{args.max_epochs} epochs, seed 0; ΔμAP: the mean over the row's splits of its test μAP minus paper's "
        "on the same split"
        + (" (no native bfloat16 on this CPU: bf16 is float32 here, row left out)" if "bf16" in skipped else "")
        + ":\n\n"
        + ablation_table(df, rows)
        + "\n"
    )
    (args.out / "ablation.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
