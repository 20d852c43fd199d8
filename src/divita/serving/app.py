"""The HTTP side of `divita serve`: a FastAPI app over a :class:`Service` (job table, worker threads, the
checkpoint's classifiers).

    service = Service.open(ServeConfig(checkpoint="run/best.ckpt", data_dir="serve-data"))
    app = create_app(service)          # uvicorn.run(app) / fastapi.testclient.TestClient(app)

Every refusal is ``{"error": "<one line>"}`` with its status code. Uploads are parsed as a stream and written
straight to the data directory's ``uploads/.partial/`` (never held whole in memory); reading stops at the size
limit. The event loop never runs inference: :class:`divita.serving.worker.WorkerPool` threads do.
"""

from __future__ import annotations

import hmac
import logging
import math
import os
import threading
from collections.abc import Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from divita.errors import DivitaError
from divita.serving.jobs import MAX_ATTEMPTS, JobStore, display_name, is_job_id, new_job_id
from divita.serving.worker import WorkerPool

log = logging.getLogger("divita.serve")
CHUNK_SLACK = 64 * 1024  # multipart framing allowed beyond the file's own bytes
FIELD_LIMIT = 64 * 1024  # bytes of form fields other than `file` read before refusing


@dataclass
class ServeConfig:
    """What `divita serve` was started with."""

    checkpoint: str
    data_dir: str = "divita-serve"
    workers: int = 1
    max_upload_mb: float = 1024
    max_queue: int = 100
    token: str | None = None
    device: str = "cpu"
    weights: dict[str, str] = field(default_factory=dict)
    timeline: bool = True  # draw a done job's timeline picture when it is asked for

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


class Refusal(Exception):
    """An HTTP refusal answered as ``{"error": message}``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


class Service:
    """The job table, the worker threads and what the checkpoint tells about itself."""

    def __init__(self, config: ServeConfig, store: JobStore, classifiers: Sequence[Any]):
        self.config = config
        self.store = store
        self.classifiers = list(classifiers)
        self.pool = WorkerPool(store, self.classifiers)
        self.drawing = threading.Lock()  # one timeline picture drawn at a time
        self.model_info = checkpoint_info(self.classifiers[0], config.checkpoint)
        self.started = False

    @classmethod
    def open(cls, config: ServeConfig, classifiers: Sequence[Any] | None = None) -> Service:
        """Load ``config.workers`` classifiers (unless given), open the data directory and recover it (jobs
        left running queued again, stray files deleted). Raises DivitaError on a bad checkpoint or data dir."""
        if config.workers < 1:
            raise DivitaError(None, f"--workers must be at least 1, got {config.workers}")
        if config.max_queue < 1:
            raise DivitaError(None, f"--max-queue must be at least 1, got {config.max_queue}")
        if not config.max_upload_mb > 0:
            raise DivitaError(None, f"--max-upload-mb must be positive, got {config.max_upload_mb}")
        if classifiers is None:
            from divita.inference.predict import GenreClassifier

            classifiers = [
                GenreClassifier.from_checkpoint(config.checkpoint, device=config.device, weights=config.weights)
                for _ in range(config.workers)
            ]
        store = JobStore(config.data_dir)
        try:
            counts = store.recover()
        except Exception:
            store.close()
            raise
        if counts["requeued"] or counts["gave_up"]:
            log.warning(
                "divita serve: %d interrupted job(s) queued again, %d failed after %d starts",
                counts["requeued"],
                counts["gave_up"],
                MAX_ATTEMPTS,
            )
        return cls(config, store, classifiers)

    def start(self) -> None:
        if not self.started:
            self.pool.start()
            self.started = True

    def close(self) -> None:
        self.pool.stop()
        self.store.close()


def checkpoint_info(classifier: Any, path: str) -> dict:
    """Backbones, extraction and training metrics of the served checkpoint (for ``/healthz``)."""
    ckpt = classifier.checkpoint
    plan = classifier.plan
    return {
        "checkpoint": Path(path).name,
        "epoch": ckpt.get("epoch"),
        "selected_by": ckpt.get("selected_by"),
        "backbones": {m: s.get("name") for m, s in plan.backbones.items()},
        "extraction": {
            "fps": plan.fps,
            "fpc": plan.fpc,
            "detector": plan.detector.get("name"),
            "num_clips": classifier.num_clips,
        },
        "metrics": training_metrics(Path(path).with_name("metrics.csv"), ckpt.get("selected_by") or "loss"),
    }


def training_metrics(metrics_csv: Path, selection: str) -> dict | None:
    """``{"val": {"uap", "map", "wap", "sap"}, "tst": {...}}`` of the selected model (paper's AP convention)
    from the run's metrics.csv beside the checkpoint; None when there is none."""
    if not metrics_csv.is_file():
        return None
    import pandas as pd

    try:
        df = pd.read_csv(metrics_csv)
        rows = df[(df["selection"] == selection) & (df["convention"] == "paper")]
        out = {}
        for _, r in rows.iterrows():
            out[str(r["subset"])] = {k: _finite(r[k]) for k in ("uap", "map", "wap", "sap")}
        return out or None
    except (KeyError, ValueError, OSError, pd.errors.ParserError):
        return None


def _finite(x) -> float | None:
    x = float(x)
    return round(x, 4) if math.isfinite(x) else None


# -- response bodies (for the OpenAPI page) ----------------------------------------------------------------
class ErrorBody(BaseModel):
    error: str


class Accepted(BaseModel):
    id: str
    status: str


class PredictionJob(BaseModel):
    id: str
    status: str
    filename: str
    size: int
    created: str
    started: str | None
    finished: str | None
    attempts: int
    result: dict[str, Any] | None = None
    error: str | None


class JobSummary(BaseModel):
    id: str
    status: str
    filename: str
    size: int
    created: str
    started: str | None
    finished: str | None
    attempts: int
    genres: dict[str, float] | None
    predicted: list[str] | None
    error: str | None


class JobPage(BaseModel):
    items: list[JobSummary]
    total: int
    limit: int
    offset: int


def _errors(*codes: int) -> dict:
    return {c: {"model": ErrorBody} for c in codes}


UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "a trailer (any video file)"}
                    },
                }
            }
        },
    }
}


