"""Feature stores on disk: one zarr group per backbone (attribute ``num_features``, and ``extraction`` for the
stores `divita extract` writes), one float32 array (clips, features) per trailer id.

Here: a store's name (:func:`store_dir_name`), its trailer ids (:func:`check_array_id`), opening it read-only
with its attributes checked (:func:`open_store`), and writing it (:func:`create_store`,
:func:`commit_video_arrays`: a trailer's arrays appear complete or not at all). Reading its arrays:
:mod:`divita.features.store_read`; what a damaged array looks like: :mod:`divita.features.store_checks`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from divita.errors import DivitaError


def open_store(path: str | os.PathLike):
    """Open the feature store at ``path`` (a directory or a URL) read-only -> its zarr group. Raises DivitaError
    naming it when it is missing, not a zarr group, or lacks a positive integer ``num_features``."""
    import zarr

    spath = str(path)
    is_url = "://" in spath
    if not is_url and not Path(spath).is_dir():
        raise DivitaError(spath, "feature store not found (`divita download` fetches the release stores)")
    try:
        group = zarr.open_group(spath, mode="r")
    except Exception as e:  # zarr raises several types for "not a group"
        raise DivitaError(spath, f"not a readable zarr group ({type(e).__name__}: {e})") from None
    num_features = group.attrs.get("num_features")
    if not isinstance(num_features, int) or num_features <= 0:
        raise DivitaError(
            spath, f"store attribute 'num_features' is missing or not a positive integer: {num_features!r}"
        )
    return group


def store_num_features(path: str | os.PathLike) -> int:
    """The ``num_features`` attribute of the store at ``path`` (DivitaError as :func:`open_store` raises)."""
    return int(open_store(path).attrs["num_features"])


# ------------------------------------------------------------------------------------------------ writing
# Stores written by `divita extract` (zarr format 3). A trailer's array is written complete under a
# temporary directory outside the group, then renamed into the group in one step (os.replace), so a reader
# or a killed run never sees half an array: an id is in a store exactly when its array is complete. Zarr v3
# group metadata lists no children, so adding an array is just adding its directory.

PARTIAL_DIR = ".partial"  # OUT/.partial/<pid>-<random>/<store>/<id>: arrays being written
TRASH_DIR = ".trash"  # OUT/.trash/...: replaced arrays on their way out

# settings that must agree for features to be appended to an existing store
COMPATIBLE_KEYS = ("backbone", "fps", "fpc", "detector", "min_clip_frames")


def store_dir_name(prefix: str, backbone: str, fps: float, fpc: int) -> str:
    """Release-style store name: ``trailers_{prefix}_{backbone}_fps{fps:g}_fpc{fpc}.zarr``."""
    return f"trailers_{prefix}_{backbone}_fps{float(fps):g}_fpc{int(fpc)}.zarr"


def check_array_id(mid: str) -> None:
    """Ids become zarr node names: no path separators, not empty, not reserved."""
    if not mid or "/" in mid or "\\" in mid or mid.startswith("__") or set(mid) <= {"."} or mid.startswith("."):
        raise DivitaError(
            mid or "''",
            "not usable as a trailer id in a feature store (empty, hidden, reserved '__' prefix or a path separator)",
        )


def _settings_fingerprint(extraction: dict) -> dict:
    fp = {k: extraction.get(k) for k in COMPATIBLE_KEYS}
    backbone = extraction.get("backbone") or {}
    if isinstance(backbone, dict):
        fp["backbone"] = {
            k: backbone.get(k)
            for k in (
                "name",
                "weights",
                "weights_sha256",
                "frames_per_clip_2d",
                "clip_frames",
                "input_size",
                "resize_side",
            )
        }
    det = extraction.get("detector") or {}
    if isinstance(det, dict):
        from divita.shots.registry import detector_fingerprint

        fp["detector"] = detector_fingerprint(det)
    return fp


def settings_difference(old: dict, new: dict) -> str:
    """The settings that differ between two fingerprints (`_settings_fingerprint`), each with both values:
    ``detector transnetv2 (store) vs transnetv2-vetted (this run)``; a dict setting shows its name."""
    import json

    def shown(v):
        return v.get("name", json.dumps(v, sort_keys=True)) if isinstance(v, dict) else v

    parts = []
    for k in old:
        if old[k] != new.get(k):
            a, b = shown(old[k]), shown(new.get(k))
            parts.append(f"{k} {a} (store) vs {b} (this run)" if a != b else f"{k} settings")
    return ", ".join(parts)


def create_store(path: str | os.PathLike, num_features: int, extraction: dict) -> None:
    """Create the zarr v3 group at ``path`` (attributes ``num_features`` and ``extraction``), or check that an
    existing one was written with the same settings (DivitaError otherwise)."""
    import json

    import zarr

    p = Path(path)
    meta = p / "zarr.json"
    if meta.is_file():
        try:
            attrs = json.loads(meta.read_text()).get("attributes", {})
        except (OSError, ValueError) as e:
            raise DivitaError(p, f"existing store metadata unreadable ({e})") from None
        if attrs.get("num_features") != int(num_features):
            raise DivitaError(
                p,
                f"existing store has num_features={attrs.get('num_features')}, this run makes {num_features}; "
                "use another --out",
            )
        old = attrs.get("extraction") or {}
        if isinstance(old, str):
            try:
                old = json.loads(old)
            except ValueError:
                old = {}
        a, b = _settings_fingerprint(old), _settings_fingerprint(extraction)
        if a != b:
            diff = settings_difference(a, b)
            raise DivitaError(p, f"existing store was extracted with different settings ({diff}); use another --out")
        return
    p.parent.mkdir(parents=True, exist_ok=True)
    group = zarr.open_group(str(p), mode="a", zarr_format=3)
    group.attrs.update({"num_features": int(num_features), "extraction": extraction})


def committed_ids(path: str | os.PathLike) -> set[str]:
    """Ids whose arrays are complete in the store at ``path`` (a directory with its zarr.json)."""
    p = Path(path)
    if not p.is_dir():
        return set()
    return {d.name for d in p.iterdir() if d.is_dir() and not d.name.startswith(".") and (d / "zarr.json").is_file()}


def _partial_root(out_dir: Path) -> Path:
    import uuid

    root = out_dir / PARTIAL_DIR / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    root.mkdir(parents=True, exist_ok=True)
    return root


def write_array(path: str | os.PathLike, features: np.ndarray, attrs: dict) -> None:
    """Write one (clips, features) float32 array as a standalone zarr v3 array at ``path`` (one chunk)."""
    import zarr

    x = np.ascontiguousarray(features, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"features must be a non-empty 2-D array, got shape {x.shape}")
    arr = zarr.create_array(
        store=str(path), shape=x.shape, dtype="float32", chunks=x.shape, zarr_format=3, attributes=attrs, overwrite=True
    )
    arr[...] = x


def commit_video_arrays(out_dir: str | os.PathLike, mid: str, arrays: dict[str, tuple[np.ndarray, dict]]) -> None:
    """Atomically add (or replace) trailer ``mid`` in several stores.

    ``arrays`` maps a store path (a directory inside ``out_dir``, created with :func:`create_store`) to
    ``(features, attrs)``. Each array is written in full under ``out_dir/.partial`` and then renamed into its
    store; stores are committed one after the other, so after a crash a trailer is complete in some stores
    and absent from the others, never half-written. (One place to change for object stores and workers.)
    A failed write (a full disk, ...) leaves nothing staged behind and raises OSError naming ``<store>/<mid>``.
    """
    import shutil

    check_array_id(mid)
    out = Path(out_dir)
    root = _partial_root(out)
    final = out
    try:
        staged = []
        for store, (features, attrs) in arrays.items():
            final = Path(store) / mid
            tmp = root / Path(store).name / mid
            tmp.parent.mkdir(parents=True, exist_ok=True)
            write_array(tmp, features, attrs)
            staged.append((tmp, final))
        for tmp, final in staged:
            if final.exists():
                trash = out / TRASH_DIR / f"{root.name}-{final.parent.name}-{mid}"
                trash.parent.mkdir(parents=True, exist_ok=True)
                os.replace(final, trash)
                os.replace(tmp, final)
                shutil.rmtree(trash, ignore_errors=True)
            else:
                os.replace(tmp, final)
    except OSError as e:  # a full disk, a read-only output...: named by the array it was writing, not a staged file
        if e.errno is None:
            raise
        raise OSError(e.errno, e.strerror, str(final)) from e
    finally:
        shutil.rmtree(root, ignore_errors=True)
        for d in (out / PARTIAL_DIR, out / TRASH_DIR):
            try:
                d.rmdir()  # only when empty (no other writer)
            except OSError:
                pass


def clean_partial(out_dir: str | os.PathLike) -> int:
    """Remove leftovers of killed runs (partial arrays, trash) whose process is gone; returns how many."""
    import shutil

    out = Path(out_dir)
    removed = 0
    for name in (PARTIAL_DIR, TRASH_DIR):
        base = out / name
        if not base.is_dir():
            continue
        for d in base.iterdir():
            pid = d.name.split("-", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and _pid_alive(int(pid)):
                continue  # another live extract writes here
            shutil.rmtree(d, ignore_errors=True) if d.is_dir() else d.unlink(missing_ok=True)
            removed += 1
        try:
            base.rmdir()
        except OSError:
            pass
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
