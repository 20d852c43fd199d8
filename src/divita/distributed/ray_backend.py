"""Scale-out on Ray: ``divita extract --ray`` over a cluster and ``divita reproduce --ray`` in parallel.

Ray is an optional extra (``pip install 'divita[ray]'``); this module imports it only when a function
here is called, and :func:`require_ray` turns its absence into a one-line :class:`DivitaError`.

Extraction (:func:`extract_ray`) splits the local pipeline of :func:`divita.features.extract.process_video` in two:

- **prepare** tasks (CPU, ``prepare_cpus`` each; optionally a GPU share for TransNetV2) decode a video,
  detect its shots and cut its clips by running :func:`~divita.features.extract.process_video` itself with
  stand-in encoders that, instead of computing features, ship each batch of clip frames (uint8, only
  the frame positions and the decode size each backbone reads, ``batch_size`` clips per chunk) to an
  encoder actor as soon as the clips are certain, with at most ``chunk_window`` chunks unanswered;
- **encoder actors** (``encoder_gpus`` GPU share and ``encoder_cpus`` CPUs each) load every backbone once
  for their lifetime and turn chunks into features.

Because the decode, the shot stream, the clip rules and the batching are literally the local code, a
chunk holds exactly the frames the local path would have handed to ``encode`` in the same batch, and the
features equal the local path's (bit for bit on the same hardware and precision). The driver keeps a
bounded number of videos in flight (``ray.wait``), and commits each finished video itself with the
local path's commit function (one writer per store; workers need no write access), writing the same
``shots/<id>.json``, ``videos.csv`` and ``failures.csv``: a local rerun and a Ray rerun resume each
other's work. ``out`` may also be a URL any fsspec filesystem reaches (``s3://bucket/prefix``...); there an
array is committed by writing its chunk first and its ``zarr.json`` last (object stores have no atomic
rename), so an id is in a store exactly when its ``zarr.json`` is, as on a local disk.

Faults: actors restart (``max_restarts``) and Ray replays their unanswered calls (``max_task_retries``);
prepare tasks whose worker dies are re-run (``max_retries``); a video whose pipeline still failed for a
Ray reason (dead actor, lost object, ...) is resubmitted whole by the driver up to ``retries`` times, then
recorded in ``failures.csv``. A bad video (unreadable, ...) is recorded at once, as locally.

Training (:func:`train_grid`): each (row, split) of the Table 6 grid is a Ray task (one GPU, or
``cpus_per_run`` CPUs) that trains into a temporary directory on its worker and returns the run's files;
the driver writes them into the run directory with ``metrics.csv`` last, so finished runs are recognised
by :func:`divita.evaluation.reproduce.check_resumable` exactly as the local grid's.
"""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import sys
import tempfile
import time
import traceback
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Sequence

import numpy as np

from divita.errors import DivitaError
from divita.fileio import atomic_write_text

INSTALL_HINT = "Ray is not installed: pip install 'divita[ray]'"
CLIPS_NOTE = "shots cut into fpc-frame clips that never cross a cut (see divita.clips)"  # as divita.features.extract writes
ACTOR_RESTARTS = 3  # per encoder actor
TASK_RETRIES = 3  # Ray-level retries of prepare/train tasks and of actor calls after a restart
CONNECT_TIMEOUT_S = 5.0  # a cluster address must accept a TCP connection this fast (ray.init itself retries for minutes)
VIDEO_RETRIES = 2  # driver-level resubmissions of a video whose pipeline failed for a Ray reason
CHUNK_WINDOW = 4  # unanswered chunks per video (bounds the object store held by one video)


# ------------------------------------------------------------------------------------------ Ray itself


def require_ray():
    """The ``ray`` module, or DivitaError telling how to install it."""
    try:
        import ray
    except ImportError:
        raise DivitaError(None, INSTALL_HINT) from None
    return ray


def connect(address: str | None = None, num_cpus: int | None = None, num_gpus: int | None = None,
            object_store_memory: int | None = None, quiet: bool = True) -> bool:
    """Make sure this process is a Ray driver; returns True when this call started it (then call
    :func:`disconnect`). ``address`` None or "local": a new local instance on this machine; "auto": the
    cluster running here (``ray start --head`` / a worker node); "HOST:PORT" or "ray://HOST:10001": that one.
    Reuses a session already initialised by the caller."""
    ray = require_ray()
    if ray.is_initialized():
        return False
    import logging

    kw: dict[str, Any] = {"log_to_driver": not quiet or bool(os.environ.get("DIVITA_DEBUG")),
                          "logging_level": logging.WARNING if quiet else logging.INFO}
    if _is_local_address(address):
        kw.update(address="local", include_dashboard=False, num_cpus=num_cpus, num_gpus=num_gpus,
                  object_store_memory=object_store_memory)
    else:
        kw["address"] = address
        check_reachable(address)
    try:
        ray.init(**kw)
    except ConnectionError as e:
        raise DivitaError(address, f"cannot reach a Ray cluster ({e}); start one with `ray start --head`") from None
    return True


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Raise DivitaError unless ``address`` ("HOST:PORT" or "ray://HOST:PORT") accepts a TCP connection within
    ``timeout`` seconds; given an address nobody answers at, ``ray.init`` retries for minutes before failing.
    "auto" and addresses without a port are left to Ray (it fails fast on those)."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        reason = "timed out" if isinstance(e, TimeoutError) else (e.strerror or str(e)).lower()
        raise DivitaError(address, f"cannot reach a Ray cluster there ({reason}); start one with `ray start --head` "
                                   "or give the address it printed") from None