def create_app(service: Service) -> FastAPI:
    """The FastAPI app of one service; its lifespan starts the worker threads and, at shutdown, stops them
    and closes the job table."""
    cfg = service.config
    store = service.store

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service.start()
        try:
            yield
        finally:
            await run_in_threadpool(service.close)

    app = FastAPI(
        title="divita serve",
        version=_version(),
        summary="Movie trailer genres (DIViTA): upload a trailer, get its 10 genre probabilities.",
        lifespan=lifespan,
    )
    app.state.service = service

    @app.exception_handler(Refusal)
    async def _refusal(request: Request, exc: Refusal):
        return JSONResponse({"error": exc.message}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        headers = getattr(exc, "headers", None)
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        from divita.fileio import is_output_fault, os_error_in_chain

        fault = os_error_in_chain(exc)
        if fault is not None and is_output_fault(fault):  # full disk, quota, read-only: the next upload meets it too
            log.error("divita serve: cannot write the data directory: %s", fault)
            return JSONResponse(
                {"error": f"the server cannot write its data directory ({fault.strerror})"}, status_code=507
            )
        log.exception("divita serve: %s %s", request.method, request.url.path)
        return JSONResponse({"error": f"internal error ({type(exc).__name__})"}, status_code=500)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "query")
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid request')}".strip(": ")}, status_code=422)

    def require_token(request: Request) -> None:
        if cfg.token is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), cfg.token.encode()):
            raise Refusal(
                401,
                "missing or wrong token (send the header `Authorization: Bearer TOKEN`)",
                {"WWW-Authenticate": "Bearer"},
            )

    auth = [Depends(require_token)]

    def job_or_404(job_id: str):
        job = store.get(job_id) if is_job_id(job_id) else None
        if job is None:
            raise Refusal(404, f"unknown prediction id {job_id[:64]!r}")
        return job

    # -- the page ------------------------------------------------------------------------------------------
    static = files("divita.serving") / "static"

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(
            str(static / "index.html"), media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-cache"}
        )

    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    # -- health ----------------------------------------------------------------------------------------------
    @app.get(
        "/healthz",
        dependencies=auth,
        responses=_errors(401),
        summary="Health, the served checkpoint (backbones, training metrics) and the queue",
    )
    def healthz():
        counts = store.counts()
        return {
            "status": "ok",
            "version": _version(),
            **service.model_info,
            "queue_length": counts["queued"],
            "jobs": counts,
            "running": sorted(service.pool.running.values()),
            "workers": len(service.classifiers),
            "max_queue": cfg.max_queue,
            "max_upload_mb": cfg.max_upload_mb,
            "token_required": cfg.token is not None,
        }

    # -- predictions -----------------------------------------------------------------------------------------
    @app.post(
        "/v1/predictions",
        status_code=202,
        dependencies=auth,
        response_model=Accepted,
        openapi_extra=UPLOAD_BODY,
        responses=_errors(401, 413, 422, 503),
        summary="Upload a trailer (multipart field `file`); its job is queued",
    )
    async def create_prediction(request: Request):
        limit = cfg.max_upload_bytes
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit + CHUNK_SLACK:
            raise Refusal(
                413, f"upload of {int(length)} bytes is over the limit of {_mib(limit)}", {"Connection": "close"}
            )
        queued = store.counts()["queued"]
        if queued >= cfg.max_queue:
            raise _queue_full(service)
        job_id = new_job_id()
        partial = store.partial_path(job_id)
        upload = _Upload(partial, limit)
        accepted = False
        try:
            await upload.receive(request)
            await run_in_threadpool(upload.probe)
            job = await run_in_threadpool(
                store.accept, job_id, upload.filename, partial, upload.suffix, upload.size, cfg.max_queue
            )
            if job is None:
                raise _queue_full(service)
            accepted = True
        finally:
            upload.close()
            if not accepted:
                partial.unlink(missing_ok=True)
        service.pool.notify()
        return JSONResponse(
            {"id": job.id, "status": job.status}, status_code=202, headers={"Location": f"/v1/predictions/{job.id}"}
        )

    @app.get(
        "/v1/predictions",
        dependencies=auth,
        response_model=JobPage,
        responses=_errors(401),
        summary="Recent jobs, newest first (paged)",
    )
    def list_predictions(limit: int = Query(20, ge=1, le=100), offset: int = Query(0, ge=0)):
        jobs, total = store.recent(limit, offset)
        return {"items": [j.public(with_result=False) for j in jobs], "total": total, "limit": limit, "offset": offset}

    @app.get(
        "/v1/predictions/{job_id}",
        dependencies=auth,
        response_model=PredictionJob,
        responses=_errors(401, 404),
        summary="A job's state and, once done, its result (the object `divita predict --json` prints)",
    )
    def get_prediction(job_id: str):
        return JSONResponse(job_or_404(job_id).public())

    @app.get(
        "/v1/predictions/{job_id}/timeline.png",
        dependencies=auth,
        responses={
            200: {"content": {"image/png": {}}, "description": "the timeline picture (`divita predict --plot`)"},
            **_errors(401, 404, 409, 500),
        },
        summary="The job's timeline picture, once done (drawn on the first request)",
    )
    def get_timeline(job_id: str):
        job = job_or_404(job_id)
        if job.status != "done":
            raise Refusal(409, f"prediction {job.id} is {job.status}: its timeline exists once it is done")
        if not cfg.timeline:
            raise Refusal(404, "this server draws no timeline pictures (it was started with --no-timeline)")
        return FileResponse(str(draw_timeline(service, job)), media_type="image/png")

    @app.delete(
        "/v1/predictions/{job_id}",
        dependencies=auth,
        responses=_errors(401, 404, 409),
        summary="Delete a job with its upload and result",
    )
    def delete_prediction(job_id: str):
        job = job_or_404(job_id)
        outcome = store.delete(job.id)
        if outcome == "running":
            raise Refusal(409, f"prediction {job.id} is running: delete it once it is done or failed")
        if outcome == "unknown":
            raise Refusal(404, f"unknown prediction id {job.id!r}")
        return {"id": job.id, "status": "deleted"}

    return app


