"""`divita evaluate`: score a trained checkpoint on a split's validation and test trailers."""

from __future__ import annotations

from divita.cli._train_options import add_store_options


def add_parser(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="evaluate a checkpoint on a split",
        description="Evaluate a `divita train` checkpoint on the val and test trailers of a split (both AP conventions). "
        "The stores default to the ones the checkpoint was trained on.",
    )
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--split", type=int, choices=(0, 1, 2), default=None, help="default: the checkpoint's split")
    add_store_options(p, required=False, help="{} store (default: the checkpoint's)")
    p.add_argument("--json", action="store_true", help="print metrics as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    import json
    from dataclasses import replace

    from divita.evaluation.metrics import METRIC_NAMES
    from divita.datasets.release import SUMMARY_LABELS
    from divita.features.store import store_num_features
    from divita.training import TrainConfig, check_features, load_checkpoint, load_split, metric_rows, predict_snippets, resolve

    model, meta = load_checkpoint(args.checkpoint)
    cfg = TrainConfig.from_dict(meta["train_config"])
    cfg = replace(cfg, data_dir=args.data_dir, split=cfg.split if args.split is None else args.split,
                  image_store=args.image_store or cfg.image_store, video_store=args.video_store or cfg.video_store)
    expect = {m: store_num_features(resolve(args.data_dir, s)) for m, s in cfg.stores.items()}
    check_features(args.checkpoint, model.cfg, expect)
    sets, _ = load_split(cfg)
    rows = []
    for subset in ("val", "tst"):
        probs = predict_snippets(model, sets[subset], cfg.eval_batch_size)
        rows += metric_rows(sets[subset].labels, probs, subset=subset, split=cfg.split)
    if args.json:
        print(json.dumps(rows))
        return 0
    for r in rows:
        print(f"{r['subset']} ({r['convention']}): " + "  ".join(f"{SUMMARY_LABELS[k]} {100 * r[k]:.2f}" for k in METRIC_NAMES))
    return 0
