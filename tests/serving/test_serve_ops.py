"""`divita serve` bounded and operated: video limits by metadata (422) and while decoding (the job fails),
worker processes killed mid-job, over their time limit and over their memory cap, uploads removed after their
retention, the data directory's size limit (507), /metrics in Prometheus text and the one-line JSON logs; `--ray`
on a local Ray instance limited to 2 CPUs with two worker actors, one killed mid-job, one over its memory cap, and
on a local multi-node cluster that loses the node of its actor mid-job (one checkpoint trained for them all)."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import struct
import time
from pathlib import Path

import av
import numpy as np
import pytest
from test_serve import assert_refused, make_service, train_tiny_checkpoint, upload, wait_done, without_timings

from builders.genre_videos import genre_video
from builders.videos import write_video
from divita.cli import main
from divita.errors import DivitaError

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'divita[serve]'")

from fastapi.testclient import TestClient  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from divita.serving.app import create_app  # noqa: E402
from divita.serving.runners import write_calibration_clip  # noqa: E402
from divita.serving.service import ServeConfig, Service  # noqa: E402
from divita.video import VideoLimits  # noqa: E402


# -- videos that lie or are too big, made in well under a second each (the 8192x8192 one in ~3 s) ---------------
def ten_hour_video(path: Path) -> Path:
    """3 frames of 64x64, 5 h apart: a 10-hour video in 2 KB."""
    frames = (np.full((64, 64, 3), 40 * i, np.uint8) for i in range(3))
    return write_video(path, frames, pts=[0.0, 18000.0, 35999.0])


def huge_frame_video(path: Path) -> Path:
    """One black 8192x8192 frame (H.264, ~200 KB)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=1)
        stream.width = stream.height = 8192
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast"}
        frame = av.VideoFrame(8192, 8192, "yuv420p")
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        frame.pts = 0
        out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


def claim_duration(path: Path, seconds: float) -> Path:
    """Rewrite an MP4's declared durations (mvhd, tkhd, mdhd; version 0 boxes) to ``seconds``: its samples stay."""
    data = bytearray(path.read_bytes())
    movie = data.find(b"mvhd")
    movie_scale = struct.unpack(">I", data[movie + 16 : movie + 20])[0]
    for box in (b"mvhd", b"tkhd", b"mdhd"):
        i = data.find(box)
        while i >= 0:
            assert data[i + 4] == 0, "version 1 boxes are not rewritten here"
            if box == b"tkhd":
                scale, at = movie_scale, i + 24  # tkhd: version/flags, ctime, mtime, track id, reserved, duration
            else:
                scale, at = struct.unpack(">I", data[i + 16 : i + 20])[0], i + 20
            data[at : at + 4] = struct.pack(">I", int(seconds * scale))
            i = data.find(box, i + 4)
    path.write_bytes(bytes(data))
    return path


def lying_video(path: Path) -> Path:
    """10 minutes of 64x64 at 1 fps whose container claims 10 s."""
    frames = (np.full((64, 64, 3), (7 * i) % 256, np.uint8) for i in range(600))
    return claim_duration(write_video(path, frames, fps=1), 10.0)


def metrics_of(client) -> dict:
    """``/metrics`` parsed by prometheus_client's own parser: {(sample name, labels as tuple): value}."""
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve_ops")
    return root, train_tiny_checkpoint(root)


@pytest.fixture(scope="module")
def classifier(trained):
    from divita.inference.predict import GenreClassifier

    return GenreClassifier.from_checkpoint(trained[1])


