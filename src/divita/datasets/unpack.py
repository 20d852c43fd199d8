"""Unpacking a release archive safely and atomically: tarfile's ``"data"`` filter plus an explicit check that
every member (and every link target) stays inside a temporary directory in DIR, and only a complete store is
renamed to ``DIR/<stem>.zarr`` (:func:`extract_store`)."""

from __future__ import annotations

import os
import shutil
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path

from divita.datasets.release import ReleaseFile
from divita.errors import DivitaError

TMP_PREFIX = ".divita-tmp-"  # DIR/.divita-tmp-<store>: the archive being unpacked
OLD_PREFIX = ".divita-old-"  # DIR/.divita-old-<store>: an unverified store on its way out


def _inside(root: str, path: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def safe_member_filter(archive: Path, dest: str) -> Callable[[tarfile.TarInfo, str], tarfile.TarInfo]:
    """A tarfile extraction filter: our explicit checks, then the stdlib ``data`` filter."""
    root = os.path.realpath(dest)
    data_filter = getattr(tarfile, "data_filter", None)  # Python >= 3.11.4

    def refuse(member: tarfile.TarInfo, why: str):
        raise DivitaError(archive, f"refusing to extract member {member.name!r}: {why}")

    def check(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo:
        name = member.name
        if name.startswith(("/", "\\")) or os.path.isabs(name) or (len(name) > 1 and name[1] == ":"):
            refuse(member, "absolute path")
        if ".." in name.replace("\\", "/").split("/"):
            refuse(member, "'..' in path")
        target = os.path.normpath(os.path.join(root, name))
        if not _inside(root, target) or not _inside(root, os.path.realpath(target)):
            refuse(member, "would be written outside the destination")
        if member.issym() or member.islnk():
            link = member.linkname
            if os.path.isabs(link) or link.startswith(("/", "\\")):
                refuse(member, f"link to absolute path {link!r}")
            base = os.path.dirname(target) if member.issym() else root
            link_target = os.path.normpath(os.path.join(base, link))
            if not _inside(root, link_target) or not _inside(root, os.path.realpath(link_target)):
                refuse(member, f"link {link!r} points outside the destination")
        elif not (member.isfile() or member.isdir()):
            refuse(member, "device, fifo or other special file")
        if data_filter is not None:
            try:
                member = data_filter(member, path)
            except tarfile.FilterError as e:
                refuse(member, str(e))
        return member

    return check


def _looks_like_store(d: Path) -> bool:
    return (d / ".zgroup").is_file() or (d / "zarr.json").is_file()


def extract_store(archive: Path, data_dir: Path, f: ReleaseFile, log: Callable[[str], None]) -> Path:
    """Unpack ``archive`` (the release file ``f``) safely and atomically into ``DIR/<stem>.zarr``; returns that
    directory. DivitaError naming the archive when it is damaged, holds an unsafe member or no such store."""
    assert f.extracts_to
    store = data_dir / f.extracts_to
    tmp = data_dir / f"{TMP_PREFIX}{f.extracts_to}"
    old = data_dir / f"{OLD_PREFIX}{f.extracts_to}"
    for leftover in (tmp, old):  # from a run killed mid-extraction
        if leftover.exists():
            shutil.rmtree(leftover)
    tmp.mkdir()
    log(f"{f.name}: extracting to {store}")
    try:
        try:
            with tarfile.open(archive, "r:gz") as tf:
                tf.extractall(tmp, filter=safe_member_filter(archive, str(tmp)))
        except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
            raise DivitaError(archive, f"cannot extract ({type(e).__name__}: {e})") from None
        unpacked = tmp / f.extracts_to
        if not unpacked.is_dir():
            # Tolerate an archive whose members sit at the top level rather than under <stem>.zarr/.
            if _looks_like_store(tmp):
                unpacked = tmp
            else:
                top = sorted(p.name for p in tmp.iterdir())[:5]
                raise DivitaError(archive, f"archive does not contain {f.extracts_to}/ (top-level entries: {top})")
        if store.is_symlink() or store.is_file():
            store.unlink()
        elif store.exists():
            # An unverified store from an earlier run (killed after the rename, before the marker update).
            os.replace(store, old)
        os.replace(unpacked, store)
    finally:
        for leftover in (tmp, old):
            if leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)
    return store
