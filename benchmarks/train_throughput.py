"""Training throughput of late-fusion DIViTA on a generated 2,000-trailer release-format dataset.

2,000 trailers with 40-150 clips each, 1024-d image and 1024-d video features (zarr format 2, like the
release). Prints training snippets/s, seconds per epoch (train + validation) and peak memory, for
torch thread counts and precisions, then the model's compute floor per precision (each head's forward and
backward alone on one core: what an epoch would take on 2 cores with perfect parallelism and nothing
else), the same per training step next to the time a 0.6 s epoch leaves for a step, and the same head built
from torch's stock modules for comparison. The reference is the authors' code on such data on 2 cores:
about 6 s per epoch at best (285 training snippets/s); the aim is <= 0.6 s per epoch.

    python benchmarks/train_throughput.py [--epochs 6] [--threads 1 2] [--precision auto 32] [--no-floor]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # inherited by the per-configuration child processes
EPOCH_BUDGET_S = 0.6  # the aim, seconds per epoch (train + validation)
STORES = dict(
    image_store="trailers_i_shufflenet_fpc24.zarr", video_store="trailers_k_shufflenet_fps24_fpc24.zarr"
)  # late fusion


def one_run(data_dir: str, threads: int, precision: str, epochs: int) -> dict:
    from divita.training import FeatureCache, TrainConfig, load_split, train_model

    cfg = TrainConfig(data_dir=data_dir, **STORES, split=0, max_epochs=epochs, threads=threads, precision=precision)
    cache = FeatureCache(progress=False)
    t = time.perf_counter()
    sets, _ = load_split(cfg, cache)
    load_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as run_dir:
        res = train_model(cfg, run_dir, cache=cache, progress=False)
    hist = res.history[1:]  # the first epoch includes one-off warm-up
    train_s = sum(h["train_seconds"] for h in hist) / len(hist)
    val_s = sum(h["val_seconds"] for h in hist) / len(hist)
    return {
        "threads": threads,
        "precision": precision,
        "train_trailers": len(sets["trn"]),
        "val_windows": sets["val"].num_eval_windows(),
        "load_s": load_s,
        "train_s": train_s,
        "val_s": val_s,
        "epoch_s": train_s + val_s,
        "snippets_per_s": len(sets["trn"]) / train_s,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }


def stock_head(num_features: int, cfg):
    """The same head from torch's stock modules used as they come: BatchNorm1d, Linear, TransformerEncoderLayer
    (its own attention and dropouts), mean over real clips, Linear. ``forward(x (B, S, F), mask (B, S)) -> (B, 10)``.
    Unlike divita's head, BatchNorm's statistics include padded clips (the benchmark's training windows have none)."""
    from torch import nn

    from divita.model import masked_mean

    class StockHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm, self.project = nn.BatchNorm1d(num_features), nn.Linear(num_features, cfg.hidden)
            self.block = nn.TransformerEncoderLayer(
                cfg.hidden, cfg.heads, cfg.ff_mult * cfg.hidden, cfg.dropout, batch_first=True
            )
            self.classify = nn.Linear(cfg.hidden, cfg.num_classes)

        def forward(self, x, mask):  # mask (B, S) bool, True = real clip
            b, s, f = x.shape
            h = self.project(self.norm(x.reshape(b * s, f)).view(b, s, f))
            return self.classify(masked_mean(self.block(h, src_key_padding_mask=~mask), mask))

    return StockHead()


def compute_floor(data_dir: str, precision: str, repeats: int = 3) -> dict:
    """The model's own compute per epoch, each head alone on one core: forward + backward over one epoch's
    training batches (no optimizer, no data loading, no framework) and the forward over the validation
    windows; min over ``repeats``. With the two heads split perfectly over two cores and everything else
    free, an epoch takes ``max(train) + max(val)``: no schedule of these kernels on 2 cores beats that.
    For comparison, the training forward + backward of the same head built from torch's stock modules
    (``stock_head``, all in the compute dtype)."""
    import numpy as np
    import torch

    from divita.model import DIViTA, ModelConfig
    from divita.training import FeatureCache, TrainConfig, load_split, resolve_precision
    from divita.training.compute import ComputeCopy, retain_freed_memory

    torch.set_num_threads(1)
    retain_freed_memory()
    cfg = TrainConfig(data_dir=data_dir, **STORES, split=0, precision=precision)
    sets, feats = load_split(cfg, FeatureCache(progress=False))
    torch.manual_seed(cfg.seed)
    master = DIViTA(ModelConfig([feats[m]["num_features"] for m in cfg.stores], list(cfg.stores)))
    dtype = resolve_precision(precision, "cpu")[1]
    model = ComputeCopy(master, dtype).model
    train = list(sets["trn"].train_batches(cfg.batch_size, np.random.default_rng(cfg.seed)))
    val = list(sets["val"].eval_batches(cfg.eval_batch_size))

    def train_epoch(head, i):
        head.train()
        for b in train:
            head(b.xs[i].to(dtype), b.masks[i]).float().sum().backward()
            for p in head.parameters():
                p.grad = None

    @torch.inference_mode()
    def val_epoch(head, i):
        head.eval()
        for b in val:
            head(b.xs[i].to(dtype), b.masks[i])

    def best_time(run, head, i):
        run(head, i)  # warm-up
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            run(head, i)
            times.append(time.perf_counter() - t)
        return min(times)

    out = {}
    for what, run in (("train", train_epoch), ("val", val_epoch)):
        for i, head in enumerate(model.heads.values()):
            out[f"{what}_head{i}_s"] = best_time(run, head, i)
    out["floor_s"] = max(out["train_head0_s"], out["train_head1_s"]) + max(out["val_head0_s"], out["val_head1_s"])
    out["train_steps"] = len(train)
    stock = stock_head(master.cfg.num_features[0], master.cfg).to(dtype)
    out["train_stock_s"] = best_time(train_epoch, stock, 0)
    return out


def in_child(*args: str) -> dict:
    """Run this script with ``args`` in a fresh process (its own threads and peak memory); its last stdout line,
    as JSON."""
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--precision", nargs="+", default=["auto", "32"])
    ap.add_argument("--data-dir", help="reuse a generated dataset (default: a temporary one)")
    ap.add_argument("--no-floor", action="store_true", help="skip measuring the model's compute floor")
    ap.add_argument("--_one", help=argparse.SUPPRESS)
    ap.add_argument("--_floor", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._one:  # child process: one configuration, so peak memory and threads are its own
        d, th, prec = args._one.split(",")
        print(json.dumps(one_run(d, int(th), prec, args.epochs)))
        return
    if args._floor:
        d, prec = args._floor.split(",")
        print(json.dumps(compute_floor(d, prec)))
        return

    from divita.datasets.synthetic import SyntheticSpec, make_release

    tmp = None
    data_dir = args.data_dir
    if data_dir is None or not (Path(data_dir) / "mtgc.csv").is_file():
        if data_dir is None:
            tmp = tempfile.TemporaryDirectory()
            data_dir = tmp.name
        t = time.perf_counter()
        make_release(
            data_dir,
            SyntheticSpec(num_trailers=2000, min_clips=40, max_clips=150, image_features=1024, video_features=1024),
            progress=True,
        )
        print(
            f"generated 2,000 trailers x 40-150 clips x (1024 + 1024) features in {time.perf_counter() - t:.0f}s "
            f"-> {data_dir}"
        )
    print(
        f"{'threads':>7} {'precision':>9} {'snippets/s':>10} {'train s':>8} {'val s':>6} {'epoch s':>8} "
        f"{'load s':>7} {'peak GB':>8}"
    )
    for prec in args.precision:
        for th in args.threads:
            r = in_child("--epochs", str(args.epochs), "--_one", f"{data_dir},{th},{prec}")
            print(
                f"{th:>7} {prec:>9} {r['snippets_per_s']:>10.0f} {r['train_s']:>8.3f} {r['val_s']:>6.3f} "
                f"{r['epoch_s']:>8.3f} {r['load_s']:>7.1f} {r['peak_rss_gb']:>8.2f}"
            )
    print(
        f"({r['train_trailers']} training snippets and {r['val_windows']} validation windows per epoch; "
        "reference: the authors' code ~6 s/epoch, 285 snippets/s; aim <= 0.6 s/epoch)"
    )
    if not args.no_floor:
        for prec in args.precision:
            f = in_child("--_floor", f"{data_dir},{prec}")
            print(
                f"model compute floor, precision {prec}: one head alone on one core, per epoch: "
                f"training forward+backward {f['train_head0_s']:.3f} / {f['train_head1_s']:.3f} s, "
                f"validation {f['val_head0_s']:.3f} / {f['val_head1_s']:.3f} s "
                f"-> at least {f['floor_s']:.3f} s/epoch on 2 cores even with perfect parallelism and nothing else"
            )
            n = f["train_steps"]
            budget_ms = (EPOCH_BUDGET_S - max(f["val_head0_s"], f["val_head1_s"])) / n * 1e3
            print(
                f"  per training step ({n} per epoch): one head's forward+backward alone "
                f"{min(f['train_head0_s'], f['train_head1_s']) / n * 1e3:.1f} ms "
                f"(the same head from torch's stock modules: {f['train_stock_s'] / n * 1e3:.1f} ms); "
                f"a {EPOCH_BUDGET_S} s epoch leaves "
                f"{budget_ms:.1f} ms a step for both heads' forward+backward, the loss and the optimizer"
            )
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
