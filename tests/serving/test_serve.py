"""`divita serve`: the HTTP API against a small checkpoint trained here on generated videos (as
tests/test_predict.py does, smaller), every refusal, a kill -9 with a queued and a running job, concurrent
uploads, and `divita predict --server`."""

from __future__ import annotations

import json
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from builders.genre_videos import LOOKS, genre_video, train_genre_checkpoint
from builders.videos import write_audio_only, write_truncated, write_video
from divita.cli import main

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'divita[serve]'")

from fastapi.testclient import TestClient  # noqa: E402

from divita.serving.app import create_app  # noqa: E402
from divita.serving.client import ServeClient  # noqa: E402
from divita.serving.service import ServeConfig, Service  # noqa: E402


def train_tiny_checkpoint(root: Path) -> Path:
    """9 generated videos, 3 genres x (train, val, test), and a checkpoint trained on them; also writes
    root/new/new_<genre>.mp4, held out. Returns best.ckpt."""
    return train_genre_checkpoint(root, (0, 1, 2), lambda g, k, mid: 100 * k + len(g), max_epochs=12, batch_size=4)


@contextmanager
def live_server(app):
    """Serve ``app`` with uvicorn on a free loopback port in a thread; yields its base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def wait_done(client, job_id: str, timeout: float = 120) -> dict:
    """Poll a job (TestClient or ServeClient) until it is done or failed."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(job_id) if isinstance(client, ServeClient) else client.get(f"/v1/predictions/{job_id}").json()
        if job["status"] in ("done", "failed"):
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job['status']}"
        time.sleep(0.1)


def upload(client, path: Path, name: str | None = None, token: str | None = None):
    with open(path, "rb") as f:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return client.post("/v1/predictions", files={"file": (name or path.name, f, "video/mp4")}, headers=headers)


def without_timings(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in ("timings", "video")}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    return root, train_tiny_checkpoint(root)


@pytest.fixture(scope="module")
def classifier(trained):
    from divita.inference.predict import GenreClassifier

    return GenreClassifier.from_checkpoint(trained[1])


def make_service(trained, classifier, data_dir: Path, **kw) -> Service:
    return Service.open(ServeConfig(checkpoint=str(trained[1]), data_dir=str(data_dir), **kw), classifiers=[classifier])


@pytest.fixture
def api(trained, classifier, tmp_path):
    """A TestClient on a fresh data directory, its worker running."""
    with TestClient(create_app(make_service(trained, classifier, tmp_path / "serve"))) as client:
        yield client