# -- limits -------------------------------------------------------------------------------------------------
def test_over_the_limits_by_metadata_is_422_and_counted(trained, classifier, tmp_path, caplog):
    ten_hours, huge = ten_hour_video(tmp_path / "ten_hours.mp4"), huge_frame_video(tmp_path / "huge.mp4")
    assert ten_hours.stat().st_size < 10_000 and huge.stat().st_size < 1_000_000
    caplog.set_level(logging.INFO, logger="divita.serve")
    with TestClient(create_app(make_service(trained, classifier, tmp_path / "s"))) as c:  # the default limits
        assert_refused(upload(c, ten_hours), 422, "ten_hours.mp4: 10 h of video", "limit of 15 min (--max-duration)")
        assert_refused(upload(c, huge), 422, "huge.mp4: frames of 8192x8192", "limit of 3840x2160 (--max-pixels)")
        assert c.get("/v1/predictions").json()["total"] == 0
        assert [p.name for p in (tmp_path / "s" / "uploads").iterdir()] == [".partial"]
        job = wait_done(c, upload(c, trained[0] / "new" / "new_action.mp4").json()["id"])
        assert job["status"] == "done"
        m = metrics_of(c)
        health = c.get("/healthz").json()
    assert m[("divita_refusals_total", (("reason", "over_limit"),))] == 2
    assert m[("divita_jobs", (("status", "done"),))] == 1 and m[("divita_queue_length", ())] == 0
    assert m[("divita_job_seconds_count", ())] == 1 and m[("divita_time_to_result_seconds_count", ())] == 1
    assert m[("divita_worker_restarts_total", ())] == 0
    assert health["max_duration_s"] == 900 and health["max_pixels"] == 3840 * 2160 and health["isolation"] == "thread"

    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name.startswith("divita.serve.")]
    requests = [x for x in lines if x["event"] == "request"]
    assert {"ts", "method", "path", "status", "ms"} <= set(requests[0])
    assert [x["status"] for x in requests if x["path"] == "/v1/predictions" and x["method"] == "POST"] == [
        422,
        422,
        202,
    ]
    events = [x["event"] for x in lines if x.get("id") == job["id"]]
    assert events == ["queued", "running", "done"]


def test_a_lying_container_is_stopped_while_decoding(trained, classifier, tmp_path, capsys):
    liar = lying_video(tmp_path / "liar.mp4")
    from divita.video import probe_video

    assert probe_video(liar).duration == 10.0
    limits = VideoLimits(max_duration=12.0)
    with TestClient(create_app(make_service(trained, classifier, tmp_path / "s", limits=limits))) as c:
        r = upload(c, liar)
        assert r.status_code == 202, r.text  # 10 s by its metadata: accepted
        job = wait_done(c, r.json()["id"])
    assert job["status"] == "failed" and job["attempts"] == 1
    assert job["error"].startswith("decoding stopped at 13 s: over the limit of 12 s (--max-duration")
    assert "declares 10 s" in job["error"]

    # the same limit on `divita predict` (none by default there)
    ckpt = str(trained[1])
    code = main(["predict", str(liar), "--checkpoint", ckpt, "--max-duration", "12", "--no-progress", "--json"])
    err = capsys.readouterr().err
    assert code == 1 and "liar.mp4: decoding stopped at 13 s: over the limit of 12 s (--max-duration" in err
    code = main(["predict", str(ten_hour_video(tmp_path / "t.mp4")), "--checkpoint", ckpt, "--max-duration", "15m"])
    assert code == 1 and "10 h of video is over the limit of 15 min" in capsys.readouterr().err
    assert main(["predict", str(liar), "--checkpoint", ckpt, "--max-pixels", "64x6x"]) == 2
    assert "--max-pixels: expected WIDTHxHEIGHT" in capsys.readouterr().err


# -- worker processes ----------------------------------------------------------------------------------------
def test_a_killed_worker_process_is_replaced_and_its_job_retried(trained, tmp_path):
    root, ckpt = trained
    long_video = genre_video(tmp_path / "long_horror.mp4", "horror", seed=5, frames=24 * 8)  # seconds of work
    config = ServeConfig(checkpoint=str(ckpt), data_dir=str(tmp_path / "s"), max_job_seconds=300)
    service = Service.open(config)
    with TestClient(create_app(service)) as c:
        runner = service.pool.runners[0]
        first_pid = runner.pid
        assert first_pid != os.getpid() and c.get("/healthz").json()["isolation"] == "process"
        job_id = upload(c, long_video).json()["id"]
        deadline = time.monotonic() + 60
        while c.get(f"/v1/predictions/{job_id}").json()["status"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.5)
        os.kill(first_pid, signal.SIGKILL)  # as a native crash or the OOM killer would
        assert c.get("/healthz").json()["status"] == "ok"  # the service keeps answering
        job = wait_done(c, job_id, timeout=180)
        assert job["status"] == "done" and job["attempts"] == 2, job
        assert job["result"]["num_frames"] == 192 and next(iter(job["result"]["genres"])) == "horror"
        assert runner.pid != first_pid and service.pool.restarts == 1
        assert metrics_of(c)[("divita_worker_restarts_total", ())] == 1

        # over its time limit: the worker is killed (and started again), the job fails, not retried
        service.config.max_job_seconds = 0.5
        slow = wait_done(c, upload(c, long_video).json()["id"], timeout=120)
        assert slow["status"] == "failed" and slow["attempts"] == 1
        assert (
            slow["error"].startswith("stopped after ")
            and "over the time limit of 0.5 s (--max-job-seconds)" in slow["error"]
        )


