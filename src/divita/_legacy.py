"""Module paths of divita 0.1's flat layout, kept importable as aliases of their new homes.

``import divita.store`` (or ``from divita.training import ...`` in the old sense) keeps working in users'
scripts: an import hook answers each old name with the module that now holds its code, and warns once
with a :class:`DeprecationWarning` naming the new path. Names only; nothing here is re-implemented.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types
import warnings

# the one Ray module, split into connection, extraction, grid and the output classes it held
_RAY_BACKEND = (
    "divita.distributed.cluster",
    "divita.distributed.extract",
    "divita.distributed.grid",
    "divita.features.outputs",
)

# old module -> the modules whose public names it now stands for (first one wins on a clash)
ALIASES: dict[str, tuple[str, ...]] = {
    "divita.store": ("divita.features.store",),
    "divita.extract": ("divita.features.extract",),
    "divita.data": ("divita.datasets.labels", "divita.features.snippets"),
    "divita.release": ("divita.datasets.release",),
    "divita.download": ("divita.datasets.download",),
    "divita.synthetic": ("divita.datasets.synthetic",),
    "divita.metrics": ("divita.evaluation.metrics",),
    "divita.reproduce": ("divita.evaluation.reproduce",),
    "divita.predict": ("divita.inference.predict",),
    "divita.report": ("divita.reporting.report",),
    "divita.compute": ("divita.training.compute",),
    "divita.shufflenet3d": ("divita.backbones.shufflenet3d",),
    "divita.ray_backend": _RAY_BACKEND,
    "divita.distributed.ray_backend": _RAY_BACKEND,
    "divita.commands": ("divita.cli",),
}


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, targets: tuple[str, ...]):
        self.targets = targets

    def create_module(self, spec):
        if len(self.targets) == 1:
            return importlib.import_module(self.targets[0])  # the very module: monkeypatching reaches it
        module = types.ModuleType(spec.name, f"Alias of {', '.join(self.targets)}.")
        for target in reversed(self.targets):
            source = importlib.import_module(target)
            module.__dict__.update({k: v for k, v in vars(source).items() if not k.startswith("__")})
        return module

    def exec_module(self, module):
        pass


class _AliasFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        targets = ALIASES.get(fullname)
        if targets is None and fullname.startswith("divita.commands."):
            targets = ("divita.cli." + fullname.rsplit(".", 1)[1],)
        if targets is None:
            return None
        warnings.warn(
            f"{fullname} is now {' and '.join(targets)}; the old path is an alias", DeprecationWarning, stacklevel=2
        )
        return importlib.util.spec_from_loader(fullname, _AliasLoader(targets))


def install() -> None:
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _AliasFinder())  # first: a stale folder of an old name must not shadow it
