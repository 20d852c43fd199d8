"""Training memory and time as the data grows: the feature cache against reading every store into memory.

Generates release-format data of ResNet-Fusion width (2048-d image + 512-d video features, zarr format 2, 40-150
clips a trailer) at 1,000 and 3,000 trailers, streamed to disk, and trains late-fusion DIViTA 3 epochs on each
with `divita train`, each run a fresh process:

- ``memory``: ``--cache-dir none``, every store read into memory as float32 (divita before the feature cache);
- ``cache, cold``: the feature cache built first (its build time is part of the run);
- ``cache, warm``: the caches exist.

For each run it prints the stores' float32 size, the peak anonymous memory (``RssAnon`` of /proc/PID/status,
sampled every 20 ms), the peak of the file pages mapped into the process (``RssFile``: shared libraries and the
feature cache's memory-mapped files, all page cache), the peak RSS (``VmHWM``, the two together), seconds
per epoch (train + validation, mean of the epochs after the first, from history.csv), and the seconds from process
start to the first training step, split into interpreter start, importing torch, divita (parsing the command line
and importing divita's modules and their other libraries), loading the data (labels, stores or caches:
``load_split``), and the rest (building the model and the optimizer, the first batch).

Then the 3,000-trailer case trains once more from a cold cache inside a memory cgroup limited to
1.5 GB + 30 % of the stores' float32 size (page cache counts against that limit and is reclaimable; anonymous
memory is not), with the stores' and caches' pages dropped from the page cache first so that the run has to read
them again through the limit. It prints whether it finished, its epoch time and the cgroup's peak usage; then the
in-memory path under the same limit (which is expected to be killed). Needs root for the cgroup (v1 or v2).

``--e2e``: instead, the end-to-end time of one `divita train` run (50 epochs at most, early stopping, late fusion,
2,000 trailers of ShuffleNet width: 1024-d image + 1024-d video) from process start to metrics.csv written,
through the in-memory path and through the feature cache (cold and warm).

    python benchmarks/train_memory.py [--work-dir DIR] [--sizes 1000 3000] [--epochs 3] [--no-cgroup] [--keep]
    python benchmarks/train_memory.py --e2e [--work-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
IMAGE_STORE = "trailers_i_resnet_fpc24.zarr"
VIDEO_STORE = "trailers_k_r2plus1d_fps24_fpc24.zarr"
SHUFFLENET_STORES = ("trailers_i_shufflenet_fpc24.zarr", "trailers_k_shufflenet_fps24_fpc24.zarr")
GB = 1e9

# The child: `divita train` as the command line runs it, timing the moments before its first training step.
CHILD = r"""
import json, os, sys, time
t_start = time.time()
out = os.environ["DIVITA_BENCH_TIMES"]
marks = {"parent": float(os.environ["DIVITA_BENCH_T0"]), "interpreter": t_start}
import torch
marks["torch"] = time.time()
import divita.training.batches as batches
import divita.training.loop as loop

real_load, real_iter = loop.load_split, batches.EpochBatches.__iter__

def timed_load(*args, **kwargs):
    marks.setdefault("load_start", time.time())
    try:
        return real_load(*args, **kwargs)
    finally:
        marks.setdefault("load_end", time.time())

def first_step_iter(self):
    for batch in real_iter(self):
        if "first_step" not in marks:
            marks["first_step"] = time.time()
            with open(out, "w") as f:
                json.dump(marks, f)
        yield batch

loop.load_split, batches.EpochBatches.__iter__ = timed_load, first_step_iter
from divita.cli import main
code = main(sys.argv[1:])
marks["end"] = time.time()
with open(out, "w") as f:
    json.dump(marks, f)