# -- retention and the data directory's size ------------------------------------------------------------------
def test_uploads_past_their_retention_are_removed_and_recorded(trained, classifier, tmp_path):
    data = tmp_path / "s"
    service = make_service(trained, classifier, data, keep_uploads_s=4.0, sweep_s=0.2)
    with TestClient(create_app(service)) as c:
        job = wait_done(c, upload(c, trained[0] / "new" / "new_horror.mp4").json()["id"])
        assert job["status"] == "done" and job["upload_removed"] is None
        assert c.get(f"/v1/predictions/{job['id']}/timeline.png").status_code == 200  # drawn while it is there
        upload_file = data / "uploads" / f"{job['id']}.mp4"
        deadline = time.monotonic() + 20
        while upload_file.exists():
            assert time.monotonic() < deadline, "the upload was not removed"
            time.sleep(0.1)
        time.sleep(0.2)
        later = c.get(f"/v1/predictions/{job['id']}").json()
        assert later["upload_removed"] is not None and later["upload_removed"] >= later["finished"]
        assert later["result"] == job["result"]  # results are kept
        assert (data / "results" / f"{job['id']}.png").is_file()
        assert metrics_of(c)[("divita_uploads_removed_total", ())] == 1


def test_a_full_data_directory_refuses_uploads_with_507(trained, classifier, tmp_path):
    video = trained[0] / "new" / "new_horror.mp4"
    service = make_service(trained, classifier, tmp_path / "s", max_data_mb=0.08)  # 80 KiB
    try:
        c = TestClient(create_app(service))  # no lifespan: jobs stay queued, uploads stay
        accepted = 0
        while (r := upload(c, video)).status_code == 202:
            accepted += 1
            assert accepted < 50
        assert accepted >= 1
        assert_refused(r, 507, "data directory is full", "--max-data-mb")
        uploads = sum(p.stat().st_size for p in (tmp_path / "s" / "uploads").iterdir() if p.is_file())
        assert uploads == accepted * video.stat().st_size <= 0.08 * 1024 * 1024
        assert list((tmp_path / "s" / "uploads" / ".partial").iterdir()) == []
        assert metrics_of(c)[("divita_refusals_total", (("reason", "data_dir_full"),))] == 1
    finally:
        service.close()


MEMORY_CAP_MB = 1400  # above a loaded worker (~0.8 GB) running a small job (~1.05 GB), below a long job's need
RAY_MEMORY_CAP_MB = 1600  # the same for a Ray actor (Ray's own threads and buffers in it)


