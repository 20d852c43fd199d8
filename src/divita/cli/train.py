"""`divita train`: train one DIViTA model on one split of a release-format dataset."""

from __future__ import annotations

from divita.cli._train_options import (
    add_config_option,
    add_store_options,
    add_train_options,
    train_config,
)
from divita.training.config import SPLITS


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train one model on one split",
        description="Train DIViTA heads on feature stores; writes best.ckpt, hparams.json, history.csv and metrics.csv "
        "(val and test) to --out. Ctrl-C or SIGTERM stops after the current step and writes the run as it stands "
        '(the best epoch so far, "interrupted": true in hparams.json); exit status 130 (143 for SIGTERM).',
    )
    p.add_argument("--data-dir", required=True, help="dataset directory (mtgc.csv and the stores)")
    add_store_options(p, required=True, help="{} store (name in --data-dir, or a path), or 'none'")
    p.add_argument("--split", type=int, choices=SPLITS, required=True)
    p.add_argument("--out", required=True, help="run directory")
    add_config_option(p, "labels")
    add_train_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from divita.cli._errors import stop_on_signals
    from divita.datasets.release import SUMMARY_LABELS
    from divita.errors import Interrupted
    from divita.metrics import METRIC_NAMES
    from divita.training import train_model

    none = lambda s: None if s is None or s.lower() == "none" else s  # noqa: E731
    cfg = train_config(
        args,
        data_dir=args.data_dir,
        image_store=none(args.image_store),
        video_store=none(args.video_store),
        split=args.split,
    )
    with stop_on_signals() as stop:  # Ctrl-C / SIGTERM: stop after the step, write the run as it stands
        res = train_model(cfg, args.out, progress=not args.no_progress, stop=stop)
    if res.interrupted:
        raise Interrupted(
            stop.signum,
            f"stopped after {res.epochs} epoch(s); wrote the run as it stands (best epoch "
            f'{res.best_epoch}, "interrupted": true in hparams.json) to {res.run_dir}',
        )
    m = res.metrics
    m = m[(m.convention == "paper") & (m.selection == cfg.select_by)]
    print(f"best epoch {res.best_epoch} of {res.epochs} (by val {cfg.select_by}), {res.seconds:.1f}s -> {res.run_dir}")
    for subset in ("val", "tst"):
        r = m[m.subset == subset].iloc[0]
        print(f"  {subset}: " + "  ".join(f"{SUMMARY_LABELS[k]} {100 * r[k]:.2f}" for k in METRIC_NAMES))
    return 0
