"""Load on `divita serve`: N clients each upload a generated 30-s 1280x720 24-fps trailer at once.

Builds the same checkpoint as predict_latency.py (shufflenet + r2plus1d late fusion, random backbone weights so
it runs offline, with the compute of the pretrained ones), then:

1. directly: ``GenreClassifier.predict`` on the trailer N times in a row in this process (after one warm-up),
   the work a 1-worker server has to do for N uploads; N times again after step 2, so that the baseline is
   the mean of calls on both sides of the server's batch (the machine's speed drifts when it is shared);
2. through the service: starts ``divita serve`` on 127.0.0.1 (a free port, a fresh data directory), sends one
   warm-up job, then N client threads upload the trailer together and poll their job until it is done.

Prints accepted/s (N over the time from the first upload's start to the last 202), p50/p95 time to result
(upload start -> done seen by the client, polled every 0.2 s), the server's overhead over the direct run
(the batch's wall time through the service against the N direct predictions; with --workers 1 both run the
same predictions one after another), and the jobs' own run time against the direct prediction. As a shared
machine's speed drifts between the direct runs and the server's batch, it also prints the batch's wall time
against the time ``GenreClassifier.predict`` itself took inside those very jobs (the result's ``timings``): the
service's own overhead (upload, probe, queue, polling), measured on the same predictions. The timeline picture
is drawn on its first request, not in the job, so it is not part of it. Loopback only; the number of clients
and the run time are bounded (--clients at most 64, --max-time), and the server is stopped at the end.

    python benchmarks/serve_load.py [--clients 4] [--seconds 30] [--workers 1]

``--compare`` measures the worker kinds side by side in one run, on the same trailer and N clients: the server
with thread workers and with process workers (thread, process, process, thread: each kind's batch time is the
mean of its two runs, so that a drift of the machine's speed falls on both), the overhead of the processes over
the threads, then ``--ray`` on a local Ray instance with 1 and with 2 worker actors (jobs per second).

    python benchmarks/serve_load.py --compare [--clients 4] [--seconds 8]

``--one-at-a-time`` measures what a single user waits: one client uploads the trailer and polls (every 0.05 s)
until its result, then the next upload, ``--repeats`` times, after one warm-up job, on a server with 1 process
worker and the ShuffleNet pair checkpoint (shufflenet + shufflenet3d late fusion, random backbone weights). It
prints the p50 (and fastest, slowest) time to result, the p50 of ``GenreClassifier.predict``'s own time inside
those jobs, and the rest (upload, probe, queue, polling).

    python benchmarks/serve_load.py --one-at-a-time [--repeats 5] [--seconds 30]
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

MAX_CLIENTS = 64
HOST = "127.0.0.1"  # loopback only


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]) of a non-empty list."""
    s = sorted(values)
    return s[max(0, min(len(s) - 1, math.ceil(q / 100 * len(s)) - 1))]


def trailer(cache: Path, seconds: float) -> Path:
    from builders import videos

    video = cache / f"trailer_{int(seconds)}s_1280x720_24fps.mp4"
    if not video.is_file():
        tmp = video.with_suffix(".tmp.mp4")
        videos.streamed_shots_video(tmp, seconds=seconds, size=(1280, 720), fps=24, mean_shot=2.5)
        os.replace(tmp, video)
    return video


def checkpoint(cache: Path) -> Path:
    from predict_latency import make_checkpoint

    ckpt = cache / "serve_load" / "run" / "best.ckpt"
    if not ckpt.is_file():
        shutil.rmtree(cache / "serve_load", ignore_errors=True)
        (cache / "serve_load").mkdir(parents=True)
        made = make_checkpoint(cache / "serve_load")
        assert made == ckpt, made
    return ckpt