def draw_timeline(service: Service, job) -> Path:
    """The done job's timeline picture in ``results/``, drawn from its result and upload on the first call
    (written atomically by ``plot_timeline``, then recorded in the job's row)."""
    store = service.store
    if job.timeline and (store.results / job.timeline).is_file():
        return store.results / job.timeline
    from divita.inference.predict import plot_timeline

    upload = store.uploads / job.upload
    name = f"{job.id}.png"
    with service.drawing:
        if (store.results / name).is_file():  # drawn by a request that held the lock before this one
            return store.results / name
        if not upload.is_file():
            raise Refusal(404, f"prediction {job.id}: its upload is gone, so its timeline cannot be drawn")
        try:
            plot_timeline(job.result, store.results / name, video=upload)  # written atomically
        except Exception as e:  # a picture that cannot be drawn: the genres stand without it
            log.exception("timeline of job %s", job.id)
            raise Refusal(500, f"prediction {job.id}: drawing its timeline failed ({type(e).__name__})") from None
        store.set_timeline(job.id, name)
    return store.results / name


def _queue_full(service: Service) -> Refusal:
    mean = service.store.mean_seconds() or 10.0
    retry = max(1, min(3600, math.ceil(mean / len(service.classifiers))))
    return Refusal(
        503, f"the queue is full ({service.config.max_queue} jobs waiting); retry later", {"Retry-After": str(retry)}
    )


