"""A small client of a running `divita serve` (standard library only, so ``divita predict --server`` works
without the ``serve`` extra).

    client = ServeClient("http://127.0.0.1:8000", token=None)
    job_id = client.submit("trailer.mp4")      # streamed upload; 202 -> the job's id
    job = client.wait(job_id)                  # {"status": "done", "result": {...}, ...}
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

from divita.errors import DivitaError


class ServerRefused(DivitaError):
    """The server answered an error status; ``status`` is its code, ``problem`` its one-line reason."""

    def __init__(self, where, status: int, problem: str, retry_after: float | None = None):
        super().__init__(where, problem)
        self.status = status
        self.retry_after = retry_after


class _MultipartFile:
    """A file-like multipart/form-data body with one field ``file``: read in blocks, never held whole."""

    def __init__(self, path: Path, boundary: str):
        name = path.name.replace('"', "_").replace("\r", "_").replace("\n", "_")
        self.head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        self.tail = f"\r\n--{boundary}--\r\n".encode("ascii")
        self.boundary = boundary
        self.file = open(path, "rb")
        self.length = len(self.head) + os.fstat(self.file.fileno()).st_size + len(self.tail)
        self._stage = 0

    def read(self, n: int = -1) -> bytes:
        if self._stage == 0:
            self._stage = 1
            return self.head
        if self._stage == 1:
            chunk = self.file.read(n if n and n > 0 else 1 << 20)
            if chunk:
                return chunk
            self._stage = 2
            return self.tail
        return b""

    def close(self) -> None:
        self.file.close()


class ServeClient:
    def __init__(self, url: str, token: str | None = None, timeout: float = 60.0):
        if not url.startswith(("http://", "https://")):
            url = "http://" + url
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def _request(self, method: str, path: str, body=None, headers: dict | None = None) -> tuple[int, dict, bytes]:
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=dict(headers or {}))
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            data = e.read()
            try:
                problem = json.loads(data)["error"]
            except (ValueError, KeyError, TypeError):
                problem = f"HTTP {e.code} {e.reason}"
            retry = e.headers.get("Retry-After")
            raise ServerRefused(
                self.url + path, e.code, str(problem), float(retry) if retry and retry.isdigit() else None
            ) from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise DivitaError(self.url, f"no answer from the server ({reason})") from None

    def _json(self, method: str, path: str, **kw) -> dict:
        _, _, data = self._request(method, path, **kw)
        return json.loads(data)

    def health(self) -> dict:
        return self._json("GET", "/healthz")

    def submit(self, video: str | os.PathLike, max_wait_s: float = 3600.0) -> str:
        """Upload one file; its job's id. A full queue (503) is retried after the server's Retry-After, for
        at most ``max_wait_s`` seconds."""
        path = Path(video)
        deadline = time.monotonic() + max_wait_s
        while True:
            body = _MultipartFile(path, uuid.uuid4().hex)
            try:
                headers = {
                    "Content-Type": f"multipart/form-data; boundary={body.boundary}",
                    "Content-Length": str(body.length),
                }
                return self._json("POST", "/v1/predictions", body=body, headers=headers)["id"]
            except ServerRefused as e:
                if e.status != 503 or time.monotonic() + (e.retry_after or 1) > deadline:
                    raise
                time.sleep(e.retry_after or 1)
            finally:
                body.close()

    def get(self, job_id: str) -> dict:
        return self._json("GET", f"/v1/predictions/{urllib.parse.quote(job_id)}")

    def wait(self, job_id: str, poll_s: float = 0.5, timeout_s: float | None = None) -> dict:
        """Poll until the job is done or failed; the job object."""
        start = time.monotonic()
        while True:
            job = self.get(job_id)
            if job["status"] in ("done", "failed"):
                return job
            if timeout_s is not None and time.monotonic() - start > timeout_s:
                raise DivitaError(self.url, f"prediction {job_id} still {job['status']} after {timeout_s:g} s")
            time.sleep(poll_s)

    def timeline(self, job_id: str, out_png: str | os.PathLike) -> Path:
        """Save the job's timeline picture to ``out_png``."""
        _, _, data = self._request("GET", f"/v1/predictions/{urllib.parse.quote(job_id)}/timeline.png")
        out = Path(out_png)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
        return out

    def delete(self, job_id: str) -> dict:
        return self._json("DELETE", f"/v1/predictions/{urllib.parse.quote(job_id)}")

    def jobs(self, limit: int = 20, offset: int = 0) -> dict:
        return self._json("GET", f"/v1/predictions?limit={int(limit)}&offset={int(offset)}")
