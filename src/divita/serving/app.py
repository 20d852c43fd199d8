"""The HTTP side of `divita serve`: the routes of a FastAPI app over a :class:`divita.serving.service.Service`.

    service = Service.open(ServeConfig(checkpoint="run/best.ckpt", data_dir="serve-data"))
    app = create_app(service)          # uvicorn.run(app) / fastapi.testclient.TestClient(app)

Every refusal is ``{"error": "<one line>"}`` with its status code. Uploads are parsed as a stream
(:mod:`divita.serving.upload`). The event loop never runs inference: the workers do.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import time
from contextlib import asynccontextmanager
from importlib.resources import files

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from divita.serving import metrics
from divita.serving.api_docs import offline_docs_app
from divita.serving.jobs import is_job_id, new_job_id
from divita.serving.metrics import log_event, log_job
from divita.serving.models import UPLOAD_BODY, Accepted, JobPage, PredictionJob, Refusal, error_responses
from divita.serving.service import Service, version
from divita.serving.timeline import draw_timeline
from divita.serving.upload import CHUNK_SLACK, StreamedUpload, mib

log = logging.getLogger("divita.serve")


def create_app(service: Service) -> FastAPI:
    """The FastAPI app of one service; its lifespan starts the worker threads and, at shutdown, stops them
    and closes the job table."""
    cfg = service.config
    store = service.store

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service.start()
        sweeper = asyncio.create_task(sweep_forever(service))
        try:
            yield
        finally:
            sweeper.cancel()
            await run_in_threadpool(service.close)

    app = offline_docs_app(
        title="divita serve",
        version=version(),
        summary="Movie trailer genres (DIViTA): upload a trailer, get its 10 genre probabilities.",
        lifespan=lifespan,
    )
    app.state.service = service

    @app.middleware("http")
    async def access_log(request: Request, call_next):
        t = time.perf_counter()
        response = await call_next(request)
        log_event(
            metrics.access_log,
            "request",
            method=request.method,
            path=request.url.path,
            status=response.status_code,
            ms=round(1000 * (time.perf_counter() - t), 1),
            client=request.client.host if request.client else None,
        )
        return response

    @app.exception_handler(Refusal)
    async def _refusal(request: Request, exc: Refusal):
        service.metrics.refusals.labels(exc.reason).inc()
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
            service.metrics.refusals.labels("no_space").inc()
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
        responses=error_responses(401),
        summary="Health, the served checkpoint (backbones, training metrics) and the queue",
    )
    def healthz():
        counts = store.counts()
        return {
            "status": "ok",
            "version": version(),
            **service.model_info,
            "queue_length": counts["queued"],
            "jobs": counts,
            "running": sorted(service.pool.running.values()),
            "workers": service.workers,
            "worker_restarts": service.pool.restarts,
            "isolation": service.isolation,
            "max_duration_s": cfg.limits.max_duration if cfg.limits else None,
            "max_pixels": cfg.limits.max_pixels if cfg.limits else None,
            "max_job_seconds": cfg.max_job_seconds,
            "calibrated_seconds_per_video_second": service.seconds_per_second,
            "keep_uploads_s": cfg.keep_uploads_s,
            "max_data_mb": cfg.max_data_mb,
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
        responses=error_responses(401, 413, 422, 503, 507),
        summary="Upload a trailer (multipart field `file`); its job is queued",
    )
    async def create_prediction(request: Request):
        limit = cfg.max_upload_bytes
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit + CHUNK_SLACK:
            raise Refusal(
                413, f"upload of {int(length)} bytes is over the limit of {mib(limit)}", {"Connection": "close"}
            )
        queued = store.counts()["queued"]
        if queued >= cfg.max_queue:
            raise queue_full(service)
        used = await run_in_threadpool(store.disk_bytes) if cfg.max_data_bytes is not None else 0
        declared = int(length) if length is not None and length.isdigit() else 0
        if cfg.max_data_bytes is not None and used + declared > cfg.max_data_bytes:
            raise data_dir_full(service, used, {"Connection": "close"})  # the body is not read
        job_id = new_job_id()
        partial = store.partial_path(job_id)
        upload = StreamedUpload(partial, limit)
        accepted = False
        try:
            await upload.receive(request)
            if cfg.max_data_bytes is not None and used + upload.size > cfg.max_data_bytes:
                raise data_dir_full(service, used)
            await run_in_threadpool(upload.probe, cfg.limits)
            job = await run_in_threadpool(
                store.accept,
                job_id,
                upload.filename,
                partial,
                upload.suffix,
                upload.size,
                cfg.max_queue,
                upload.duration,
            )
            if job is None:
                raise queue_full(service)
            accepted = True
        finally:
            upload.close()
            if not accepted:
                partial.unlink(missing_ok=True)
        log_job("queued", job.id, filename=job.filename, size=job.size, duration=upload.duration or None)
        service.pool.notify()
        return JSONResponse(
            {"id": job.id, "status": job.status}, status_code=202, headers={"Location": f"/v1/predictions/{job.id}"}
        )

    @app.get(
        "/v1/predictions",
        dependencies=auth,
        response_model=JobPage,
        responses=error_responses(401),
        summary="Recent jobs, newest first (paged)",
    )
    def list_predictions(limit: int = Query(20, ge=1, le=100), offset: int = Query(0, ge=0)):
        jobs, total = store.recent(limit, offset)
        return {"items": [j.public(with_result=False) for j in jobs], "total": total, "limit": limit, "offset": offset}

    @app.get(
        "/v1/predictions/{job_id}",
        dependencies=auth,
        response_model=PredictionJob,
        responses=error_responses(401, 404),
        summary="A job's state and, once done, its result (the object `divita predict --json` prints)",
    )
    def get_prediction(job_id: str):
        return JSONResponse(job_or_404(job_id).public())

    @app.get(
        "/v1/predictions/{job_id}/timeline.png",
        dependencies=auth,
        responses={
            200: {"content": {"image/png": {}}, "description": "the timeline picture (`divita predict --plot`)"},
            **error_responses(401, 404, 409, 500),
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
        responses=error_responses(401, 404, 409),
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

    @app.get("/metrics", dependencies=auth, include_in_schema=False)
    def prometheus_metrics():
        body = service.metrics.render(store.counts())
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    return app


async def sweep_forever(service: Service) -> None:
    """Every ``sweep_s`` seconds, remove the uploads past their retention (in a thread: it touches the disk)."""
    while True:
        try:
            await run_in_threadpool(service.sweep)
        except Exception:  # noqa: BLE001 - a failed sweep is tried again at the next one
            log.exception("divita serve: removing expired uploads failed")
        await asyncio.sleep(service.config.sweep_s)


def data_dir_full(service: Service, used: int, headers: dict[str, str] | None = None) -> Refusal:
    """507: the data directory holds ``used`` bytes, and this upload would pass ``--max-data-mb``."""
    return Refusal(
        507,
        f"the data directory is full ({mib(used)} used of the {service.config.max_data_mb:g} MiB of --max-data-mb); "
        "retry once older uploads have expired",
        headers,
        reason="data_dir_full",
    )


def queue_full(service: Service) -> Refusal:
    """503 with a Retry-After of the recent mean job time per worker."""
    mean = service.store.mean_seconds() or 10.0
    retry = max(1, min(3600, math.ceil(mean / service.workers)))
    return Refusal(
        503, f"the queue is full ({service.config.max_queue} jobs waiting); retry later", {"Retry-After": str(retry)}
    )
