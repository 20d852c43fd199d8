"""Training options shared by `divita train`, `divita reproduce` and `divita demo`."""

from __future__ import annotations

import argparse


def add_train_options(p: argparse.ArgumentParser, max_epochs: int = 100) -> None:
    from divita.model import AGGREGATORS, FUSIONS

    g = p.add_argument_group("model and training (the paper's defaults)")
    g.add_argument("--num-clips", type=int, default=30, help="clips per snippet (default 30)")
    g.add_argument("--batch-size", type=int, default=32)
    g.add_argument("--eval-batch-size", type=int, default=256, help="snippets per evaluation batch")
    g.add_argument("--max-epochs", type=int, default=max_epochs)
    g.add_argument("--lr", type=float, default=1e-4, help="AdamW (amsgrad) learning rate")
    g.add_argument("--weight-decay", type=float, default=0.01)
    g.add_argument("--scheduler-patience", type=int, default=10, help="ReduceLROnPlateau patience (val loss)")
    g.add_argument("--stop-patience", type=int, default=20, help="early stopping patience (val loss)")
    g.add_argument("--select-by", choices=("loss", "uap"), default="loss", help="best epoch by val loss (paper) or val μAP")
    g.add_argument("--fusion", choices=FUSIONS, default="late")
    g.add_argument("--aggregator", choices=AGGREGATORS, default="tsfm", help="clip aggregation (tsfm = the paper's)")
    g.add_argument("--hidden", type=int, default=128)
    g.add_argument("--heads", type=int, default=4)
    g.add_argument("--ff-mult", type=int, default=6)
    g.add_argument("--dropout", type=float, default=0.25)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--threads", type=int, default=None,
                   help="CPU threads (default: the cores available); late fusion runs one head per thread")
    g.add_argument("--accelerator", default="auto", help="auto, cpu or gpu")
    g.add_argument("--precision", default="auto", choices=["auto", "32", "bf16"],
                   help="auto: bfloat16 compute with float32 master weights where the CPU has native bf16 "
                        "(AMX/AVX512-BF16), bf16 autocast on CUDA, else float32")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")


def train_config(args: argparse.Namespace, data_dir: str, ix: str | None, vx: str | None, split: int):
    from divita.training import TrainConfig

    return TrainConfig(
        data_dir=data_dir,
        ix=ix,
        vx=vx,
        split=split,
        num_clips=args.num_clips,
        batch_size=args.batch_size,
        eval_batch_size=args.eval_batch_size,
        max_epochs=args.max_epochs,
        lr=args.lr,
        weight_decay=args.weight_decay,
        scheduler_patience=args.scheduler_patience,
        stop_patience=args.stop_patience,
        select_by=args.select_by,
        seed=args.seed,
        fusion=args.fusion,
        aggregator=args.aggregator,
        hidden=args.hidden,
        heads=args.heads,
        ff_mult=args.ff_mult,
        dropout=args.dropout,
        threads=args.threads,
        accelerator=args.accelerator,
        precision=args.precision,
    )


def quiet_lightning() -> None:
    """Lightning's banners (GPU available..., tips) are noise in a CLI that prints its own summary."""
    import logging
    import warnings

    import lightning.pytorch  # noqa: F401  importing it sets its loggers to INFO, so it comes first
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="lightning")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
