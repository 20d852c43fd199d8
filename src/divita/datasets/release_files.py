"""The release's files as a data directory holds them: which file a name means (a file, store or stem name),
where it lies once ready (the file, or the store its archive unpacks into), md5sum-format checksum files, and
which files a directory still lacks (:func:`require_data`, what commands call to fail early, in one line)."""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable
from pathlib import Path

from divita.datasets.release import LABELS_FILE, RELEASE_FILES, ReleaseFile
from divita.errors import DivitaError


def _stem(f: ReleaseFile) -> str:
    """The short name of ``f``: its store without ``.zarr`` (``trailers_i_swin_fpc24``), or its file name without
    the extension."""
    return f.extracts_to[: -len(".zarr")] if f.extracts_to else f.name.rsplit(".", 1)[0]


def _valid_names() -> str:
    return ", ".join(_stem(f) for f in RELEASE_FILES.values())


def resolve_release_file(name: str) -> ReleaseFile:
    """The release file called ``name``: a file name (``x.zarr.tar.gz``), a store (``x.zarr``) or a stem (``x``)."""
    key = name.strip().rstrip("/")
    key = os.path.basename(key) if key else key
    for f in RELEASE_FILES.values():
        if key in (f.name, f.extracts_to, _stem(f)):
            return f
    raise DivitaError(name, f"not a Trailers12k release file (valid names: {_valid_names()})")


def resolve_names(only: Iterable[str] | None) -> list[ReleaseFile]:
    """The release files selected by ``only`` (all of them when None or empty), in release order, no repeats."""
    if not only:
        return list(RELEASE_FILES.values())
    wanted = {resolve_release_file(n).name for n in only}
    return [f for f in RELEASE_FILES.values() if f.name in wanted]


def release_path(data_dir: Path, f: ReleaseFile) -> Path:
    """What DIR holds for ``f`` once it is ready: the file itself, or the directory the archive unpacks into."""
    return data_dir / (f.extracts_to or f.name)


def read_checksums(path: str | os.PathLike) -> dict[str, str]:
    """Read ``md5sum``-style lines (``<md5>  <name>`` or ``<md5> *<name>``) into ``{release file name: md5}``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DivitaError(p, "checksum file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DivitaError(p, f"cannot read checksum file: {e}") from None
    out: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(maxsplit=1)
        md5 = parts[0].lower()
        if len(parts) != 2 or len(md5) != 32 or any(c not in "0123456789abcdef" for c in md5):
            raise DivitaError(f"{p}:{lineno}", f"expected '<md5>  <file name>' (md5sum format), got {line!r}")
        name = parts[1].lstrip("*").strip()
        out[resolve_release_file(name).name] = md5
    return out


def missing_release_files(data_dir: str | os.PathLike, names: Iterable[str]) -> list[str]:
    """Which of ``names`` (release files, stores or stems) DIR lacks, as on-disk names (``mtgc.csv``, ``x.zarr``)."""
    d = Path(data_dir)
    missing: list[str] = []
    for n in names:
        f = resolve_release_file(n)
        t = release_path(d, f)
        ok = t.is_dir() if f.is_archive else t.is_file()
        if not ok and t.name not in missing:
            missing.append(t.name)
    return missing


def require_data(data_dir: str | os.PathLike, stores: Iterable[str]) -> None:
    """Raise a one-line :class:`DivitaError` unless DIR holds ``mtgc.csv`` and every store in ``stores``.

    ``stores`` are store directory names as in :data:`divita.datasets.release.TABLE6` (``trailers_i_swin_fpc24.zarr``);
    stems and archive names are accepted too. The message names the first missing path and the
    ``divita download`` command that fetches what is missing.
    """
    d = Path(data_dir)
    q = shlex.quote(str(d))
    if not d.is_dir():
        raise DivitaError(
            d, f"data directory not found; run `divita download --data-dir {q}` to fetch the Trailers12k release"
        )
    missing = missing_release_files(d, [LABELS_FILE, *stores])
    if not missing:
        return
    only = " ".join(_stem(resolve_release_file(m)) if m.endswith(".zarr") else m for m in missing)
    more = f" (also missing: {', '.join(missing[1:])})" if len(missing) > 1 else ""
    them = "them" if len(missing) > 1 else "it"
    raise DivitaError(
        d / missing[0], f"missing{more}; run `divita download --data-dir {q} --only {only}` to fetch {them}"
    )
