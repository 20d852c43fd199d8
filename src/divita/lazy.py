"""The one package-facade style: a package's public names, each imported from its module on first use.

A package ``__init__`` lists ``name -> module`` (relative to the package) and asks for the module hooks::

    _EXPORTS = {"ShotDetector": "detector", "detect": "detector"}
    __getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)

so importing the package imports none of its modules (``import divita`` and ``divita --help`` stay free of
torch), and ``from divita.shots import ShotDetector`` imports ``divita.shots.detector`` then. A public name
that differs from the module's attribute is written ``"module:attr"`` (``{"detect_shots": "divita.shots:detect"}``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable, Callable, list[str]]:
    """(``__getattr__``, ``__dir__``, ``__all__``) for ``package`` whose public names live in the modules that
    ``exports`` maps them to (a module name relative to the package, or absolute when it holds a dot; with
    ``":attr"`` appended when the module's attribute has another name)."""
    table = dict(exports)

    def __getattr__(name: str):
        if name not in table:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attr = table[name].partition(":")
        target = importlib.import_module(module if "." in module else f"{package}.{module}")
        value = getattr(target, attr or name)
        vars(importlib.import_module(package))[name] = value  # once loaded, a plain attribute
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(importlib.import_module(package))) | set(table))

    return __getattr__, __dir__, sorted(table)


__all__ = ["lazy_exports"]