def disconnect(started: bool) -> None:
    if started:
        require_ray().shutdown()


def _is_local_address(address: str | None) -> bool:
    return address in (None, "", "local")


# ------------------------------------------------------------------------------------------ outputs


def is_url(path: str | os.PathLike) -> bool:
    s = str(path)
    return "://" in s and not s.startswith("file://")


def _local_path(path: str | os.PathLike) -> Path:
    s = str(path)
    return Path(s[len("file://"):]) if s.startswith("file://") else Path(s)


class LocalOutput:
    """An output directory on a disk the driver sees (local, or a shared filesystem): exactly the local
    path's functions of :mod:`divita.features.extract` and :mod:`divita.features.store`."""

    def __init__(self, out: str | os.PathLike):
        self.out = _local_path(out)

    def __str__(self) -> str:
        return str(self.out)

    def prepare(self) -> None:
        from divita.features.extract import SHOTS_DIR
        from divita.features.store import clean_partial

        self.out.mkdir(parents=True, exist_ok=True)
        clean_partial(self.out)
        (self.out / SHOTS_DIR).mkdir(exist_ok=True)

    def store(self, name: str) -> str:
        return str(self.out / name)

    def create_store(self, name: str, num_features: int, extraction: dict) -> None:
        from divita.features.store import create_store

        create_store(self.out / name, num_features, extraction)

    def committed(self, name: str) -> set[str]:
        from divita.features.store import committed_ids

        return committed_ids(self.out / name)

    def commit(self, mid: str, arrays: dict[str, tuple[np.ndarray, dict]]) -> None:
        from divita.features.store import commit_video_arrays

        commit_video_arrays(self.out, mid, {str(self.out / name): v for name, v in arrays.items()})

    def write_shots(self, mid: str, record: dict) -> None:
        from divita.features.extract import SHOTS_DIR

        path = self.out / SHOTS_DIR / f"{mid}.json"
        atomic_write_text(path, json.dumps({"id": mid, **record}))

    def failure_log(self):
        from divita.features.extract import FailureLog

        return FailureLog(self.out)

    def write_videos_csv(self, names: Sequence[str]) -> None:
        from divita.features.extract import write_videos_csv

        write_videos_csv(self.out, {n: self.store(n) for n in names})

    def write_labels(self, labels, names: Sequence[str], seed: int, log) -> str:
        from divita.features.extract import write_labels

        return str(write_labels(labels, self.out, {n: self.store(n) for n in names}, seed=seed, log=log))