sys.exit(code)
"""


# ------------------------------------------------------------------------------------------------ data
def make_data(
    data_dir: Path, num_trailers: int, image_features: int, video_features: int, stores: tuple[str, str], seed: int = 0
) -> Path:
    """Release-format data like :func:`divita.datasets.synthetic.make_release` (its labels, splits and planted
    signal), written one trailer at a time so that the generator's memory stays small."""
    import numpy as np
    import pandas as pd
    import zarr

    from divita.datasets.labels import LABEL_COLUMNS
    from divita.datasets.synthetic import SyntheticSpec, make_clips, make_labels, make_splits
    from divita.genres import GENRES, NUM_GENRES

    if (data_dir / "mtgc.csv").is_file():
        return data_dir
    spec = SyntheticSpec(num_trailers=num_trailers, min_clips=40, max_clips=150, seed=seed)
    rng = np.random.default_rng(seed)
    mids = [f"tt{9000000 + i:07d}" for i in range(num_trailers)]
    labels, splits = make_labels(num_trailers, rng), make_splits(num_trailers, rng)
    lengths = rng.integers(spec.min_clips, spec.max_clips + 1, num_trailers)
    gains = {"image": np.r_[np.ones(7), 0.25 * np.ones(3)], "video": np.r_[0.25 * np.ones(3), np.ones(7)]}
    data_dir.mkdir(parents=True, exist_ok=True)
    for modality, store, num_features in (("image", stores[0], image_features), ("video", stores[1], video_features)):
        prototypes = rng.standard_normal((NUM_GENRES, num_features))
        prototypes /= np.linalg.norm(prototypes, axis=1, keepdims=True)
        tmp = data_dir / (store + ".tmp")
        group = zarr.open_group(str(tmp), mode="w", zarr_format=2)
        group.attrs["num_features"] = int(num_features)
        for i, mid in enumerate(mids):
            x = make_clips(labels[i], prototypes, gains[modality], int(lengths[i]), spec, rng)
            group.create_array(mid, shape=x.shape, dtype="float32", chunks=x.shape)[...] = x
        os.replace(tmp, data_dir / store)
    df = pd.DataFrame({"mid": mids})
    for g, col in enumerate(GENRES):
        df[col] = labels[:, g]
    for s in range(3):
        df[f"split{s}"] = splits[:, s]
    df[list(LABEL_COLUMNS)].to_csv(data_dir / "mtgc.csv", index=False)
    return data_dir


def float32_bytes(data_dir: Path, stores: tuple[str, str]) -> int:
    """The stores' size as float32 rows: clips x features x 4, summed."""
    import zarr

    total = 0
    for store in stores:
        g = zarr.open_group(str(data_dir / store), mode="r")
        total += sum(int(a.shape[0]) * int(a.shape[1]) * 4 for _, a in g.arrays())
    return total