def _mib(n: int) -> str:
    return f"{n / 1024 / 1024:g} MiB" if n >= 1024 * 1024 else f"{n} bytes"


def _version() -> str:
    from divita import __version__

    return __version__


class _Upload:
    """One multipart upload streamed to a file: the `file` field's bytes go to ``path`` as they arrive."""

    def __init__(self, path: Path, limit: int):
        self.path, self.limit = path, limit
        self.file = None
        self.filename = "upload"
        self.suffix = ""
        self.size = 0
        self.found = False
        self.too_big = False
        self.other_bytes = 0
        self._headers: dict[bytes, bytes] = {}
        self._field = b""
        self._value = b""
        self._in_file = False
        self._ended = False

    async def receive(self, request: Request) -> None:
        from python_multipart.multipart import MultipartParseError, MultipartParser, parse_options_header

        ctype, params = parse_options_header(request.headers.get("content-type", ""))
        boundary = params.get(b"boundary")
        if ctype != b"multipart/form-data" or not boundary:
            raise Refusal(422, "expected a multipart/form-data body with the trailer in the field `file`")
        parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
                "on_end": self._end,
            },
        )
        try:
            async for chunk in request.stream():
                parser.write(chunk)
                if self.too_big:
                    raise Refusal(
                        413, f"{self.filename}: larger than the limit of {_mib(self.limit)}", {"Connection": "close"}
                    )
                if self.other_bytes > FIELD_LIMIT:
                    raise Refusal(
                        413, f"form fields other than `file` are over {FIELD_LIMIT} bytes", {"Connection": "close"}
                    )
                if self._ended:
                    break
            parser.finalize()
        except MultipartParseError as e:
            raise Refusal(422, f"malformed multipart body ({str(e).splitlines()[0][:200]})") from None
        except ClientDisconnect:
            raise Refusal(400, "the client closed the connection before the upload ended") from None
        if not self.found:
            raise Refusal(422, "no field `file` in the form: send the trailer as multipart field `file`")
        if not self._ended:
            raise Refusal(422, f"{self.filename}: the upload ended before its multipart body did")
        if self.size == 0:
            raise Refusal(422, f"{self.filename}: empty file (0 bytes)")

    def probe(self) -> None:
        """fsync the upload, then refuse it unless PyAV finds a video stream in it."""
        from divita.video import VIDEO_EXTENSIONS, probe_video

        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        try:
            probe_video(self.path)
        except DivitaError as e:
            raise Refusal(422, f"{self.filename}: {e.problem}") from None
        except Exception as e:  # noqa: BLE001 - whatever a hostile file makes the demuxer raise
            raise Refusal(422, f"{self.filename}: not a readable media file ({type(e).__name__})") from None
        suffix = Path(self.filename).suffix.lower()
        self.suffix = suffix if suffix in VIDEO_EXTENSIONS else ""

    def close(self) -> None:
        if self.file is not None and not self.file.closed:
            self.file.close()

    # multipart callbacks
    def _part_begin(self):
        self._headers = {}

    def _header_field(self, data, start, end):
        self._field += data[start:end]

    def _header_value(self, data, start, end):
        self._value += data[start:end]

    def _header_end(self):
        self._headers[self._field.strip().lower()] = self._value.strip()
        self._field = self._value = b""

    def _headers_finished(self):
        from python_multipart.multipart import parse_options_header

        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._in_file = params.get(b"name") == b"file" and not self.found
        if self._in_file:
            self.found = True
            self.filename = display_name(params.get(b"filename", b"upload").decode("utf-8", "replace"))
            self.file = open(self.path, "wb")

    def _part_data(self, data, start, end):
        n = end - start
        if not self._in_file:
            self.other_bytes += n
            return
        if self.too_big:
            return
        if self.size + n > self.limit:
            self.too_big = True
            return
        self.file.write(data[start:end])
        self.size += n

    def _part_end(self):
        self._in_file = False

    def _end(self):
        self._ended = True