class FsspecOutput:
    """An output "directory" at a URL (``s3://bucket/prefix``, ``gs://...``, ``memory://...``): the same
    files and layout as :class:`LocalOutput`, written through fsspec. Object stores have no atomic rename,
    so an array is uploaded chunk first and ``zarr.json`` last: the id counts as committed (here, for
    :func:`divita.features.store.load_features` and for zarr) exactly when its ``zarr.json`` exists."""

    def __init__(self, url: str, storage_options: dict | None = None):
        from fsspec.core import url_to_fs

        self.url = str(url).rstrip("/")
        self.storage_options = dict(storage_options or {})
        try:
            self.fs, self.root = url_to_fs(self.url, **self.storage_options)
        except (ImportError, ValueError) as e:
            raise DivitaError(self.url, f"no filesystem for this URL ({e})") from None
        self.root = self.root.rstrip("/")

    def __str__(self) -> str:
        return self.url

    def _path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def prepare(self) -> None:
        self.fs.makedirs(self.root, exist_ok=True)

    def store(self, name: str) -> str:
        return f"{self.url}/{name}"

    def create_store(self, name: str, num_features: int, extraction: dict) -> None:
        import zarr

        from divita.features.store import _settings_fingerprint

        meta = self._path(name, "zarr.json")
        if self.fs.exists(meta):
            where = self.store(name)
            try:
                attrs = json.loads(self.fs.cat_file(meta)).get("attributes", {})
            except (OSError, ValueError) as e:
                raise DivitaError(where, f"existing store metadata unreadable ({e})") from None
            if attrs.get("num_features") != int(num_features):
                raise DivitaError(where, f"existing store has num_features={attrs.get('num_features')}, this run makes {num_features}; use another --out")
            a, b = _settings_fingerprint(attrs.get("extraction") or {}), _settings_fingerprint(extraction)
            if a != b:
                diff = ", ".join(k for k in a if a[k] != b.get(k))
                raise DivitaError(where, f"existing store was extracted with different settings ({diff}); use another --out")
            return
        group = zarr.open_group(self.store(name), mode="a", zarr_format=3, storage_options=self.storage_options or None)
        group.attrs.update({"num_features": int(num_features), "extraction": extraction})

    def committed(self, name: str) -> set[str]:
        base = self._path(name)
        try:
            found = self.fs.glob(base + "/*/zarr.json")
        except FileNotFoundError:
            return set()
        ids = {str(p).rstrip("/").split("/")[-2] for p in found}
        return {i for i in ids if not i.startswith(".")}

    def commit(self, mid: str, arrays: dict[str, tuple[np.ndarray, dict]]) -> None:
        from divita.features.store import check_array_id, write_array

        check_array_id(mid)
        for name, (features, attrs) in arrays.items():
            with tempfile.TemporaryDirectory(prefix="divita-commit-") as tmp:
                local = Path(tmp) / mid
                write_array(local, features, attrs)  # the local path's array, byte for byte
                files = {f.relative_to(local).as_posix(): f.read_bytes() for f in sorted(local.rglob("*")) if f.is_file()}
            target = self._path(name, mid)
            if self.fs.exists(target + "/zarr.json"):
                self.fs.rm_file(target + "/zarr.json")  # uncommitted from here on
            if self.fs.exists(target):
                self.fs.rm(target, recursive=True)
            meta = files.pop("zarr.json")
            if files:
                self.fs.pipe({f"{target}/{k}": v for k, v in files.items()})
            self.fs.pipe_file(target + "/zarr.json", meta)  # the completion marker

    def write_text(self, rel: str, text: str) -> None:
        self.fs.pipe_file(self._path(rel), text.encode())  # one PUT: whole or absent on object stores

    def write_shots(self, mid: str, record: dict) -> None:
        from divita.features.extract import SHOTS_DIR

        self.write_text(f"{SHOTS_DIR}/{mid}.json", json.dumps({"id": mid, **record}))

    def failure_log(self):
        from divita.features.extract import FAILURES_FILE, FailureLog

        out = self

        class _Log(FailureLog):
            def __init__(self):
                self.path = out._path(FAILURES_FILE)
                self.rows = {}
                if out.fs.exists(self.path):
                    for row in csv.DictReader(io.StringIO(out.fs.cat_file(self.path).decode())):
                        if row.get("video"):
                            self.rows[row["video"]] = row.get("reason", "")

            def _save(self):
                if not self.rows:
                    if out.fs.exists(self.path):
                        out.fs.rm_file(self.path)
                    return
                buf = io.StringIO()
                w = csv.writer(buf)
                w.writerow(["video", "reason"])
                for k, v in self.rows.items():
                    w.writerow([k, v])
                out.write_text(FAILURES_FILE, buf.getvalue())

        return _Log()

    def write_videos_csv(self, names: Sequence[str]) -> None:
        from divita.features.extract import SHOTS_DIR, VIDEOS_FILE

        complete = set.intersection(*(self.committed(n) for n in names)) if names else set()
        rows = []
        for mid in sorted(complete):
            try:
                r = json.loads(self.fs.cat_file(self._path(SHOTS_DIR, f"{mid}.json")))
            except (OSError, ValueError):
                continue
            rows.append([mid, r.get("video", ""), r.get("fps"), r.get("num_frames"), len(r.get("shots", [])),
                         len(r.get("clips", [])), r.get("duration", "")])
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["id", "video", "fps", "num_frames", "shots", "clips", "duration_s"])
        w.writerows(rows)
        self.write_text(VIDEOS_FILE, buf.getvalue())

    def write_labels(self, labels, names: Sequence[str], seed: int, log) -> str:
        """mtgc.csv through :func:`divita.features.extract.write_labels`, which reads which ids are committed from
        local store directories: it is given a local index of the committed ids (empty ``<id>/zarr.json``
        files), and its output is uploaded."""
        from divita.features.extract import write_labels

        with tempfile.TemporaryDirectory(prefix="divita-labels-") as tmp:
            index = {}
            for n in names:
                for mid in self.committed(n):
                    (Path(tmp) / n / mid).mkdir(parents=True, exist_ok=True)
                    (Path(tmp) / n / mid / "zarr.json").write_text("{}")
                index[n] = str(Path(tmp) / n)
            path = write_labels(labels, Path(tmp), index, seed=seed, log=log)
            self.write_text("mtgc.csv", Path(path).read_text())
        return f"{self.url}/mtgc.csv"


def open_output(out: str | os.PathLike, storage_options: dict | None = None):
    """:class:`FsspecOutput` for URLs (other than file://), else :class:`LocalOutput`."""
    return FsspecOutput(str(out), storage_options) if is_url(out) else LocalOutput(out)


# ------------------------------------------------------------------------------------------ encoder actors


class EncoderWorker:
    """The body of an encoder actor: every backbone of the run, loaded once for the actor's lifetime."""

    def __init__(self, backbones: Sequence[str], weights: str, device: str, precision: str, frames_per_clip_2d: int,
                 threads: int | None = None):
        import torch

        if threads:
            torch.set_num_threads(int(threads))
        self.error: tuple[str | None, str] | None = None
        self.encoders: dict[str, Any] = {}
        self.calls = 0
        self.busy: str | None = None
        self.started = time.time()
        try:
            from divita.features.extract import load_encoders

            self.encoders = {e.spec.name: e for e in load_encoders(list(backbones), weights, device, precision, frames_per_clip_2d)}
        except DivitaError as e:  # reported by describe(): a usage error, not a reason to restart
            self.error = (e.where, e.problem)
        except Exception as e:
            self.error = (None, f"cannot load the backbones: {type(e).__name__}: {e}".splitlines()[0])

    def describe(self) -> dict:
        """What the driver needs to mirror the encoders (sizes, frame positions) and record them in stores."""
        if self.error:
            return {"error": self.error}
        out = {}
        for name, e in self.encoders.items():
            spec = e.spec
            out[name] = {
                "kind": spec.kind, "num_features": int(spec.num_features), "store_prefix": spec.store_prefix,
                "min_side": int(getattr(e, "min_side", 0) or 0), "clip_frames": getattr(e, "clip_frames", None),
                "frames_per_clip_2d": getattr(e, "frames_per_clip_2d", None), "settings": e.settings(),
            }
        return {"encoders": out, **self.status()}

    def encode(self, arrays: dict[str, np.ndarray], names: dict[str, str], video: str = "") -> dict[str, np.ndarray]:
        """``arrays``: frame key -> uint8 (B, T', H, W, 3); ``names``: backbone -> its frame key.
        Returns backbone -> float32 (B, num_features)."""
        self.busy = video or "?"
        self.calls += 1
        try:
            out = {}
            for name, key in names.items():
                x = arrays[key]
                if not x.flags.writeable:  # zero-copy from the object store: torch wants writable memory
                    x = np.array(x)
                y = self.encoders[name].encode(x)
                y = y.detach().cpu().numpy() if hasattr(y, "detach") else np.asarray(y)
                out[name] = np.asarray(y, dtype=np.float32).reshape(len(x), -1)
            return out
        finally:
            self.busy = None

    def status(self) -> dict:
        """pid, calls so far, the video being encoded (None when idle); answered even while encoding."""
        return {"pid": os.getpid(), "calls": self.calls, "busy": self.busy, "uptime": time.time() - self.started,
                "devices": sorted({str(getattr(e, "device", "cpu")) for e in self.encoders.values()})}


