"""`divita evaluate`: score a trained checkpoint on a split's validation and test trailers."""

from __future__ import annotations

from divita.cli._train_options import add_config_option, add_store_options
from divita.features.cache import CACHE_DTYPES


def add_parser(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="evaluate a checkpoint on a split",
        description="Evaluate a `divita train` checkpoint on the val and test trailers of a split (both AP "
        "conventions). The stores default to the ones the checkpoint was trained on.",
    )
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data-dir", required=True)
    p.add_argument(
        "--split",
        type=int,
        choices=(0, 1, 2),
        default=None,
        help="default: the checkpoint's split; another split is refused (Trailers12k's splits partition the "
        "same trailers, so its val and test sets hold the checkpoint's training trailers) unless "
        "--allow-other-split",
    )
    p.add_argument(
        "--allow-other-split",
        action="store_true",
        help="score a split other than the checkpoint's anyway, and say on stderr how many of the scored "
        "trailers the checkpoint was trained on",
    )
    add_store_options(p, required=False, help="{} store (default: the checkpoint's)")
    p.add_argument("--json", action="store_true", help="print metrics as JSON")
    add_config_option(p, "cache_dir")
    p.add_argument(
        "--cache-dtype",
        choices=CACHE_DTYPES,
        default=None,
        help="dtype of the cached features (default: the one the checkpoint was trained with)",
    )
    p.set_defaults(func=run)


def training_trailers(labels, split: int) -> set[str]:
    """The ids in the training subset of ``split`` in the labels file ``labels`` (an mtgc.csv)."""
    from divita.datasets.labels import read_labels

    df = read_labels(labels)
    return set(df.loc[df[f"split{split}"] == 0, "mid"])


def run(args) -> int:
    import json
    import sys
    from dataclasses import replace

    from divita.datasets.release import SUMMARY_LABELS
    from divita.errors import DivitaError
    from divita.features.store import store_num_features
    from divita.metrics import METRIC_NAMES
    from divita.training import (
        TrainConfig,
        check_features,
        load_checkpoint,
        load_split,
        metric_rows,
        predict_snippets,
        resolve,
    )

    model, meta = load_checkpoint(args.checkpoint)
    cfg = TrainConfig.from_dict(meta["train_config"])
    trained_on = cfg.split
    if args.split is not None and args.split != trained_on and not args.allow_other_split:
        raise DivitaError(
            args.checkpoint,
            f"trained on split {trained_on}; split {args.split}'s val and test sets "
            "hold its training trailers (the splits partition the same trailers): "
            f"use --split {trained_on}, or --allow-other-split to score it anyway",
        )
    cfg = replace(
        cfg,
        data_dir=args.data_dir,
        split=trained_on if args.split is None else args.split,
        image_store=args.image_store or cfg.image_store,
        video_store=args.video_store or cfg.video_store,
        cache_dir=args.cache_dir,
        cache_dtype=args.cache_dtype or cfg.cache_dtype,
    )
    expect = {m: store_num_features(resolve(args.data_dir, s)) for m, s in cfg.stores.items()}
    check_features(args.checkpoint, model.cfg, expect)
    sets, _ = load_split(cfg)
    if cfg.split != trained_on:
        seen = training_trailers(resolve(args.data_dir, cfg.labels), trained_on)
        scored = [m for subset in ("val", "tst") for m in sets[subset].mids]
        overlap = sum(m in seen for m in scored)
        print(
            f"divita evaluate: warning: {overlap} of the {len(scored)} trailers scored on split {cfg.split} (val "
            f"and test) are in the training set of split {trained_on}, which the checkpoint was trained on",
            file=sys.stderr,
        )
    rows = []
    for subset in ("val", "tst"):
        probs = predict_snippets(model, sets[subset], cfg.eval_batch_size)
        rows += metric_rows(sets[subset].labels, probs, subset=subset, split=cfg.split)
    if args.json:
        print(json.dumps(rows))
        return 0
    for r in rows:
        print(
            f"{r['subset']} ({r['convention']}): "
            + "  ".join(f"{SUMMARY_LABELS[k]} {100 * r[k]:.2f}" for k in METRIC_NAMES)
        )
    return 0