def test_a_worker_over_its_memory_cap_is_killed_its_job_fails_and_the_next_runs(trained, tmp_path):
    """--worker-memory-mb on a real job: a 40-s 640x360 video (whose extraction holds ~2 GB at its peak) in a
    worker capped at 1400 MiB of resident memory: the worker is killed, the job fails naming the cap (not
    retried), the service keeps answering, and the next (small) job runs on a worker started again."""
    from divita.serving.runners import resident_mb

    root, ckpt = trained
    greedy = write_calibration_clip(tmp_path / "long_360p.mp4", seconds=40, size=(640, 360))
    config = ServeConfig(
        checkpoint=str(ckpt), data_dir=str(tmp_path / "s"), max_job_seconds=300, worker_memory_mb=MEMORY_CAP_MB
    )
    service = Service.open(config)
    with TestClient(create_app(service)) as c:
        runner = service.pool.runners[0]
        first_pid = runner.pid
        idle = resident_mb(first_pid)
        assert idle is not None and idle < MEMORY_CAP_MB - 400, f"a loaded worker takes {idle:.0f} MiB"
        job_id = upload(c, greedy).json()["id"]
        deadline = time.monotonic() + 60
        while c.get(f"/v1/predictions/{job_id}").json()["status"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        peak = 0.0
        while (job := c.get(f"/v1/predictions/{job_id}").json())["status"] == "running":
            assert c.get("/healthz").json()["status"] == "ok"  # the service keeps answering
            peak = max(peak, resident_mb(first_pid) or 0.0)
            assert time.monotonic() < deadline + 120
            time.sleep(0.05)
        assert job["status"] == "failed" and job["attempts"] == 1 and job["result"] is None, job
        match = re.fullmatch(
            rf"the worker exceeded --worker-memory-mb {MEMORY_CAP_MB} \((\d+) MiB resident\) and was stopped",
            job["error"],
        )
        assert match and int(match[1]) > MEMORY_CAP_MB, job["error"]
        assert peak > idle + 200  # it was growing when watched from here too
        assert resident_mb(first_pid) is None  # killed

        small = wait_done(c, upload(c, root / "new" / "new_comedy.mp4").json()["id"], timeout=180)
        assert small["status"] == "done" and small["attempts"] == 1, small
        assert next(iter(small["result"]["genres"])) == "comedy"
        assert runner.pid not in (None, first_pid) and service.pool.restarts == 1
        assert metrics_of(c)[("divita_worker_restarts_total", ())] == 1
        assert c.get("/v1/predictions").json()["total"] == 2


def test_a_memory_cap_below_a_loaded_worker_is_refused_at_start(trained, tmp_path):
    with pytest.raises(DivitaError, match=r"a loaded worker already takes \d+ MiB, over --worker-memory-mb 300: "):
        Service.open(ServeConfig(checkpoint=str(trained[1]), data_dir=str(tmp_path / "s"), worker_memory_mb=300))


def test_failed_allocations_are_reasons_that_say_so():
    from divita.serving.runners import failure_reason

    assert failure_reason(MemoryError()) == "the worker ran out of memory (MemoryError)"
    reason = failure_reason(RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate"))
    assert reason.startswith("the worker ran out of memory (RuntimeError: DefaultCPUAllocator: not enough memory")
    assert failure_reason(ValueError("a bad frame")) == "ValueError: a bad frame"
    reason = failure_reason(OSError(12, "Cannot allocate memory"))
    assert reason == "the worker ran out of memory (OSError: [Errno 12] Cannot allocate memory)"


# -- beyond one machine ------------------------------------------------------------------------------------
@pytest.mark.ray
@pytest.mark.timeout(300)
def test_ray_workers_predict_what_divita_predict_does_and_survive_a_killed_actor(trained, tmp_path, capsys):
    root, ckpt = trained
    long_video = genre_video(tmp_path / "long_horror.mp4", "horror", seed=5, frames=24 * 8)
    ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'divita[ray]'")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=200 * 1024 * 1024)
    try:
        config = ServeConfig(
            checkpoint=str(ckpt),
            data_dir=str(tmp_path / "s"),
            isolation="ray",
            workers=0,
            max_job_seconds=300,
            worker_memory_mb=RAY_MEMORY_CAP_MB,
        )
        service = Service.open(config)  # on the session started here: one actor per CPU
        with TestClient(create_app(service)) as c:
            health = c.get("/healthz").json()
            assert health["isolation"] == "ray" and health["workers"] == 2
            assert health["backbones"] == {"image": "efficientnet_lite0"} and set(health["metrics"]) == {"val", "tst"}
            pids = {r.pid for r in service.pool.runners}
            assert len(pids) == 2 and os.getpid() not in pids

            video = root / "new" / "new_action.mp4"
            job = wait_done(c, upload(c, video).json()["id"])
            assert job["status"] == "done", job
            assert main(["predict", str(video), "--checkpoint", str(ckpt), "--json", "--no-progress"]) == 0
            local = json.loads(capsys.readouterr().out)
            assert without_timings(job["result"]) == without_timings(local)
            assert job["result"]["video"] == "new_action.mp4"

            job_id = upload(c, long_video).json()["id"]
            deadline = time.monotonic() + 60
            while not service.pool.running:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            time.sleep(0.5)
            name, running = next(iter(service.pool.running.items()))
            assert running == job_id
            runner = service.pool.runners[int(name.rsplit("-", 1)[1])]
            killed = runner.pid
            os.kill(killed, signal.SIGKILL)
            job = wait_done(c, job_id, timeout=120)
            assert job["status"] == "done" and job["attempts"] == 2, job
            assert job["result"]["num_frames"] == 192 and next(iter(job["result"]["genres"])) == "horror"
            deadline = time.monotonic() + 60  # the other actor may have run the retry before this one is back
            while service.pool.restarts < 1:
                assert time.monotonic() < deadline, "the killed actor was not replaced"
                time.sleep(0.1)
            assert service.pool.restarts == 1 and runner.pid != killed and runner.pid is not None
            again = wait_done(c, upload(c, root / "new" / "new_comedy.mp4").json()["id"], timeout=120)
            assert again["status"] == "done" and c.get("/healthz").json()["worker_restarts"] == 1

            # an actor over --worker-memory-mb is killed (and created again); its job fails naming the cap
            greedy = write_calibration_clip(tmp_path / "long_360p.mp4", seconds=40, size=(640, 360))
            job = wait_done(c, upload(c, greedy).json()["id"], timeout=180)
            assert job["status"] == "failed" and job["attempts"] == 1, job
            assert job["error"].startswith(f"the worker exceeded --worker-memory-mb {RAY_MEMORY_CAP_MB} ("), job
            deadline = time.monotonic() + 120
            while service.pool.restarts < 2:
                assert time.monotonic() < deadline, "the actor over its memory cap was not replaced"
                time.sleep(0.1)
            last = wait_done(c, upload(c, root / "new" / "new_action.mp4").json()["id"], timeout=120)
            assert last["status"] == "done" and next(iter(last["result"]["genres"])) == "action"
    finally:
        if started:
            ray.shutdown()


@pytest.mark.ray
@pytest.mark.timeout(300)
def test_a_lost_ray_node_s_job_is_queued_again_and_ends_done_on_a_surviving_node(trained, tmp_path):
    """A two-node local cluster (ray.cluster_utils): the head hosts no workers, the one actor is on a second node;
    a third node joins; the actor's node is killed mid-job (every process of it, no goodbye): the job goes back
    to the queue and ends done on a new actor the service creates on the surviving node."""
    ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'divita[ray]'")
    from ray.cluster_utils import Cluster

    assert not ray.is_initialized()
    root, ckpt = trained
    long_video = genre_video(tmp_path / "long_horror.mp4", "horror", seed=5, frames=24 * 8)
    mb = 1024 * 1024
    fast_health_checks = {"health_check_period_ms": 500, "health_check_timeout_ms": 1000}
    head = {"num_cpus": 0, "include_dashboard": False, "object_store_memory": 100 * mb}
    cluster = Cluster(initialize_head=True, head_node_args={**head, "_system_config": fast_health_checks})
    try:
        doomed = cluster.add_node(num_cpus=1, object_store_memory=80 * mb)
        ray.init(address=cluster.address, log_to_driver=False)
        config = ServeConfig(
            checkpoint=str(ckpt),
            data_dir=str(tmp_path / "s"),
            isolation="ray",
            ray_address=cluster.address,
            workers=1,
            max_job_seconds=300,
        )
        service = Service.open(config)
        with TestClient(create_app(service)) as c:
            runner = service.pool.runners[0]
            assert runner.node_id == doomed.node_id  # the only node with a CPU
            survivor = cluster.add_node(num_cpus=1, object_store_memory=80 * mb)
            job_id = upload(c, long_video).json()["id"]
            deadline = time.monotonic() + 60
            while c.get(f"/v1/predictions/{job_id}").json()["status"] != "running":
                assert time.monotonic() < deadline
                time.sleep(0.05)
            time.sleep(0.5)
            killed_pid = runner.pid
            cluster.remove_node(doomed, allow_graceful=False)  # SIGKILL: its raylet, its workers, the actor
            assert c.get("/healthz").json()["status"] == "ok"
            job = wait_done(c, job_id, timeout=120)
            assert job["status"] == "done" and job["attempts"] == 2, job
            assert job["result"]["num_frames"] == 192 and next(iter(job["result"]["genres"])) == "horror"
            assert runner.node_id == survivor.node_id and runner.pid != killed_pid
            assert c.get("/healthz").json()["worker_restarts"] == 1
        alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
        assert doomed.node_id not in alive and survivor.node_id in alive
    finally:
        ray.shutdown()
        cluster.shutdown()
