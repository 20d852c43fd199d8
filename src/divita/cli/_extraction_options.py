"""The extraction's flags of `divita extract`, `divita shots` and `divita study`, generated from
:class:`divita.features.plan.ExtractionSettings`' fields (their defaults, help, metavar and choices): the defaults
are written there only. Cheap to import: torch does not load while the parser is built."""

from __future__ import annotations

import argparse
import functools
import typing
from collections.abc import Sequence
from dataclasses import MISSING, fields


@functools.lru_cache(maxsize=1)
def _types() -> dict:
    """ExtractionSettings' fields by name -> the argparse ``type`` of its annotation (``int | None`` -> int; None
    for str, argparse's own)."""
    from divita.features.plan import ExtractionSettings

    hints = typing.get_type_hints(ExtractionSettings)
    out = {}
    for f in fields(ExtractionSettings):
        types = [a for a in typing.get_args(hints[f.name]) if a is not type(None)] or [hints[f.name]]
        out[f.name] = None if types[0] in (str, typing.Any) else types[0]
    return out


def _resolve(value):
    return value() if callable(value) else value


def _shown(f) -> str | None:
    """The ``(default: ...)`` text of a field: its ``default_text`` when it names one, else the default itself."""
    if "default_text" in f.metadata:
        return f.metadata["default_text"]
    return f"{f.default:g}" if isinstance(f.default, float) else str(f.default)


def flag_name(name: str) -> str:
    """``--name-with-dashes`` of an ExtractionSettings field."""
    return "--" + name.replace("_", "-")


def add_extraction_options(p, names: Sequence[str], flags: dict[str, str] | None = None, **help_of: str) -> None:
    """One flag per ExtractionSettings field in ``names`` (in that order): ``--field-name`` (or ``flags[name]``),
    destination the field's name, its type, default, metavar, choices and help, the help ending in ``(default:
    ...)``. ``help_of``: a command's own help text for some of them (the default is still appended)."""
    from divita.features.plan import ExtractionSettings

    by_name = {f.name: f for f in fields(ExtractionSettings)}
    for name in names:
        f = by_name[name]
        if f.metadata.get("flag", True) is None:
            raise TypeError(f"{name} has no generated flag")
        text = _resolve(help_of.get(name, f.metadata["help"]))
        shown = _shown(f)
        kw = dict(dest=name, default=f.default, help=text + (f" (default: {shown})" if shown is not None else ""))
        kind = f.metadata.get("type", _types()[name])
        if kind is not None and kind is not str:
            kw["type"] = kind
        if "choices" in f.metadata:
            kw["choices"] = list(_resolve(f.metadata["choices"]))
        if "metavar" in f.metadata:
            kw["metavar"] = f.metadata["metavar"]
        p.add_argument((flags or {}).get(name, flag_name(name)), **kw)


def option_default(name: str):
    """The default of the ExtractionSettings field ``name`` (for a command's own flag of the same setting)."""
    from divita.features.plan import ExtractionSettings

    f = {f.name: f for f in fields(ExtractionSettings)}[name]
    return f.default if f.default is not MISSING else f.default_factory()


def extraction_settings(args: argparse.Namespace, backbones: Sequence = (), skip: Sequence[str] = (), **given):
    """The :class:`~divita.features.plan.ExtractionSettings` of parsed ``args``: every field the parser holds
    (under the field's name) except ``skip``, then ``given``; checked before anything loads."""
    from divita.features.plan import ExtractionSettings

    parsed = {
        f.name: getattr(args, f.name)
        for f in fields(ExtractionSettings)
        if f.name != "backbones" and f.name not in skip and hasattr(args, f.name)
    }
    return ExtractionSettings(tuple(backbones), **{**parsed, **given})