def pair_checkpoint(cache: Path) -> Path:
    """The ShuffleNet pair: shufflenet (2D) + shufflenet3d late fusion, random backbone weights, trained for one
    epoch on `divita extract` stores of three tiny videos (its compute is what matters here, not its accuracy)."""
    import pandas as pd

    from builders import videos
    from divita.cli import main as divita
    from divita.genres import GENRES

    work = cache / "serve_load_pair"
    ckpt = work / "run" / "best.ckpt"
    if ckpt.is_file():
        return ckpt
    shutil.rmtree(work, ignore_errors=True)
    rows = []
    for i in range(3):
        videos.shots_video(work / "tiny" / f"v{i}.mp4", shots=(24, 30), size=(96, 64), seed=i)
        rows.append({"mid": f"v{i}", **{g: int(g == GENRES[i]) for g in GENRES}, "split0": i, "split1": i, "split2": i})
    pd.DataFrame(rows).to_csv(work / "labels.csv", index=False)
    data = work / "data"
    extract = ["extract", str(work / "tiny"), "--backbone", "shufflenet,shufflenet3d", "--weights", "random"]
    if divita([*extract, "--out", str(data), "--labels", str(work / "labels.csv"), "--no-progress"]) != 0:
        raise SystemExit("serve_load: extracting the ShuffleNet pair's stores failed")
    stores = {p.name.split("_")[1]: p.name for p in data.iterdir() if p.suffix == ".zarr"}
    train = ["train", "--data-dir", str(data), "--ix", stores["i"], "--vx", stores["k"], "--split", "0"]
    if divita([*train, "--out", str(work / "run"), "--max-epochs", "1", "--no-progress"]) != 0:
        raise SystemExit("serve_load: training the ShuffleNet pair's checkpoint failed")
    return ckpt


def one_at_a_time(ckpt: Path, video: Path, work: Path, repeats: int, deadline: float) -> list[dict]:
    """``repeats`` uploads one after another, each once the previous result is in, after one warm-up job, on a
    fresh 1-worker (process) server; per upload: time to result, and predict's own time inside the job."""
    from divita.serving.client import ServeClient

    proc, url = start_server(ckpt, work, 1)
    out = []
    try:
        c = ServeClient(url, timeout=120)
        c.wait(c.submit(video), poll_s=0.05, timeout_s=max(1.0, deadline - time.monotonic()))  # warm-up
        for _ in range(repeats):
            t0 = time.perf_counter()
            job = c.wait(c.submit(video), poll_s=0.05, timeout_s=max(1.0, deadline - time.monotonic()))
            t = time.perf_counter() - t0
            if job["status"] != "done":
                raise SystemExit(f"serve_load: a job ended {job['status']}: {job.get('error')}")
            timings = job["result"]["timings"]
            out.append({"to_result": t, "predict_s": timings.get("extract_s", 0.0) + timings.get("head_s", 0.0)})
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
    return out


def direct(clf, video: Path, n: int, deadline: float) -> list[float]:
    """Seconds of each of ``n`` GenreClassifier.predict calls on the trailer."""
    times = []
    for _ in range(n):
        if time.monotonic() > deadline:
            raise SystemExit("serve_load: --max-time reached during the direct run")
        t = time.perf_counter()
        clf.predict(video)
        times.append(time.perf_counter() - t)
    return times


def start_server(ckpt: Path, data_dir: Path, workers: int, *extra: str) -> tuple[subprocess.Popen, str]:
    from divita.serving.client import ServeClient

    cmd = [
        sys.executable,
        "-m",
        "divita",
        "serve",
        "--checkpoint",
        str(ckpt),
        "--host",
        HOST,
        "--port",
        "0",
        "--data-dir",
        str(data_dir),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        "--max-job-seconds",
        "3600",  # a fixed limit: no calibration at start
        *extra,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    m = re.search(r"on (http://127\.0\.0\.1:\d+) ", proc.stdout.readline())
    if not m:
        proc.kill()
        raise SystemExit(f"serve_load: the server did not start: {proc.stderr.read()[-2000:]}")
    url = m.group(1)
    for _ in range(1800):
        try:
            ServeClient(url, timeout=5).health()
            return proc, url
        except Exception:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("serve_load: the server did not answer /healthz within 60 s")


def load(url: str, video: Path, clients: int, deadline: float) -> list[dict]:
    """``clients`` threads upload at once and poll until done; per client: upload start, 202 time, result time."""
    from divita.serving.client import ServeClient

    barrier = threading.Barrier(clients)
    out: list[dict] = [{} for _ in range(clients)]

    def client(i: int) -> None:
        c = ServeClient(url, timeout=120)
        barrier.wait()
        t0 = time.perf_counter()
        job_id = c.submit(video, max_wait_s=max(1.0, deadline - time.monotonic()))
        t_accepted = time.perf_counter()
        while True:
            job = c.get(job_id)
            if job["status"] in ("done", "failed"):
                break
            if time.monotonic() > deadline:
                out[i] = {"error": "--max-time reached"}
                return
            time.sleep(0.2)
        timings = (job.get("result") or {}).get("timings", {})
        out[i] = {
            "start": t0,
            "accepted": t_accepted,
            "result": time.perf_counter(),
            "status": job["status"],
            "run_s": _seconds(job["started"], job["finished"]),
            "predict_s": timings.get("extract_s", 0.0) + timings.get("head_s", 0.0),
        }

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()) + 5)
    return out