_REMOTES: dict[str, Any] = {}


def _remotes() -> dict[str, Any]:
    """The Ray wrappers of this module's functions (built on first use: importing this module needs no Ray)."""
    if not _REMOTES:
        ray = require_ray()

        @ray.remote(concurrency_groups={"control": 1})
        class EncoderActor(EncoderWorker):
            @ray.method(concurrency_group="control")
            def status(self) -> dict:
                return EncoderWorker.status(self)

        _REMOTES["encoder"] = EncoderActor
        _REMOTES["prepare"] = ray.remote(prepare_video)
        _REMOTES["detector_params"] = ray.remote(_detector_params)
        _REMOTES["train"] = ray.remote(train_run)
    return _REMOTES


# ------------------------------------------------------------------------------------------ prepare tasks


def _frame_key(desc: dict) -> tuple:
    """Encoders that read the same frames (decode size and positions in the clip) share one shipped array."""
    n = desc["clip_frames"] if desc["kind"] == "3d" else desc["frames_per_clip_2d"]
    return (desc["kind"] == "3d", int(desc["min_side"]), n)


def frame_plan(encoders: dict[str, dict], names: Sequence[str]) -> tuple[list[dict], dict[str, str]]:
    """(stand-in encoder descriptions, backbone -> frame key) for the backbones ``names``."""
    keys: dict[tuple, str] = {}
    captures: list[dict] = []
    mapping: dict[str, str] = {}
    for name in names:
        d = encoders[name]
        k = _frame_key(d)
        if k not in keys:
            keys[k] = f"frames{len(keys)}"
            captures.append({"key": keys[k], "kind": d["kind"], "min_side": d["min_side"], "clip_frames": d["clip_frames"],
                             "frames_per_clip_2d": d["frames_per_clip_2d"]})
        mapping[name] = keys[k]
    return captures, mapping


class _FrameTap:
    """Stands in for an encoder inside :func:`~divita.features.extract.process_video`: same name-space attributes
    (kind, decode side, frames per clip), so process_video gathers exactly the frames the real encoder
    would get; ``encode`` hands them to the batch collector and returns each clip's sequence number as
    its 'feature', from which the final (sorted) clip order is read back."""

    def __init__(self, desc: dict, collector: "_Batches", index: int):
        self.spec = SimpleNamespace(name=desc["key"], kind=desc["kind"])
        self.min_side = desc["min_side"]
        self.clip_frames = desc["clip_frames"]
        self.frames_per_clip_2d = desc["frames_per_clip_2d"]
        self.collector, self.index = collector, index

    def encode(self, clips: np.ndarray) -> np.ndarray:
        return self.collector.add(self.index, self.spec.name, clips)


class _Batches:
    """Collects one batch's frames from every tap, sends the batch to the encoder actor, and keeps at most
    ``window`` batches unanswered (back-pressure on the decoder when the encoders fall behind)."""

    def __init__(self, actor, names: dict[str, str], taps: int, window: int, video: str):
        import ray

        self.ray, self.actor, self.names, self.taps, self.window, self.video = ray, actor, names, taps, max(1, window), video
        self.arrays: dict[str, np.ndarray] = {}
        self.seq = 0
        self.pending: list[tuple[int, Any]] = []
        self.results: dict[int, dict[str, np.ndarray]] = {}
        self.batches = 0
        self.wait_s = 0.0

    def add(self, index: int, key: str, clips: np.ndarray) -> np.ndarray:
        n = len(clips)
        ids = np.arange(self.seq, self.seq + n, dtype=np.float32)[:, None]
        self.arrays[key] = np.ascontiguousarray(clips)
        if index == self.taps - 1:  # the batch is complete: every tap has its frames
            ref = self.actor.encode.remote(self.arrays, self.names, self.video)
            self.pending.append((self.batches, ref))
            self.batches += 1
            self.arrays = {}
            self.seq += n
            while len(self.pending) > self.window:
                self._collect(1)
        return ids

    def _collect(self, num: int) -> None:
        t0 = time.perf_counter()
        refs = [r for _, r in self.pending]
        ready, _ = self.ray.wait(refs, num_returns=min(num, len(refs)))
        ready_set = set(ready)
        keep = []
        for i, r in self.pending:
            if r in ready_set:
                self.results[i] = self.ray.get(r)  # a dead actor's error surfaces here, early
            else:
                keep.append((i, r))
        self.pending = keep
        self.wait_s += time.perf_counter() - t0

    def finish(self) -> list[dict[str, np.ndarray]]:
        if self.pending:
            self._collect(len(self.pending))
        return [self.results[i] for i in range(self.batches)]


