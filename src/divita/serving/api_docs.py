"""``/docs`` (Swagger UI) and ``/redoc`` without a CDN: their scripts and styles are the files the
fastapi-offline package ships, served by the app itself. Redoc's script fetches one more file from a CDN, the
logo of its "API docs by Redocly" footer; the app serves that script with the logo's address pointing at a
picture in this package (``static/redoc-logo.svg``), so that neither page asks any other host for anything.
"""

from __future__ import annotations

import logging
from functools import cache
from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

log = logging.getLogger("divita.serve")
REDOC_REMOTE_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
REDOC_LOCAL_LOGO = b"static/redoc-logo.svg"  # relative to /redoc, so that it holds behind a root path too
REDOC_SCRIPT_URL = "/redoc-offline.js"


def offline_docs_app(**kwargs) -> FastAPI:
    """A FastAPI app (``kwargs`` as for FastAPI) whose ``/docs`` and ``/redoc`` pages load everything from the
    app itself. Without fastapi-offline installed, FastAPI's own pages (from a CDN), with a warning."""
    try:
        from fastapi_offline import FastAPIOffline
    except ImportError:
        log.warning("divita serve: fastapi-offline is not installed: /docs and /redoc load their scripts from a CDN")
        return FastAPI(**kwargs)
    from fastapi.openapi.docs import get_redoc_html

    parameters = {"validatorUrl": None, **(kwargs.pop("swagger_ui_parameters", None) or {})}  # no validator badge
    app = FastAPIOffline(redoc_url=None, swagger_ui_parameters=parameters, **kwargs)
    static = "/static-offline-docs"  # where FastAPIOffline serves its files

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{REDOC_SCRIPT_URL}",
            redoc_favicon_url=f"{root}{static}/favicon.png",
            with_google_fonts=False,
        )

    @app.get(REDOC_SCRIPT_URL, include_in_schema=False)
    async def redoc_script() -> Response:
        return Response(redoc_script_bytes(), media_type="text/javascript", headers={"Cache-Control": "max-age=3600"})

    return app


@cache
def redoc_script_bytes() -> bytes:
    """fastapi-offline's redoc.standalone.js with its footer logo taken from this package instead of a CDN."""
    script = (files("fastapi_offline") / "static" / "redoc.standalone.js").read_bytes()
    if REDOC_REMOTE_LOGO not in script:
        log.warning("divita serve: Redoc's script changed: its footer logo may be fetched from a CDN")
    return script.replace(REDOC_REMOTE_LOGO, REDOC_LOCAL_LOGO)