# -- results ------------------------------------------------------------------------------------------------
def test_result_equals_divita_predict_json(trained, api, capsys, tmp_path):
    root, ckpt = trained
    video = root / "new" / "new_action.mp4"
    r = upload(api, video)
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "queued" and len(body["id"]) == 32
    assert r.headers["location"] == f"/v1/predictions/{body['id']}"
    job = wait_done(api, body["id"])
    assert job["status"] == "done", job
    assert job["error"] is None and job["filename"] == "new_action.mp4" and job["attempts"] == 1
    assert job["created"] <= job["started"] <= job["finished"] and job["finished"].endswith("Z")

    assert main(["predict", str(video), "--checkpoint", str(ckpt), "--json", "--no-progress"]) == 0
    local = json.loads(capsys.readouterr().out)
    assert without_timings(job["result"]) == without_timings(local)
    assert set(job["result"]["timings"]) == set(local["timings"])
    assert job["result"]["video"] == "new_action.mp4"  # the client's name, not the server's upload path
    assert next(iter(job["result"]["genres"])) == "action"

    drawn = tmp_path / "serve" / "results" / f"{body['id']}.png"
    assert not drawn.exists()  # drawn on its first request, not in the job
    png = api.get(f"/v1/predictions/{body['id']}/timeline.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content[:8] == b"\x89PNG\r\n\x1a\n" and len(png.content) > 10_000
    assert drawn.read_bytes() == png.content == api.get(f"/v1/predictions/{body['id']}/timeline.png").content

    listed = api.get("/v1/predictions").json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == body["id"]
    assert listed["items"][0]["predicted"] == job["result"]["predicted"] and "result" not in listed["items"][0]

    health = api.get("/healthz").json()
    assert health["status"] == "ok" and health["backbones"] == {"image": "efficientnet_lite0"}
    assert set(health["metrics"]) == {"val", "tst"} and set(health["metrics"]["tst"]) == {"uap", "map", "wap", "sap"}
    assert health["queue_length"] == 0 and health["jobs"]["done"] == 1 and health["workers"] == 1


def test_list_pages_and_delete_removes_files(trained, api, tmp_path):
    root, _ = trained
    ids = [upload(api, root / "new" / f"new_{g}.mp4").json()["id"] for g in LOOKS]
    for i in ids:
        assert wait_done(api, i)["status"] == "done"
    data = tmp_path / "serve"
    first = api.get("/v1/predictions", params={"limit": 2}).json()
    second = api.get("/v1/predictions", params={"limit": 2, "offset": 2}).json()
    assert [j["id"] for j in first["items"] + second["items"]] == ids[::-1] and first["total"] == 3
    assert api.get("/v1/predictions", params={"limit": 0}).status_code == 422

    gone = ids[0]
    assert api.get(f"/v1/predictions/{gone}/timeline.png").status_code == 200
    assert (data / "uploads" / f"{gone}.mp4").is_file() and (data / "results" / f"{gone}.png").is_file()
    r = api.delete(f"/v1/predictions/{gone}")
    assert r.status_code == 200 and r.json() == {"id": gone, "status": "deleted"}
    assert not (data / "uploads" / f"{gone}.mp4").exists() and not (data / "results" / f"{gone}.png").exists()
    for path in (f"/v1/predictions/{gone}", f"/v1/predictions/{gone}/timeline.png"):
        r = api.get(path)
        assert r.status_code == 404 and "unknown prediction id" in r.json()["error"]
    assert api.delete(f"/v1/predictions/{gone}").status_code == 404
    assert api.get("/v1/predictions/../../etc/passwd").status_code == 404
    assert api.get("/v1/predictions").json()["total"] == 2


def test_bad_uploads_fail_and_the_service_goes_on(trained, api, tmp_path):
    """A file that probes fine but does not decode fails with its reason; the next job is done; the client's
    file name is a label, never a path."""
    root, _ = trained
    frames = (np.full((64, 96, 3), 40 + i, np.uint8) for i in range(72))
    whole = write_video(tmp_path / "whole.mp4", frames, fps=24, faststart=True)  # header first: still probes when cut
    bad = write_truncated(tmp_path / "cut.mp4", whole, keep=0.3)
    r = upload(api, bad, name="../../../../tmp/evil name.mp4")
    assert r.status_code == 202, r.text
    good = upload(api, root / "new" / "new_comedy.mp4").json()["id"]
    job = wait_done(api, r.json()["id"])
    assert job["status"] == "failed" and job["result"] is None
    assert job["error"] and "\n" not in job["error"] and str(tmp_path) not in job["error"]
    assert job["filename"] == "evil name.mp4"
    stored = sorted(p.name for p in (tmp_path / "serve" / "uploads").iterdir())
    assert stored == sorted([".partial", f"{job['id']}.mp4", f"{good}.mp4"])
    assert not Path("/tmp/evil name.mp4").exists()
    assert wait_done(api, good)["status"] == "done"
    assert api.get(f"/v1/predictions/{job['id']}/timeline.png").status_code == 409


# -- refusals -----------------------------------------------------------------------------------------------
def assert_refused(r, status: int, *words: str):
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and "\n" not in body["error"] and body["error"], body
    for w in words:
        assert w in body["error"], body


def test_media_refusals_are_422(trained, api, tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "notes.mp4").write_text("not a video at all\n" * 50)
    audio = write_audio_only(tmp_path / "song.m4a")
    assert_refused(upload(api, tmp_path / "empty.mp4"), 422, "empty.mp4", "empty")
    assert_refused(upload(api, tmp_path / "notes.mp4"), 422, "notes.mp4", "not a readable media file")
    assert_refused(upload(api, audio), 422, "song.m4a", "no video stream")
    assert_refused(api.post("/v1/predictions", files={"video": ("a.mp4", b"x" * 10)}), 422, "no field `file`")
    raw = api.post("/v1/predictions", content=b"raw bytes", headers={"content-type": "video/mp4"})
    assert_refused(raw, 422, "multipart")
    assert api.get("/v1/predictions").json()["total"] == 0
    assert list((tmp_path / "serve" / "uploads" / ".partial").iterdir()) == []
    assert [p.name for p in (tmp_path / "serve" / "uploads").iterdir()] == [".partial"]


def test_over_the_size_limit_is_413(trained, classifier, tmp_path):
    rng = np.random.default_rng(0)
    noise = write_video(tmp_path / "noise.mp4", (rng.integers(0, 256, (64, 96, 3), np.uint8) for _ in range(24)))
    limit_mb = 20 / 1024  # 20 KiB
    assert noise.stat().st_size > 40 * 1024
    with TestClient(create_app(make_service(trained, classifier, tmp_path / "s", max_upload_mb=limit_mb))) as c:
        assert_refused(upload(c, noise), 413, "upload of", "over the limit of 20480 bytes")  # by its Content-Length
        boundary = "b0undary"
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="noise.mp4"\r\n\r\n'.encode()
        chunks = [head, noise.read_bytes(), f"\r\n--{boundary}--\r\n".encode()]
        r = c.post(
            "/v1/predictions",
            content=iter(chunks),  # no Content-Length: refused while reading
            headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        )
        assert "content-length" not in r.request.headers
        assert_refused(r, 413, "noise.mp4: larger than the limit of 20480 bytes")
        assert c.get("/v1/predictions").json()["total"] == 0
        assert list((tmp_path / "s" / "uploads" / ".partial").iterdir()) == []
        small = trained[0] / "new" / "new_horror.mp4"
        assert small.stat().st_size < 20 * 1024
        assert upload(c, small).status_code == 202  # under the limit: accepted


def test_no_timeline_server_answers_404_for_pictures(trained, classifier, tmp_path):
    with TestClient(create_app(make_service(trained, classifier, tmp_path / "s", timeline=False))) as c:
        job = wait_done(c, upload(c, trained[0] / "new" / "new_horror.mp4").json()["id"])
        assert job["status"] == "done"
        assert_refused(c.get(f"/v1/predictions/{job['id']}/timeline.png"), 404, "--no-timeline")


def test_a_full_disk_is_507_and_leaves_no_partial_upload(trained, classifier, tmp_path):
    import errno

    service = make_service(trained, classifier, tmp_path / "s")
    try:

        def full(*args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device")

        service.store.accept = full
        client = TestClient(create_app(service), raise_server_exceptions=False)
        assert_refused(upload(client, trained[0] / "new" / "new_horror.mp4"), 507, "No space left on device")
        assert list((tmp_path / "s" / "uploads" / ".partial").iterdir()) == []
        assert client.get("/healthz").json()["status"] == "ok"
    finally:
        service.close()


def read_reply(s: socket.socket, first: bytes = b"") -> bytes:
    """The rest of an HTTP reply on a connection the server closes after it (``Connection: close``)."""
    s.setblocking(True)
    s.settimeout(10)
    data = first
    while chunk := s.recv(65536):
        data += chunk
    return data


def test_413_stops_reading_at_the_limit(trained, classifier, tmp_path):
    """On a real server: a declared Content-Length over the limit is refused before the body; a chunked body
    is refused once the limit is passed, long before the client has sent it all."""
    with live_server(create_app(make_service(trained, classifier, tmp_path / "s", max_upload_mb=1))) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(
                b"POST /v1/predictions HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                b"Content-Length: 10000000000\r\n\r\n"
            )
            reply = read_reply(s).decode()
        assert reply.startswith("HTTP/1.1 413") and '"error"' in reply and "over the limit" in reply

        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(
                b"POST /v1/predictions HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n\r\n'
            s.sendall(b"%x\r\n%s\r\n" % (len(head), head))
            chunk = b"\0" * 65536
            sent, planned, reply = 0, 256 << 20, b""
            s.setblocking(False)
            while sent < planned and not reply:
                try:
                    s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    sent += len(chunk)
                except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                    time.sleep(0.01)
                try:
                    reply = s.recv(4096)
                except BlockingIOError:
                    pass
                except ConnectionResetError:
                    break
            try:
                reply = read_reply(s, reply)
            except ConnectionResetError:  # the server closed with our unread chunks in its buffer
                pass
        # the status line (the body may be lost to the reset; test_over_the_size_limit_is_413 checks its words)
        assert reply.startswith(b"HTTP/1.1 413"), reply[:300]
        assert sent < 64 << 20, f"the client could send {sent} bytes past a 1 MiB limit"
        assert list((tmp_path / "s" / "uploads" / ".partial").iterdir()) == []


def test_queue_full_is_503_with_retry_after_and_timeline_409(trained, classifier, tmp_path):
    """Without the lifespan the workers never start, so jobs stay queued."""
    service = make_service(trained, classifier, tmp_path / "s", max_queue=2)
    try:
        client = TestClient(create_app(service))
        video = trained[0] / "new" / "new_comedy.mp4"
        ids = [upload(client, video).json()["id"] for _ in range(2)]
        r = upload(client, video)
        assert_refused(r, 503, "queue is full")
        assert int(r.headers["retry-after"]) >= 1
        assert client.get("/healthz").json()["queue_length"] == 2
        assert_refused(client.get(f"/v1/predictions/{ids[0]}/timeline.png"), 409, "queued")
        assert client.delete(f"/v1/predictions/{ids[1]}").status_code == 200  # a queued job can go
        assert upload(client, video).status_code == 202
    finally:
        service.close()


def test_token(trained, classifier, tmp_path):
    with TestClient(create_app(make_service(trained, classifier, tmp_path / "s", token="s3cret"))) as c:
        video = trained[0] / "new" / "new_comedy.mp4"
        for path in ("/healthz", "/v1/predictions", "/v1/predictions/" + "0" * 32):
            assert_refused(c.get(path), 401, "token")
            assert_refused(c.get(path, headers={"Authorization": "Bearer wrong"}), 401, "token")
        r = upload(c, video)
        assert_refused(r, 401, "token")
        assert r.headers["www-authenticate"] == "Bearer"
        assert_refused(upload(c, video, token="s3cret-not"), 401)
        assert c.get("/healthz", headers={"Authorization": "Bearer s3cret"}).json()["token_required"] is True
        assert upload(c, video, token="s3cret").status_code == 202
        page = c.get("/")  # the page itself is public: it asks for the token
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]


def test_page_docs_and_one_data_dir_per_server(trained, classifier, api, tmp_path):
    page = api.get("/")
    assert page.status_code == 200 and 'id="file-input"' in page.text and "/static/app.js" in page.text
    js = api.get("/static/app.js")
    assert js.status_code == 200 and "/v1/predictions" in js.text
    assert api.get("/docs").status_code == 200
    schema = api.get("/openapi.json").json()
    post = schema["paths"]["/v1/predictions"]["post"]
    assert "file" in post["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    assert {"202", "413", "422", "503", "401"} <= set(post["responses"])
    assert_refused(api.get("/nothing-here"), 404)
    from divita.errors import DivitaError

    with pytest.raises(DivitaError, match="in use by another"):
        make_service(trained, classifier, tmp_path / "serve")


def test_recovery_requeues_gives_up_after_3_starts_and_deletes_strays(tmp_path):
    from divita.serving.jobs import MAX_ATTEMPTS, JobStore

    store = JobStore(tmp_path / "d")
    partial = store.partial_path("a" * 32)
    partial.write_bytes(b"video bytes")
    job = store.accept("a" * 32, "x.mp4", partial, ".mp4", 11, max_queue=10)
    assert job.status == "queued" and (tmp_path / "d" / "uploads" / f"{'a' * 32}.mp4").read_bytes() == b"video bytes"
    for start in range(1, MAX_ATTEMPTS + 1):
        assert store.claim().attempts == start  # the server dies while running it ...
        store.close()
        (tmp_path / "d" / "uploads" / ".partial" / ("b" * 32)).write_bytes(b"never answered 202")
        (tmp_path / "d" / "uploads" / ("c" * 32 + ".mp4")).write_bytes(b"no row")
        store = JobStore(tmp_path / "d")
        counts = store.recover()  # ... and starts again
        assert counts["orphans"] == 2
        assert store.get("a" * 32).status == ("queued" if start < MAX_ATTEMPTS else "failed")
    job = store.get("a" * 32)
    assert job.error == f"the server stopped {MAX_ATTEMPTS} times while running this job"
    assert sorted(p.name for p in (tmp_path / "d" / "uploads").iterdir()) == [".partial", f"{'a' * 32}.mp4"]
    assert store.claim() is None
    store.close()


def test_the_parser_does_not_import_the_serve_extra():
    code = (
        "import sys, divita.cli; divita.cli.build_parser(); "
        "print(sorted(m for m in ('fastapi', 'uvicorn', 'starlette', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- a real server: kill -9, restart, concurrent uploads, `divita predict --server` -------------------------
def start_server(ckpt: Path, data_dir: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "divita",
            "serve",
            "--checkpoint",
            str(ckpt),
            "--port",
            "0",
            "--data-dir",
            str(data_dir),
            "--log-level",
            "warning",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    m = re.search(r"on (http://127\.0\.0\.1:\d+) ", line)
    assert m, (line, proc.stderr.read() if proc.poll() is not None else "")
    url = m.group(1)
    deadline = time.monotonic() + 60
    while True:
        try:
            ServeClient(url, timeout=5).health()
            return proc, url
        except Exception:
            if proc.poll() is not None:
                raise AssertionError(f"divita serve exited: {proc.stderr.read()[-2000:]}") from None
            assert time.monotonic() < deadline, "divita serve does not answer /healthz"
            time.sleep(0.1)


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM, as a service manager stops it: a graceful shutdown."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_kill_9_then_restart_finishes_queued_and_running_jobs(trained, tmp_path):
    root, ckpt = trained
    data = tmp_path / "serve"
    long_video = genre_video(tmp_path / "long_horror.mp4", "horror", seed=5, frames=24 * 20)  # 20 s: seconds of work
    proc, url = start_server(ckpt, data)
    try:
        client = ServeClient(url)
        first = client.submit(root / "new" / "new_action.mp4")
        before = client.wait(first, poll_s=0.1)
        assert before["status"] == "done"
        running, queued = client.submit(long_video), client.submit(root / "new" / "new_comedy.mp4")
        deadline = time.monotonic() + 60
        while client.get(running)["status"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        t = time.perf_counter()
        health = client.health()  # the event loop answers while a job runs
        assert time.perf_counter() - t < 2.0 and health["running"] == [running] and health["queue_length"] == 1
        assert health["isolation"] == "process" and health["calibrated_seconds_per_video_second"] > 0
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    with sqlite3.connect(data / "jobs.sqlite3") as db:
        states = dict(db.execute("SELECT id, status FROM jobs"))
    assert states == {first: "done", running: "running", queued: "queued"}

    proc, url = start_server(ckpt, data, "--max-job-seconds", "600")  # a fixed limit: no calibration
    try:
        client = ServeClient(url)
        assert client.health()["calibrated_seconds_per_video_second"] is None
        after = {i: client.wait(i, poll_s=0.1, timeout_s=120) for i in (running, queued)}
        assert all(j["status"] == "done" for j in after.values()), after
        assert after[running]["attempts"] == 2 and after[queued]["attempts"] == 1
        assert after[running]["result"]["video"] == "long_horror.mp4" and after[running]["result"]["num_frames"] == 480
        assert client.get(first) == before  # a finished job keeps its result
        assert client.timeline(running, tmp_path / "t.png").stat().st_size > 10_000

        # 8 uploads at once: all accepted, all finish
        videos = [root / "new" / f"new_{g}.mp4" for g in LOOKS]
        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(lambda i: ServeClient(url).submit(videos[i % 3]), range(8)))
        assert len(set(ids)) == 8
        with ThreadPoolExecutor(8) as pool:
            jobs = list(pool.map(lambda i: ServeClient(url).wait(i, poll_s=0.2, timeout_s=240), ids))
        assert [j["status"] for j in jobs] == ["done"] * 8
        assert [next(iter(j["result"]["genres"])) for j in jobs] == [list(LOOKS)[i % 3] for i in range(8)]
    finally:
        stop(proc)
    err = proc.stderr.read()
    assert proc.returncode == 0 and err.rstrip().endswith("divita serve: stopped"), err[-2000:]


def test_divita_predict_server_prints_what_the_local_command_prints(trained, classifier, tmp_path, capsys):
    root, ckpt = trained
    videos = [str(root / "new" / f"new_{g}.mp4") for g in ("horror", "action")]
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    timing = re.compile(r"snippets, [0-9.]+s\)")
    outputs = {}
    with live_server(create_app(make_service(trained, classifier, tmp_path / "s"))) as url:
        for mode, source in (("local", ["--checkpoint", str(ckpt)]), ("server", ["--server", url])):
            out = {}
            for fmt in ("--json", "--top"):
                args = [
                    "predict",
                    *videos,
                    str(bad),
                    *source,
                    "--no-progress",
                    "--failures",
                    str(tmp_path / f"{mode}.csv"),
                    "--plot",
                    str(tmp_path / mode / "t.png"),
                ]
                args += ["--json"] if fmt == "--json" else ["--top", "3"]
                code = main(args)
                captured = capsys.readouterr()
                out[fmt] = (code, captured.out, captured.err)
            outputs[mode] = out
        assert main(["predict", videos[0], "--server", url, "--checkpoint", str(ckpt)]) == 2
        assert "exclude each other" in capsys.readouterr().err

    local, remote = outputs["local"], outputs["server"]
    assert local["--json"][0] == remote["--json"][0] == 1  # the bad file fails in both
    lj = [json.loads(line) for line in local["--json"][1].splitlines()]
    rj = [json.loads(line) for line in remote["--json"][1].splitlines()]
    assert [r["video"] for r in rj] == [r["video"] for r in lj] == videos
    assert [{**r, "timings": None, "plot": None} for r in rj] == [{**r, "timings": None, "plot": None} for r in lj]
    assert all(Path(r["plot"]).stat().st_size > 10_000 for r in rj)
    assert [Path(r["plot"]).name for r in rj] == [Path(r["plot"]).name for r in lj]
    assert timing.sub("", remote["--top"][1]).replace("/server/", "/local/") == timing.sub("", local["--top"][1])
    assert remote["--json"][2] == local["--json"][2]  # the same failure lines on stderr
    assert (tmp_path / "server.csv").read_text() == (tmp_path / "local.csv").read_text()


def test_divita_predict_server_errors_are_one_line(trained, tmp_path, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nobody listens here once closed
    video = str(trained[0] / "new" / "new_action.mp4")
    assert main(["predict", video, "--server", f"http://127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "no answer from the server" in err
    assert main(["predict", video]) == 2
    assert "--checkpoint is required" in capsys.readouterr().err


def test_serve_cli_refuses_a_bad_checkpoint_and_warns_on_an_open_bind(tmp_path):
    """The warning comes before anything is loaded or bound, so a bad checkpoint shows it without listening."""
    bad = tmp_path / "bad.ckpt"
    bad.write_text("no")
    for host, warned in (("127.0.0.1", False), ("0.0.0.0", True)):
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "divita",
                "serve",
                "--checkpoint",
                str(bad),
                "--host",
                host,
                "--data-dir",
                str(tmp_path / "d"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and "Traceback" not in r.stderr and len(lines) == 1 + warned, r.stderr
        assert "not a readable checkpoint" in lines[-1]
        assert ("warning: listening on 0.0.0.0 without --token" in r.stderr) == warned
