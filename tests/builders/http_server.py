"""A local HTTP mirror for tests: serves the files of a directory on 127.0.0.1, with HTTP Range support.

    with serve_directory(root) as mirror:
        download_release(dir, base_url=mirror.url, ...)
        mirror.cut_after["mtgc.csv"] = 100   # the next GET of mtgc.csv stops after 100 body bytes
        mirror.stall_after["mtgc.csv"] = 100 # ... or sends 100 bytes, then hangs (to kill a client mid-transfer)
        mirror.requests                      # every request seen: method, name, Range header, status

A request for ``/any/prefix/NAME?query`` serves ``root/NAME`` (the URL's last path component; the query is
ignored), so ``mirror.url`` can stand in for Zenodo's ``https://zenodo.org/record/5716410/files``.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class SeenRequest:
    method: str
    name: str  # the file name asked for
    range: str | None  # the Range header, e.g. "bytes=100-"
    status: int  # the status answered


@dataclass
class LocalMirror:
    url: str  # base URL, e.g. "http://127.0.0.1:54321/files"
    root: Path
    requests: list[SeenRequest] = field(default_factory=list)
    # name -> N: the next GET of that file sends its full headers but only N body bytes, then closes.
    # One-shot (the entry is removed when used), so a rerun gets the whole file.
    cut_after: dict[str, int] = field(default_factory=dict)
    ignore_range: bool = False  # answer 200 with the whole file even when a Range is asked for
    # name -> status: answer this HTTP error for that file (persistent until removed).
    fail_status: dict[str, int] = field(default_factory=dict)
    # name -> N: the next GET of that file sends N body bytes, then hangs (until the mirror shuts down or
    # `release_stalled()`): lets a test kill a client mid-transfer. One-shot, like cut_after.
    stall_after: dict[str, int] = field(default_factory=dict)
    # path prefix -> replacement: answer 302 to the rewritten path (as Zenodo redirects /record/ -> /records/).
    redirects: dict[str, str] = field(default_factory=dict)
    _unstall: threading.Event = field(default_factory=threading.Event, repr=False)

    def release_stalled(self) -> None:
        self._unstall.set()

    def __str__(self) -> str:
        return self.url

    def gets(self, name: str | None = None) -> list[SeenRequest]:
        """The GET requests seen (for one file name, or all)."""
        return [r for r in self.requests if r.method == "GET" and (name is None or r.name == name)]


def _handler(mirror: LocalMirror, lock: threading.Lock):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # one request per connection: a cut closes the socket

        def log_message(self, format, *args):  # noqa: A002 - keep test output quiet
            pass

        def do_HEAD(self):
            self._serve(body=False)

        def do_GET(self):
            self._serve(body=True)

        def _record(self, name: str, status: int) -> None:
            with lock:
                mirror.requests.append(SeenRequest(self.command, name, self.headers.get("Range"), status))

        def _error(self, name: str, status: int) -> None:
            self._record(name, status)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _serve(self, body: bool) -> None:
            path = urllib.parse.urlsplit(self.path).path
            name = urllib.parse.unquote(path.rstrip("/").rsplit("/", 1)[-1])
            for prefix, replacement in mirror.redirects.items():
                if path.startswith(prefix):
                    self._record(name, 302)
                    self.send_response(302)
                    self.send_header("Location", replacement + self.path[len(prefix) :])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
            if name in mirror.fail_status:
                return self._error(name, mirror.fail_status[name])
            file = mirror.root / name
            if not name or name.startswith(".") or not file.is_file():
                return self._error(name, 404)
            data = file.read_bytes()
            size = len(data)
            start, end, status = 0, size - 1, 200
            rng = self.headers.get("Range")
            if rng and not mirror.ignore_range:
                try:
                    unit, _, spec = rng.partition("=")
                    first, _, last = spec.split(",")[0].strip().partition("-")
                    if unit.strip() != "bytes" or not first:
                        raise ValueError(rng)
                    start = int(first)
                    end = min(int(last), size - 1) if last else size - 1
                except ValueError:
                    return self._error(name, 400)
                if start >= size or start > end:
                    self._record(name, 416)
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
            payload = data[start : end + 1]
            cut = stall = None
            if body:
                with lock:
                    cut = mirror.cut_after.pop(name, None)
                    stall = mirror.stall_after.pop(name, None)
            self._record(name, status)
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(len(payload)))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            if not body:
                return
            try:
                if stall is not None:
                    self.wfile.write(payload[:stall])
                    self.wfile.flush()
                    mirror._unstall.wait(timeout=60)
                    payload = payload[stall:]
                self.wfile.write(payload if cut is None else payload[:cut])
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass
            if cut is not None:
                self.close_connection = True

    return Handler


@contextlib.contextmanager
def serve_directory(root: str | os.PathLike, prefix: str = "/files") -> Iterator[LocalMirror]:
    """Serve the files directly in ``root`` on 127.0.0.1 (ephemeral port) until the block exits."""
    lock = threading.Lock()
    mirror = LocalMirror(url="", root=Path(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(mirror, lock))
    server.daemon_threads = True
    mirror.url = f"http://127.0.0.1:{server.server_address[1]}{prefix}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield mirror
    finally:
        mirror.release_stalled()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def md5_of(path: str | os.PathLike) -> str:
    from divita.fileio import file_hexdigest

    return file_hexdigest(path, "md5")


def tar_gz_directory(src: str | os.PathLike, archive: str | os.PathLike, arcname: str | None = None) -> Path:
    """Pack directory ``src`` into ``archive`` (tar.gz) with top-level directory ``arcname`` (default: its name)."""
    import tarfile

    src, archive = Path(src), Path(archive)
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(src, arcname=arcname or src.name)
    return archive


def write_checksums(mirror_root: str | os.PathLike, out: str | os.PathLike | None = None) -> dict[str, str]:
    """md5 of every file in ``mirror_root`` as {name: md5}; also written in md5sum format to ``out`` if given."""
    root = Path(mirror_root)
    sums = {p.name: md5_of(p) for p in sorted(root.iterdir()) if p.is_file()}
    if out is not None:
        Path(out).write_text("".join(f"{m}  {n}\n" for n, m in sums.items()))
    return sums
