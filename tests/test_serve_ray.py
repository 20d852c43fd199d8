"""`divita serve --ray` on a local Ray instance limited to 2 CPUs, with two worker actors: results equal
`divita predict`'s, and a worker actor killed mid-job is replaced and its job retried to done."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from divita.cli import main
from genre_videos import genre_video
from test_serve import train_tiny_checkpoint, upload, wait_done, without_timings

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'divita[serve]'")
ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'divita[ray]'")

from fastapi.testclient import TestClient  # noqa: E402

from divita.serving.app import create_app  # noqa: E402
from divita.serving.service import ServeConfig, Service  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve_ray")
    return root, train_tiny_checkpoint(root)


def test_ray_workers_predict_what_divita_predict_does_and_survive_a_killed_actor(trained, tmp_path, capsys):
    root, ckpt = trained
    long_video = genre_video(tmp_path / "long_horror.mp4", "horror", seed=5, frames=24 * 12)
    started = not ray.is_initialized()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=200 * 1024 * 1024)
    try:
        config = ServeConfig(
            checkpoint=str(ckpt), data_dir=str(tmp_path / "s"), isolation="ray", workers=0, max_job_seconds=300
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
            assert job["result"]["num_frames"] == 288 and next(iter(job["result"]["genres"])) == "horror"
            deadline = time.monotonic() + 60  # the other actor may have run the retry before this one is back
            while service.pool.restarts < 1:
                assert time.monotonic() < deadline, "the killed actor was not replaced"
                time.sleep(0.1)
            assert service.pool.restarts == 1 and runner.pid != killed and runner.pid is not None
            again = wait_done(c, upload(c, root / "new" / "new_comedy.mp4").json()["id"], timeout=120)
            assert again["status"] == "done" and c.get("/healthz").json()["worker_restarts"] == 1
    finally:
        if started:
            ray.shutdown()