def prepare_video(path: str, actor, captures: list[dict], names: dict[str, str], detector, fps: float, fpc: int,
                  min_clip_frames: int | None, batch_size: int, decode_threads: int, window: int = CHUNK_WINDOW,
                  threads: int | None = None) -> dict:
    """One video on a CPU worker: decode, shots, clips (the local code), clip frames streamed to ``actor``.

    Returns {"error": reason} for a video that cannot be used, else its shots, clips, info and features
    (backbone -> (clips, F) float32, in clip order). Ray failures (the actor died for good...) propagate.
    """
    import ray

    from divita.features.extract import process_video
    from divita.video import VideoError

    t0 = time.perf_counter()
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    batches = _Batches(actor, names, len(captures), window, Path(path).stem)
    taps = [_FrameTap(c, batches, i) for i, c in enumerate(captures)]
    try:
        result = process_video(path, taps, detector, fps=fps, fpc=fpc, min_clip_frames=min_clip_frames,
                               batch_size=batch_size, decode_threads=decode_threads)
        parts = batches.finish()
    except ray.exceptions.RayError:
        raise
    except (VideoError, DivitaError) as err:
        return {"error": err.problem}
    except Exception as err:
        return {"error": f"{type(err).__name__}: {err}".splitlines()[0][:300], "traceback": traceback.format_exc(limit=3)}
    order = result.features[taps[0].spec.name][:, 0].astype(np.int64)  # sequence numbers in clip order
    features = {}
    for name in names:
        x = np.concatenate([p[name] for p in parts]) if parts else np.zeros((0, 0), np.float32)
        features[name] = x[order] if len(x) else x
    return {
        "fps": result.fps, "num_frames": result.num_frames, "shots": result.shots, "clips": result.clips,
        "info": result.info, "features": features,
        "timings": {"prepare_wall": time.perf_counter() - t0, "waiting_for_encoders": batches.wait_s, "chunks": batches.batches},
        "pid": os.getpid(),
    }


def _detector_params(detector) -> dict:
    return detector.params()


# ------------------------------------------------------------------------------------------ extract driver


@dataclass
class _Job:
    mid: str
    path: Path  # as given (recorded in failures.csv and the stores)
    names: list[str]  # backbones still missing for this video
    attempts: int = 0
    actor: int = -1
    submitted: float = 0.0


@dataclass
class RayExtractStats:
    """What the Ray run did beyond the summary: per-video latency and where the time went."""

    encoders: int = 0
    in_flight: int = 0
    startup_s: float = 0.0  # connect + actors loaded
    retries: int = 0
    video_wall: list[float] = field(default_factory=list)  # submit -> result, per finished video
    prepare_wall: list[float] = field(default_factory=list)
    waiting_for_encoders: list[float] = field(default_factory=list)


class _ActorPool:
    def __init__(self, ray, make: Callable[[], Any], count: int):
        self.ray, self.make = ray, make
        self.actors = [make() for _ in range(count)]
        self.load = [0] * count

    def pick(self) -> int:
        i = min(range(len(self.actors)), key=lambda k: self.load[k])
        self.load[i] += 1
        return i

    def release(self, i: int) -> None:
        self.load[i] = max(0, self.load[i] - 1)

    def check(self, i: int, timeout: float = 120.0) -> bool:
        """After a Ray failure: True when actor ``i`` answers (restarted or alive); a dead one is replaced."""
        try:
            self.ray.get(self.actors[i].status.remote(), timeout=timeout)
            return True
        except self.ray.exceptions.GetTimeoutError:
            return False
        except self.ray.exceptions.RayActorError:
            self.actors[i] = self.make()
            return False

    def shutdown(self) -> None:
        for a in self.actors:
            try:
                self.ray.kill(a)
            except Exception:
                pass


