"""The one registry style: each pipeline stage holds a :class:`Registry` of named entries, filled by one
``REGISTRY.register(Entry(name, "module:attr", ...))`` call per entry in the stage's ``registry`` module.

=================  ======================================  ===========================================
stage              registry                                entry (its implementation, loaded on use)
=================  ======================================  ===========================================
shot detectors     :data:`divita.shots.registry.DETECTORS`   ``DetectorSpec`` (a ``ShotStream`` subclass)
backbones          :data:`divita.backbones.registry.BACKBONES`  ``BackboneEntry`` (a network builder)
clip aggregators   :data:`divita.model.registry.AGGREGATORS`  ``AggregatorSpec`` (an ``Aggregator`` subclass)
studies            :data:`divita.studies.registry.STUDIES`   ``StudySpec`` (a ``Study`` subclass)
=================  ======================================  ===========================================

An entry names its implementation as ``"module:attr"`` (imported by :func:`load_ref` on first use), so a
registry module imports neither torch nor the implementations: listing names stays cheap (``divita --help``
lists detectors, aggregators and studies). Adding one is one module (the implementation) plus one registration.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any, Generic, Protocol, TypeVar

from divita.errors import DivitaError


class Named(Protocol):
    name: str


E = TypeVar("E", bound=Named)


def load_ref(ref: str) -> Any:
    """The object a ``"package.module:attr"`` reference names (the module is imported now).

    Args:
        ref: ``"package.module:attr"``, e.g. ``"divita.shots.luma:LumaJumpStream"``.

    Returns:
        The attribute of the imported module.

    Raises:
        ValueError: ``ref`` is not of the form ``"module:attr"``.
        ImportError: the module cannot be imported.
        AttributeError: the module has no such attribute.
    """
    module, colon, attr = ref.partition(":")
    if not colon or not module or not attr:
        raise ValueError(f"{ref!r} is not a 'module:attr' reference")
    return getattr(importlib.import_module(module), attr)


class Registry(Generic[E]):
    """Named entries of one kind, in registration order: the one registry style of every pipeline stage.

    Iterating gives the names, ``name in registry`` tests one, ``len(registry)`` counts them; `get` returns an
    entry or raises the one-line ``unknown <kind> ...`` error listing the names. An entry is any object with a
    ``name`` (a `DetectorSpec`, `BackboneEntry`, `AggregatorSpec`, `StudySpec`); it names its
    implementation as a ``"module:attr"`` string (`load_ref`), so registering imports nothing.

    Args:
        kind: what an entry is, in messages ("shot detector", "backbone", ...).

    Example:
        ```python
        from divita.shots.registry import DETECTORS, DetectorSpec, Param

        DETECTORS.register(DetectorSpec("luma", "my_plugins.luma:LumaJumpStream", "brightness jumps",
                                        params=(Param("jump", 40.0),)))
        ```
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, E] = {}

    def register(self, entry: E) -> E:
        """Add ``entry`` under ``entry.name``, after the others.

        Args:
            entry: the entry; its ``name`` must be a non-empty string no other entry has.

        Returns:
            ``entry``.

        Raises:
            ValueError: an empty name, or a name already registered.
        """
        name = entry.name
        if not name or not isinstance(name, str):
            raise ValueError(f"{self.kind} name {name!r} is empty")
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> E:
        """Remove the entry ``name`` (tests, and plugins replacing one).

        Args:
            name: a registered name.

        Returns:
            The removed entry.

        Raises:
            DivitaError: no such name (`get`'s error).
        """
        entry = self.get(name)
        del self._entries[name]
        return entry

    def get(self, name: str) -> E:
        """The entry ``name``.

        Args:
            name: a registered name.

        Returns:
            Its entry.

        Raises:
            DivitaError: ``unknown <kind> 'x'; choose from: a, b, ...`` for any other name.
        """
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise DivitaError(None, f"unknown {self.kind} {name!r}; choose from: {', '.join(self._entries)}") from None

    def names(self) -> list[str]:
        """The registered names, in registration order."""
        return list(self._entries)

    def entries(self) -> list[E]:
        """The registered entries, in registration order."""
        return list(self._entries.values())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"


__all__ = ["Registry", "load_ref"]