def drop_page_cache(*paths: Path) -> None:
    """Drop these files' clean pages from the page cache (POSIX_FADV_DONTNEED; other processes' files untouched)."""
    for root in paths:
        if not root.exists():
            continue
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for p in files:
            fd = os.open(p, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


# ------------------------------------------------------------------------------------------------ a run
def status_kb(pid: int) -> dict[str, int]:
    """RssAnon, RssFile, VmHWM (kB) of /proc/PID/status, and majflt (major page faults: pages read from disk)."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("RssAnon", "VmRSS", "VmHWM", "RssFile"):
                    out[key] = int(value.split()[0])
        with open(f"/proc/{pid}/stat") as f:
            out["majflt"] = int(f.read().rsplit(")", 1)[1].split()[9])
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        pass
    return out


def train(
    data_dir: Path,
    run_dir: Path,
    stores: tuple[str, str],
    epochs: int,
    cache_dir: str,
    extra: tuple[str, ...] = (),
    cgroup: Path | None = None,
    stop_patience: int | None = None,
) -> dict:
    """One `divita train` in a fresh process (in ``cgroup`` when given); its figures."""
    shutil.rmtree(run_dir, ignore_errors=True)
    times = run_dir.with_suffix(".times.json")
    times.unlink(missing_ok=True)
    argv = [
        "train",
        "--data-dir",
        str(data_dir),
        "--ix",
        stores[0],
        "--vx",
        stores[1],
        "--split",
        "0",
        "--out",
        str(run_dir),
        "--max-epochs",
        str(epochs),
        "--cache-dir",
        cache_dir,
        "--no-progress",
        *extra,
    ]
    if stop_patience is not None:
        argv += ["--stop-patience", str(stop_patience)]
    t0 = time.time()
    env = {**os.environ, "DIVITA_BENCH_TIMES": str(times), "DIVITA_BENCH_T0": repr(t0)}

    def enter_cgroup() -> None:  # in the child, before exec: everything it allocates is charged to the cgroup
        procs = cgroup / ("cgroup.procs" if (cgroup / "cgroup.procs").exists() else "tasks")
        procs.write_text(str(os.getpid()))

    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=enter_cgroup if cgroup else None,
    )
    peak = {"RssAnon": 0, "RssFile": 0, "VmHWM": 0, "majflt": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            s = status_kb(proc.pid)
            for k in peak:
                peak[k] = max(peak[k], s.get(k, 0))
            done.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    done.set()
    sampler.join()
    wall = time.time() - t0
    res = {
        "returncode": proc.returncode,
        "wall_s": wall,
        "peak_anon_gb": peak["RssAnon"] * 1024 / GB,
        "peak_file_gb": peak["RssFile"] * 1024 / GB,
        "peak_rss_gb": peak["VmHWM"] * 1024 / GB,
        "majflt": peak["majflt"],
        "stderr": err.strip().splitlines()[-3:],
    }
    if times.is_file():
        m = json.loads(times.read_text())
        if "first_step" in m:
            res["first_step_s"] = m["first_step"] - m["parent"]
            res["startup"] = {
                "interpreter": m["interpreter"] - m["parent"],
                "torch": m["torch"] - m["interpreter"],
                "divita": m.get("load_start", m["torch"]) - m["torch"],
                "load_split": m.get("load_end", 0) - m.get("load_start", 0),
            }
            res["startup"]["rest"] = res["first_step_s"] - sum(res["startup"].values())  # model, set-up, 1st batch
        if "end" in m:
            res["end_s"] = m["end"] - m["parent"]
    hist = run_dir / "history.csv"
    if hist.is_file():
        import pandas as pd

        h = pd.read_csv(hist)
        per_epoch = (h["train_seconds"] + h["val_seconds"]).to_numpy()
        res["epochs"] = len(h)
        res["epoch_s"] = float(per_epoch[1:].mean() if len(per_epoch) > 1 else per_epoch.mean())
        res["first_epoch_s"] = float(per_epoch[0])
    res["finished"] = proc.returncode == 0 and (run_dir / "metrics.csv").is_file()
    return res


def line(label: str, size_gb: float, r: dict) -> str:
    if not r["finished"]:
        return f"{label:<28} {size_gb:>8.2f}  did not finish (exit {r['returncode']}): {' | '.join(r['stderr'])}"
    s = r.get("startup", {})
    parts = ", ".join(f"{k} {v:.2f}" for k, v in s.items())
    return (
        f"{label:<28} {size_gb:>8.2f} {r['peak_anon_gb']:>9.2f} {r['peak_file_gb']:>9.2f} {r['peak_rss_gb']:>8.2f} "
        f"{r['epoch_s']:>8.2f} {r['first_epoch_s']:>8.2f} {r.get('first_step_s', float('nan')):>10.2f}   ({parts})"
    )


# ------------------------------------------------------------------------------------------------ cgroup
def make_cgroup(limit: int) -> Path:
    """A memory cgroup below this process's own, limited to ``limit`` bytes (v1, else v2)."""
    own = {}
    for entry in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = entry.split(":", 2)
        own[controllers] = path
    name = f"divita-train-memory-{os.getpid()}"
    v1 = next((p for c, p in own.items() if "memory" in c.split(",")), None)
    if v1 is not None and Path("/sys/fs/cgroup/memory").is_dir():
        cg = Path("/sys/fs/cgroup/memory") / v1.lstrip("/") / name
        cg.mkdir()
        (cg / "memory.limit_in_bytes").write_text(str(limit))
        try:  # no swap either (where swap accounting is on)
            (cg / "memory.memsw.limit_in_bytes").write_text(str(limit))
        except OSError:
            pass
        return cg
    base = Path("/sys/fs/cgroup") / own.get("", "/").lstrip("/")
    cg = base / name
    cg.mkdir()
    (cg / "memory.max").write_text(str(limit))
    (cg / "memory.swap.max").write_text("0")
    return cg


def cgroup_peak(cg: Path) -> float:
    for name in ("memory.max_usage_in_bytes", "memory.peak"):
        if (cg / name).is_file():
            return int((cg / name).read_text()) / GB
    return float("nan")


def remove_cgroup(cg: Path) -> None:
    for _ in range(50):
        try:
            cg.rmdir()
            return
        except OSError:
            time.sleep(0.1)
    print(f"could not remove the cgroup {cg}")


# ------------------------------------------------------------------------------------------------ main
def memory_benchmark(work: Path, sizes: list[int], epochs: int, use_cgroup: bool) -> None:
    stores = (IMAGE_STORE, VIDEO_STORE)
    print(
        f"{'run':<28} {'f32 GB':>8} {'anon GB':>9} {'file GB':>9} {'RSS GB':>8} {'epoch s':>8} {'1st ep s':>8} "
        f"{'1st step s':>10}   (before the first step: interpreter, torch, divita, load_split, rest)"
    )
    epoch_s = {}
    for n in sizes:
        t = time.perf_counter()
        data = make_data(work / f"data{n}", n, 2048, 512, stores)
        size = float32_bytes(data, stores)
        print(f"-- {n} trailers: stores {size / GB:.2f} GB as float32 (generated in {time.perf_counter() - t:.0f}s)")
        cache = work / f"cache{n}"
        shutil.rmtree(cache, ignore_errors=True)
        for label, cache_dir in (
            ("memory (--cache-dir none)", "none"),
            ("cache, cold (builds)", str(cache)),
            ("cache, warm", str(cache)),
        ):
            r = train(data, work / f"run{n}", stores, epochs, cache_dir)
            print(line(f"{n} {label}", size / GB, r), flush=True)
            if label == "cache, warm" and r["finished"]:
                epoch_s[n] = r["epoch_s"]
    if len(epoch_s) == 2:
        a, b = sorted(epoch_s)
        print(
            f"epoch time, {b} vs {a} trailers ({b / a:.1f}x the data): {epoch_s[b] / epoch_s[a]:.2f}x (at most "
            f"{3.6 * b / a / 3:.1f}x allowed)"
        )
    if not use_cgroup:
        return
    n = max(sizes)
    data = work / f"data{n}"
    size = float32_bytes(data, stores)
    limit = int(1.5 * GB + 0.3 * size)
    cache = work / f"cache{n}"
    for label, cache_dir in (("cache, cold", str(cache)), ("memory (--cache-dir none)", "none")):
        shutil.rmtree(cache, ignore_errors=True)
        drop_page_cache(data, cache)
        cg = make_cgroup(limit)
        try:
            r = train(data, work / f"run{n}-cgroup", stores, epochs, cache_dir, cgroup=cg)
            peak = cgroup_peak(cg)
        finally:
            remove_cgroup(cg)
        verdict = "FINISHED" if r["finished"] else f"did NOT finish (exit {r['returncode']})"
        extra = (
            (
                f"{r['epoch_s']:.2f} s/epoch (first {r['first_epoch_s']:.2f}), peak anon {r['peak_anon_gb']:.2f} GB, "
                f"{r['majflt']} major faults, {r['wall_s']:.0f}s in all"
            )
            if r["finished"]
            else " | ".join(r["stderr"])
        )
        print(
            f"cgroup limit {limit / GB:.2f} GB (1.5 GB + 30 % of {size / GB:.2f} GB), {n} trailers, {label}: "
            f"{verdict}; cgroup peak usage {peak:.2f} GB; {extra}",
            flush=True,
        )


def e2e_benchmark(work: Path) -> None:
    data = make_data(work / "shufflenet2000", 2000, 1024, 1024, SHUFFLENET_STORES)
    size = float32_bytes(data, SHUFFLENET_STORES)
    cache = work / "cache-shufflenet2000"
    shutil.rmtree(cache, ignore_errors=True)
    print(
        f"2,000 trailers of ShuffleNet width, stores {size / GB:.2f} GB as float32; `divita train`, 50 epochs at "
        "most, early stopping (patience 20), late fusion"
    )
    for label, cache_dir in (
        ("memory (--cache-dir none)", "none"),
        ("cache, cold (builds)", str(cache)),
        ("cache, warm", str(cache)),
    ):
        r = train(data, work / "run-e2e", SHUFFLENET_STORES, 50, cache_dir)
        if not r["finished"]:
            print(f"{label}: did not finish: {' | '.join(r['stderr'])}")
            continue
        s = ", ".join(f"{k} {v:.2f}" for k, v in r["startup"].items())
        print(
            f"{label:<28} process start to metrics.csv {r['end_s']:6.1f} s; {r['epochs']} epochs, "
            f"{r['epoch_s']:.2f} s/epoch; first step after {r['first_step_s']:.2f} s ({s}); "
            f"peak anon {r['peak_anon_gb']:.2f} GB",
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work-dir", help="where data, caches and runs go (default: a temporary directory, deleted after)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 3000])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--no-cgroup", action="store_true", help="skip the run inside the memory cgroup")
    ap.add_argument(
        "--e2e", action="store_true", help="the end-to-end `divita train` time on 2,000 ShuffleNet-width trailers"
    )
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="divita-train-memory-", dir="/tmp"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"work directory {work} ({shutil.disk_usage(work).free / GB:.0f} GB free)")
    try:
        if args.e2e:
            e2e_benchmark(work)
        else:
            memory_benchmark(work, sorted(args.sizes), args.epochs, not args.no_cgroup)
    finally:
        if not args.keep and not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