def batch_through_server(ckpt: Path, video: Path, work: Path, clients: int, workers: int, deadline: float, *extra):
    """(seconds from the first upload to the last result, jobs' own predict seconds) of ``clients`` uploads
    at once, after one warm-up job, on a fresh server started with ``extra`` flags."""
    from divita.serving.client import ServeClient

    proc, url = start_server(ckpt, work, workers, *extra)
    try:
        warm = ServeClient(url, timeout=120)
        for _ in range(workers):
            warm.wait(warm.submit(video), poll_s=0.2, timeout_s=max(1.0, deadline - time.monotonic()))
        runs = load(url, video, clients, deadline)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
    bad = [r for r in runs if r.get("status") != "done"]
    if bad:
        raise SystemExit(f"serve_load: {len(bad)} of {len(runs)} clients got no result: {bad[:3]}")
    first = min(r["start"] for r in runs)
    return max(r["result"] for r in runs) - first, sum(r["predict_s"] for r in runs)


def compare(ckpt: Path, video: Path, cache: Path, clients: int, deadline: float) -> None:
    """Thread vs process workers (1 worker each, T P P T), then Ray with 1 and 2 actors."""
    batches: dict[str, list[tuple[float, float]]] = {"thread": [], "process": []}
    with tempfile.TemporaryDirectory(dir=cache) as work:
        for i, kind in enumerate(("thread", "process", "process", "thread")):
            batches[kind].append(
                batch_through_server(ckpt, video, Path(work) / f"{kind}{i}", clients, 1, deadline, "--isolation", kind)
            )
        ray_runs = {}
        for actors in (1, 2):
            ray_runs[actors] = batch_through_server(
                ckpt, video, Path(work) / f"ray{actors}", clients, actors, deadline, "--ray", "--cpus-per-worker", "1"
            )
    print(f"\nside by side, {clients} uploads at once, 1 worker (thread and process runs interleaved T P P T):")
    mean = {k: statistics.mean(b for b, _ in v) for k, v in batches.items()}
    inside = {k: statistics.mean(p for _, p in v) for k, v in batches.items()}
    for kind in ("thread", "process"):
        runs = ", ".join(f"{b:.2f}" for b, _ in batches[kind])
        print(
            f"  {kind:<8} batch {mean[kind]:.2f} s (runs {runs}); {clients / mean[kind]:.3f} jobs/s; "
            f"predict inside the jobs {inside[kind]:.2f} s (the batch over it: "
            f"{100 * (mean[kind] / inside[kind] - 1):+.1f} %)"
        )
    print(f"  process workers over thread workers: {100 * (mean['process'] / mean['thread'] - 1):+.1f} % (batch time)")
    for actors, (batch, predict_s) in ray_runs.items():
        print(
            f"  ray, {actors} actor{'s' if actors > 1 else ' '} batch {batch:.2f} s; {clients / batch:.3f} jobs/s; "
            f"predict inside the jobs {predict_s:.2f} s"
        )
    one, two = ray_runs[1][0], ray_runs[2][0]
    print(f"  ray: 2 actors vs 1: {one / two:.2f}x the throughput")