def extract_ray(
    inputs: Sequence[str | os.PathLike],
    backbones: Sequence[str],
    out_dir: str | os.PathLike,
    *,
    address: str | None = None,
    encoders: int | None = None,
    encoder_gpus: float | None = None,
    encoder_cpus: float = 1.0,
    prepare_cpus: float = 1.0,
    prepare_gpus: float = 0.0,
    in_flight: int | None = None,
    chunk_window: int = CHUNK_WINDOW,
    retries: int = VIDEO_RETRIES,
    storage_options: dict | None = None,
    weights: str = "default",
    fps: float = 24.0,
    fpc: int = 24,
    min_clip_frames: int | None = None,
    detector: Any = "transnetv2",
    threshold: float = 0.5,
    content_threshold: float = 27.0,
    precision: str = "auto",
    frames_per_clip_2d: int = 3,
    batch_size: int = 16,
    threads: int | None = None,
    decode_threads: int = 0,
    labels: str | os.PathLike | None = None,
    split_seed: int = 0,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    on_event: Callable[[str, Any], None] | None = None,
    stats: RayExtractStats | None = None,
):
    """:func:`divita.features.extract.extract` on Ray: same outputs, same resumability (see the module docstring).

    ``address``: None/"local" (a new local Ray instance), "auto" or a cluster address. ``encoders``: encoder
    actors (default: one per GPU of the cluster, else 1), each with ``encoder_gpus`` GPUs (default 1 when the
    cluster has GPUs, else 0: fractions share a GPU) and ``encoder_cpus`` CPUs; encoders run on CUDA exactly
    when they get a GPU share. ``prepare_cpus``/``prepare_gpus``: resources of each prepare task (TransNetV2
    runs on CUDA when ``prepare_gpus`` > 0). ``in_flight``: videos in the pipeline at once (default: the
    prepare tasks that fit next to the encoders, plus one per encoder). Video paths must be readable at the
    same path on every node (a shared filesystem); ``out_dir`` only by the driver. ``on_event(kind, data)``:
    "actors" (the actor handles), "committed" (id), "retry" ((id, reason)), "failed" ((path, reason)).
    """
    from divita import __version__
    from divita.backbones import get_spec
    from divita.clips import default_min_frames
    from divita.features.extract import ExtractSummary, VideoResult, find_videos, video_ids
    from divita.shots import Detector
    from divita.features.store import check_array_id, store_dir_name

    log = log or (lambda s: print(s, file=sys.stderr))
    emit = on_event or (lambda kind, data: None)
    stats = stats if stats is not None else RayExtractStats()
    ray = require_ray()
    if fpc < 1:
        raise DivitaError(None, f"frames per clip must be at least 1, got {fpc}")
    if not fps or fps <= 0:
        raise DivitaError(None, f"fps must be positive, got {fps}")
    if min_clip_frames is not None and not 1 <= min_clip_frames <= fpc:
        raise DivitaError(None, f"--min-clip-frames must be between 1 and fpc={fpc}, got {min_clip_frames}")
    if batch_size < 1:
        raise DivitaError(None, f"--batch-size must be at least 1, got {batch_size}")
    names = [str(b) for b in backbones]
    if not names:
        raise DivitaError(None, "no backbone given")
    if not all(isinstance(b, str) for b in backbones):
        raise DivitaError(None, "on Ray, backbones are given by name (the actors load them)")
    if len(set(names)) != len(names):
        raise DivitaError(None, f"backbone listed twice: {', '.join(names)}")
    for n in names:
        get_spec(n)
    for what, v in (("encoder CPUs", encoder_cpus), ("encoder GPUs", encoder_gpus), ("prepare CPUs", prepare_cpus),
                    ("prepare GPUs", prepare_gpus), ("retries", retries)):
        if v is not None and v < 0:
            raise DivitaError(None, f"{what} must not be negative, got {v}")
    if in_flight is not None and in_flight < 1:
        raise DivitaError(None, f"videos in flight must be at least 1, got {in_flight}")
    if chunk_window < 1:
        raise DivitaError(None, f"unanswered batches per video must be at least 1, got {chunk_window}")
    if weights not in ("default", "random") and Path(weights).exists():
        weights = str(Path(weights).resolve())  # workers may run elsewhere than the driver's cwd
    output = open_output(out_dir, storage_options)
    videos = find_videos(inputs)
    if not videos:
        raise DivitaError(None, "no video files found in the inputs")

    t_start = time.perf_counter()
    started = connect(address)  # first: an unreachable cluster leaves nothing behind
    pool = None
    try:
        output.prepare()
        cluster = ray.cluster_resources()
        gpus = float(cluster.get("GPU", 0))
        if encoder_gpus is None:
            encoder_gpus = 1.0 if gpus > 0 else 0.0
        if encoders is None:
            encoders = max(1, int(gpus // encoder_gpus)) if encoder_gpus > 0 else 1
        if encoders < 1:
            raise DivitaError(None, f"need at least one encoder actor, got {encoders}")
        if encoder_gpus > 0 and gpus < encoder_gpus:
            raise DivitaError(address or "local", f"encoder actors want {encoder_gpus:g} GPU each but the cluster has {gpus:g} GPUs")
        cpus = float(cluster.get("CPU", 0))
        spare = cpus - encoders * encoder_cpus
        if prepare_cpus > 0 and spare < prepare_cpus:
            msg = (f"the Ray cluster has {cpus:g} CPUs: {encoders} encoder actor(s) x {encoder_cpus:g} CPU leave "
                   f"{max(0.0, spare):g}, less than one prepare task needs ({prepare_cpus:g}); lower the encoder CPUs or add nodes")
            if _is_local_address(address) or started is False:
                raise DivitaError(None, msg)
            log(f"divita extract: warning: {msg} (waiting for an autoscaler)")
        slots = max(1, int(spare // prepare_cpus)) if prepare_cpus > 0 else 2 * encoders
        in_flight = int(in_flight or (slots + encoders))
        stats.encoders, stats.in_flight = encoders, in_flight

        enc_device = "cuda" if encoder_gpus > 0 else "cpu"
        det_device = "cuda" if prepare_gpus > 0 else "cpu"
        if isinstance(detector, str):
            detector = Detector(detector, threshold=threshold, content_threshold=content_threshold, device=det_device,
                                precision=precision, fps=fps, segment_frames=fpc)
        else:
            detector = replace(detector, device=det_device)
        remotes = _remotes()
        enc_threads = threads or max(1, int(encoder_cpus))
        prep_threads = threads or max(1, int(prepare_cpus))
        actor_opts = dict(num_cpus=encoder_cpus, num_gpus=encoder_gpus, max_restarts=ACTOR_RESTARTS, max_task_retries=TASK_RETRIES)
        prep_opts = dict(num_cpus=prepare_cpus, num_gpus=prepare_gpus, max_retries=TASK_RETRIES)

        def make_actor():
            return remotes["encoder"].options(**actor_opts).remote(names, weights, enc_device, precision, frames_per_clip_2d, enc_threads)

        det_ref = remotes["detector_params"].options(**prep_opts).remote(detector)
        pool = _ActorPool(ray, make_actor, encoders)
        described = ray.get([a.describe.remote() for a in pool.actors])
        for d in described:
            if "error" in d:
                raise DivitaError(*d["error"])
        desc = described[0]["encoders"]
        det_params = ray.get(det_ref)
        stats.startup_s = time.perf_counter() - t_start
        emit("actors", list(pool.actors))

        m_frames = default_min_frames(fpc) if min_clip_frames is None else int(min_clip_frames)
        store_names: dict[str, str] = {}
        for n in names:
            d = desc[n]
            sname = store_dir_name(d["store_prefix"], n, fps, fpc)
            extraction = {
                "backbone": d["settings"], "fps": float(fps), "fpc": int(fpc), "min_clip_frames": m_frames,
                "detector": det_params, "divita": __version__, "clips": CLIPS_NOTE,
            }
            output.create_store(sname, d["num_features"], extraction)
            store_names[n] = sname

        ids, dups = video_ids(videos)
        failures = output.failure_log()
        summary = ExtractSummary(str(output), {n: output.store(s) for n, s in store_names.items()})
        for v, reason in dups.items():
            failures.fail(v, reason)
            summary.failed[v] = reason
        have = {n: output.committed(s) for n, s in store_names.items()}
        queue: deque[_Job] = deque()
        for mid, path in ids:
            todo = [n for n in names if mid not in have[n]]
            if not todo:
                summary.skipped.append(mid)
                failures.clear(str(path))
                continue
            queue.append(_Job(mid, path, todo))

        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(ids), initial=len(summary.skipped), desc="videos", unit="video", dynamic_ncols=True)
        t0 = time.perf_counter()
        running: dict[Any, _Job] = {}
        plans: dict[tuple, tuple[list[dict], dict[str, str]]] = {}

        def fail(job: _Job, reason: str) -> None:
            failures.fail(str(job.path), reason)
            summary.failed[str(job.path)] = reason
            log(f"divita extract: {job.path}: {reason}")
            emit("failed", (str(job.path), reason))
            if bar is not None:
                bar.update(1)

        try:
            while queue or running:
                while queue and len(running) < in_flight:
                    job = queue.popleft()
                    try:
                        check_array_id(job.mid)
                    except DivitaError as err:
                        fail(job, err.problem)
                        continue
                    key = tuple(job.names)
                    if key not in plans:
                        plans[key] = frame_plan(desc, job.names)
                    captures, mapping = plans[key]
                    job.actor = pool.pick()
                    job.submitted = time.perf_counter()
                    src = str(Path(job.path).resolve()) if Path(job.path).exists() else str(job.path)
                    ref = remotes["prepare"].options(**prep_opts).remote(
                        src, pool.actors[job.actor], captures, mapping, detector, fps, fpc, min_clip_frames, batch_size,
                        decode_threads, chunk_window, prep_threads,
                    )
                    running[ref] = job
                if not running:
                    continue
                ready, _ = ray.wait(list(running), num_returns=1)
                job = running.pop(ready[0])
                pool.release(job.actor)
                try:
                    res = ray.get(ready[0])
                except ray.exceptions.RayError as err:  # the pipeline broke (not the video): resubmit it whole
                    job.attempts += 1
                    reason = _ray_reason(err)
                    pool.check(job.actor)
                    if job.attempts > retries:
                        fail(job, f"gave up after {job.attempts} attempts on Ray: {reason}")
                    else:
                        stats.retries += 1
                        log(f"divita extract: {job.path}: retrying ({reason})")
                        emit("retry", (job.mid, reason))
                        queue.appendleft(job)
                    continue
                if "error" in res:
                    if res.get("traceback"):
                        log(res["traceback"])
                    fail(job, res["error"])
                    continue
                bad = [n for n in job.names if not np.isfinite(res["features"][n]).all()]
                if bad:
                    fail(job, f"backbone {bad[0]} produced NaN/inf features")
                    continue
                result = VideoResult(path=str(job.path), fps=res["fps"], num_frames=res["num_frames"], shots=res["shots"],
                                     clips=res["clips"], features=res["features"], info=res["info"])
                record = result.record()
                output.write_shots(job.mid, record)
                attrs = {"shots": record["shots"], "clips": record["clips"], "clip_seconds": record["clip_seconds"],
                         "fps": float(fps), "source": str(job.path), "num_frames": result.num_frames}
                output.commit(job.mid, {store_names[n]: (result.features[n], attrs) for n in job.names})
                failures.clear(str(job.path))
                summary.done.append(job.mid)
                summary.frames += result.num_frames
                stats.video_wall.append(time.perf_counter() - job.submitted)
                stats.prepare_wall.append(res["timings"]["prepare_wall"])
                stats.waiting_for_encoders.append(res["timings"]["waiting_for_encoders"])
                emit("committed", job.mid)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(frames_per_s=f"{summary.frames / max(1e-9, time.perf_counter() - t0):.0f}")
        finally:
            if bar is not None:
                bar.close()
            summary.seconds = time.perf_counter() - t0
            for ref in running:
                try:
                    ray.cancel(ref, force=True)
                except Exception:
                    pass
            output.write_videos_csv(list(store_names.values()))
        order = {mid: i for i, (mid, _) in enumerate(ids)}
        summary.done.sort(key=order.__getitem__)
        if labels is not None:
            summary.labels = output.write_labels(labels, list(store_names.values()), split_seed, log)
        return summary
    finally:
        if pool is not None:
            pool.shutdown()
        disconnect(started)


def _ray_reason(err: BaseException) -> str:
    """One line saying why Ray failed (the innermost cause's type and first line)."""
    cause = getattr(err, "cause", None) or err
    text = str(cause).strip().splitlines()
    first = next((t for t in text if t.strip() and not t.startswith(("\x1b", " "))), text[0] if text else "")
    return f"{type(cause).__name__}: {first}"[:300]


# ------------------------------------------------------------------------------------------ training grid


_TRAIN_CACHE = None


def _train_cache(cfg):
    """A per-worker-process feature cache holding only the stores of the current run (a worker that trains
    several runs of one row in turn reads its stores once; memory stays at one row's stores)."""
    global _TRAIN_CACHE
    from divita.training import FeatureCache, resolve

    if _TRAIN_CACHE is None:
        _TRAIN_CACHE = FeatureCache(progress=False)
    wanted = {str(resolve(cfg.data_dir, ref).resolve()) for ref in cfg.stores.values()}
    _TRAIN_CACHE._tables = {k: v for k, v in _TRAIN_CACHE._tables.items() if k[0] in wanted}
    return _TRAIN_CACHE


def train_run(cfg) -> dict:
    """One training run on a Ray worker: trains into a temporary directory and returns the run's files."""
    from divita.cli._train_options import quiet_lightning
    from divita.training import train_model

    quiet_lightning()
    try:
        with tempfile.TemporaryDirectory(prefix="divita-run-") as tmp:
            res = train_model(cfg, tmp, cache=_train_cache(cfg), progress=False)
            files = {f.name: f.read_bytes() for f in sorted(Path(tmp).iterdir()) if f.is_file()}
    except DivitaError as e:
        return {"error": (e.where, e.problem)}
    return {"files": files, "best_epoch": res.best_epoch, "epochs": res.epochs, "seconds": res.seconds,
            "metrics": res.metrics, "pid": os.getpid()}


def write_run_files(run_dir: Path, files: dict[str, bytes]) -> None:
    """A run's files, each atomically, ``metrics.csv`` last (its presence marks the run finished)."""
    from divita.fileio import atomic_write_bytes

    run_dir.mkdir(parents=True, exist_ok=True)
    for name in sorted(files, key=lambda n: n == "metrics.csv"):
        atomic_write_bytes(run_dir / name, lambda f, b=files[name]: f.write(b))


def train_grid(
    jobs: Sequence[tuple[Any, Path, str]],
    address: str | None = None,
    cpus_per_run: float | None = None,
    gpus_per_run: float | None = None,
    retries: int = TASK_RETRIES,
    on_result: Callable[[str, dict], None] | None = None,
    progress: bool = False,
) -> dict[str, dict]:
    """Train ``jobs`` ((TrainConfig, run_dir, label) each) as Ray tasks; each finished run is written into
    its run_dir as soon as it arrives. ``gpus_per_run``: default 1 when the cluster has GPUs, else 0;
    ``cpus_per_run``: default 1 with a GPU, else 2 (torch uses that many threads). Returns label -> result."""
    ray = require_ray()
    started = connect(address)
    results: dict[str, dict] = {}
    try:
        gpus = float(ray.cluster_resources().get("GPU", 0))
        if gpus_per_run is None:
            gpus_per_run = 1.0 if gpus > 0 else 0.0
        if cpus_per_run is None:
            cpus_per_run = 1.0 if gpus_per_run > 0 else 2.0
        cpus = float(ray.cluster_resources().get("CPU", 0))
        if cpus_per_run > cpus and _is_local_address(address):
            raise DivitaError(None, f"--ray-cpus-per-run {cpus_per_run:g} is more than the {cpus:g} CPUs of this machine")
        if gpus_per_run > 0 and gpus < gpus_per_run:
            raise DivitaError(address or "local", f"each run wants {gpus_per_run:g} GPU but the cluster has {gpus:g}")
        task = _remotes()["train"].options(num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=retries)
        running = {}
        for cfg, run_dir, label in jobs:
            c = replace(cfg, data_dir=str(Path(cfg.data_dir).resolve()))
            if c.threads is None:
                c = replace(c, threads=max(1, int(cpus_per_run)))
            if gpus_per_run <= 0 and c.accelerator == "auto":
                c = replace(c, accelerator="cpu")
            running[task.remote(c)] = (Path(run_dir), label)
        bar = None
        if progress and running:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(running), desc="reproduce (ray)", unit="run")
        try:
            while running:
                ready, _ = ray.wait(list(running), num_returns=1)
                run_dir, label = running.pop(ready[0])
                try:
                    res = ray.get(ready[0])
                except ray.exceptions.RayError as err:
                    raise DivitaError(run_dir, f"training on Ray failed after {retries} retries: {_ray_reason(err)}") from None
                if "error" in res:
                    raise DivitaError(*res["error"])
                write_run_files(run_dir, res["files"])
                results[label] = res
                if on_result is not None:
                    on_result(label, res)
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
            for ref in running:
                try:
                    ray.cancel(ref, force=True)
                except Exception:
                    pass
        return results
    finally:
        disconnect(started)


__all__ = [
    "FsspecOutput",
    "INSTALL_HINT",
    "LocalOutput",
    "RayExtractStats",
    "connect",
    "disconnect",
    "extract_ray",
    "frame_plan",
    "open_output",
    "prepare_video",
    "require_ray",
    "train_grid",
    "train_run",
]
