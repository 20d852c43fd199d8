"""The API's refusals and response bodies (the models the OpenAPI page shows)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class Refusal(Exception):
    """An HTTP refusal answered as ``{"error": message}``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


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