def _seconds(a: str, b: str) -> float:
    from datetime import datetime

    start, end = (datetime.fromisoformat(t.replace("Z", "+00:00")) for t in (a, b))
    return (end - start).total_seconds()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=4, help=f"clients uploading at once (1..{MAX_CLIENTS})")
    ap.add_argument("--seconds", type=float, default=30, help="trailer length")
    ap.add_argument("--workers", type=int, default=1, help="the server's --workers")
    ap.add_argument("--max-time", type=float, default=1800, help="stop after this many seconds in all")
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "divita-bench"))
    ap.add_argument("--compare", action="store_true", help="thread vs process workers, then Ray with 1 and 2 actors")
    ap.add_argument(
        "--one-at-a-time",
        action="store_true",
        help="one client, one upload at a time: time to result with the ShuffleNet pair checkpoint, 1 worker",
    )
    ap.add_argument("--repeats", type=int, default=5, help="uploads in --one-at-a-time (after a warm-up job)")
    args = ap.parse_args()
    if not 1 <= args.clients <= MAX_CLIENTS:
        raise SystemExit(f"serve_load: --clients must be in 1..{MAX_CLIENTS}")
    deadline = time.monotonic() + args.max_time

    import torch

    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    video = trailer(cache, args.seconds)
    if args.one_at_a_time:
        if not 1 <= args.repeats <= 100:
            raise SystemExit("serve_load: --repeats must be in 1..100")
        ckpt = pair_checkpoint(cache)
        print(
            f"trailer: {video.name} ({video.stat().st_size / 1e6:.1f} MB); checkpoint: shufflenet + shufflenet3d late "
            f"fusion (random backbone weights); {os.cpu_count()} cores, torch {torch.__version__}; one client at a "
            f"time, {args.repeats} uploads after a warm-up, 1 worker (process)"
        )
        with tempfile.TemporaryDirectory(dir=cache) as work:
            runs = one_at_a_time(ckpt, video, Path(work) / "serve", args.repeats, deadline)
        to_result = [r["to_result"] for r in runs]
        predict_s = [r["predict_s"] for r in runs]
        rest = [r["to_result"] - r["predict_s"] for r in runs]
        print(
            f"time to result, one client at a time: p50 {statistics.median(to_result):.2f} s "
            f"(fastest {min(to_result):.2f} s, slowest {max(to_result):.2f} s; runs "
            f"{', '.join(f'{t:.2f}' for t in to_result)})"
        )
        print(
            f"  GenreClassifier.predict inside the jobs: p50 {statistics.median(predict_s):.2f} s; the rest (upload, "
            f"probe, queue, polling): p50 {statistics.median(rest):.2f} s"
        )
        print(f"  load average at the end (1, 5, 15 min): {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
        return
    ckpt = checkpoint(cache)
    print(
        f"trailer: {video.name} ({video.stat().st_size / 1e6:.1f} MB); checkpoint: shufflenet + r2plus1d late fusion "
        f"(random backbone weights); {os.cpu_count()} cores, torch {torch.__version__}; {args.clients} clients, "
        f"{args.workers} worker(s)"
    )

    if args.compare:
        compare(ckpt, video, cache, args.clients, deadline)
        return
    from divita.inference.predict import GenreClassifier

    clf = GenreClassifier.from_checkpoint(ckpt)
    clf.predict(video)  # warm-up
    before = direct(clf, video, args.clients, deadline)

    with tempfile.TemporaryDirectory(dir=cache) as work:
        proc, url = start_server(ckpt, Path(work) / "serve", args.workers)
        try:
            from divita.serving.client import ServeClient

            warm = ServeClient(url, timeout=120)
            warm.wait(warm.submit(video), poll_s=0.2, timeout_s=max(1.0, deadline - time.monotonic()))
            runs = load(url, video, args.clients, deadline)
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    after = direct(clf, video, args.clients, deadline)  # the baseline spans the batch: a shared machine drifts
    alone = before + after
    direct_total = statistics.mean(alone) * args.clients
    print(
        f"direct: GenreClassifier.predict x{args.clients} before and after the server's batch: "
        f"{sum(before):.2f} s and {sum(after):.2f} s (per call mean {statistics.mean(alone):.2f} s, "
        f"min {min(alone):.2f} s)"
    )
    bad = [r for r in runs if r.get("status") != "done"]
    if bad:
        raise SystemExit(f"serve_load: {len(bad)} of {len(runs)} clients got no result: {bad[:3]}")

    first = min(r["start"] for r in runs)
    accept_span = max(r["accepted"] for r in runs) - first
    to_result = [r["result"] - r["start"] for r in runs]
    batch = max(r["result"] for r in runs) - first
    run_s = [r["run_s"] for r in runs]
    expected = direct_total / args.workers
    answer = statistics.median(r["accepted"] - r["start"] for r in runs)
    print(
        f"through the server: {args.clients} uploads accepted in {accept_span:.2f} s = "
        f"{args.clients / accept_span:.1f} accepted/s; 202 after p50 {answer:.3f} s"
    )
    print(
        f"  time to result: p50 {percentile(to_result, 50):.2f} s, p95 {percentile(to_result, 95):.2f} s, "
        f"last {batch:.2f} s"
    )
    print(
        f"  overhead over GenreClassifier directly: batch {batch:.2f} s vs N x the direct mean {expected:.2f} s "
        f"= {100 * (batch / expected - 1):+.1f} %"
    )
    inside = sum(r["predict_s"] for r in runs) / args.workers
    print(
        f"  overhead over the same predictions (GenreClassifier.predict's own time inside the jobs, "
        f"{inside:.2f} s): {100 * (batch / inside - 1):+.1f} %"
    )
    print(
        f"  in the jobs: mean job {statistics.mean(run_s):.2f} s vs direct "
        f"{statistics.mean(alone):.2f} s = {100 * (statistics.mean(run_s) / statistics.mean(alone) - 1):+.1f} %; "
        f"fastest job {min(run_s):.2f} s vs fastest direct {min(alone):.2f} s"
    )


if __name__ == "__main__":
    main()
