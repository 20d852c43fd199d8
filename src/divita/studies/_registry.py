"""The study registry: name -> :class:`~divita.studies.base.Study` instance, filled by the study modules'
:func:`register_study` decorator as ``divita.studies`` imports them (in registry order). Importable without torch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from divita.errors import DivitaError

if TYPE_CHECKING:
    from divita.studies.base import Study

_STUDIES: dict[str, Study] = {}


def register_study(cls: type) -> type:
    """Class decorator: register one instance of the study class under its ``name``."""
    name = getattr(cls, "name", "")
    if not name:
        raise ValueError(f"study class {cls.__name__} has no name")
    if name in _STUDIES:
        raise ValueError(f"study {name!r} is registered twice")
    _STUDIES[name] = cls()
    return cls


def list_studies() -> list[str]:
    """Names of the registered studies, in registry order."""
    return list(_STUDIES)


def get_study(name: str) -> Study:
    """The study ``name``; a one-line :class:`DivitaError` listing the valid names otherwise."""
    try:
        return _STUDIES[name]
    except (KeyError, TypeError):
        raise DivitaError(None, f"unknown study {name!r}; choose from: {', '.join(_STUDIES)}") from None


__all__: list[str] = ["get_study", "list_studies", "register_study"]
