"""The API's refusals and response bodies (the models the OpenAPI page shows)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

REASONS = {400: "bad_request", 401: "unauthorized", 404: "not_found", 409: "conflict", 413: "too_large"}
REASONS |= {422: "unreadable", 500: "internal", 503: "queue_full", 507: "no_space"}


class Refusal(Exception):
    """An HTTP refusal answered as ``{"error": message}``; ``reason`` labels it in ``/metrics``
    (default: from the status, e.g. 413 -> "too_large")."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None, reason: str | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}
        self.reason = reason or REASONS.get(status, str(status))


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
    upload_removed: str | None = None


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
    upload_removed: str | None = None


class JobPage(BaseModel):
    items: list[JobSummary]
    total: int
    limit: int
    offset: int


def error_responses(*codes: int) -> dict:
    """The ``responses=`` of a route that answers these status codes with an :class:`ErrorBody`."""
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
