"""Training options shared by `divita train`, `divita reproduce` and `divita demo`, generated from
:class:`divita.training.config.TrainConfig`'s fields (their defaults, help and choices): the defaults are
written there only. Cheap to import: torch does not load while the parser is built."""

from __future__ import annotations

import argparse
import functools
import typing
from dataclasses import MISSING, fields


@functools.lru_cache(maxsize=1)
def _config_fields() -> dict:
    """TrainConfig's fields by name, each with the argparse ``type`` its annotation gives (``int | None`` -> int;
    None for str, argparse's own)."""
    from divita.training.config import TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    out = {}
    for f in fields(TrainConfig):
        types = [a for a in typing.get_args(hints[f.name]) if a is not type(None)] or [hints[f.name]]
        out[f.name] = (f, None if types[0] is str else types[0])
    return out


def add_config_option(p, name: str, default=MISSING) -> None:
    """``--name-with-dashes`` for the TrainConfig field ``name``: its type, its default (or ``default``),
    its help and choices."""
    f, type_ = _config_fields()[name]
    p.add_argument(
        "--" + name.replace("_", "-"),
        dest=name,
        type=type_,
        default=f.default if default is MISSING else default,
        choices=f.metadata.get("choices"),
        help=f.metadata.get("help"),
    )


def add_train_options(p: argparse.ArgumentParser, **defaults) -> None:
    """The model and training options (every TrainConfig field marked ``common``) and ``--no-progress``.

    ``defaults``: a command's own defaults for some of them (``divita demo``: fewer epochs, a larger lr)."""
    common = [name for name, (f, _) in _config_fields().items() if f.metadata.get("common")]
    unknown = set(defaults) - set(common)
    if unknown:
        raise TypeError(f"not a training option: {', '.join(sorted(unknown))}")
    g = p.add_argument_group("model and training (the paper's settings, but the epoch kept: see --select-by)")
    for name in common:
        add_config_option(g, name, defaults.get(name, MISSING))
    g.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_store_options(p, required: bool, help: str) -> None:
    """``--image-store`` and ``--video-store`` (``help`` formatted with "image"/"video"), with their earlier
    names ``--ix`` and ``--vx`` kept as aliases (same destination)."""
    for modality, old in (("image", "--ix"), ("video", "--vx")):
        p.add_argument(
            f"--{modality}-store",
            old,
            dest=f"{modality}_store",
            metavar="STORE",
            required=required,
            help=help.format(modality) + f"; {old} is its earlier name",
        )


def train_config(args: argparse.Namespace, **given):
    """The TrainConfig of parsed ``args``: every field the parser holds (the generated options, and any
    other field a command parses under the field's name), then ``given`` (data_dir, stores, split, ...)."""
    from divita.training.config import TrainConfig

    parsed = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if f.init and hasattr(args, f.name)}
    return TrainConfig(**{**parsed, **given})
