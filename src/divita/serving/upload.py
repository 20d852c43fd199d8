"""Uploads read as a stream: python-multipart's push parser writes the `file` field's bytes straight to the
data directory's ``uploads/.partial/`` as they arrive (never held whole in memory) and stops reading at the
size limit, with the upload's own name in the refusal; the received file is then probed by PyAV."""

from __future__ import annotations

import os
from pathlib import Path

from starlette.requests import ClientDisconnect, Request

from divita.errors import DivitaError
from divita.serving.jobs import display_name
from divita.serving.models import Refusal

CHUNK_SLACK = 64 * 1024  # multipart framing allowed beyond the file's own bytes
FIELD_LIMIT = 64 * 1024  # bytes of form fields other than `file` read before refusing


def mib(n: int) -> str:
    """A byte count as people read limits: ``"20 MiB"`` from 1 MiB up, else ``"20480 bytes"``."""
    return f"{n / 1024 / 1024:g} MiB" if n >= 1024 * 1024 else f"{n} bytes"


class StreamedUpload:
    """One multipart upload streamed to a file: the `file` field's bytes go to ``path`` as they arrive."""

    def __init__(self, path: Path, limit: int):
        self.path, self.limit = path, limit
        self.file = None
        self.filename = "upload"
        self.suffix = ""
        self.duration = 0.0
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
                        413, f"{self.filename}: larger than the limit of {mib(self.limit)}", {"Connection": "close"}
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

    def probe(self, limits=None) -> None:
        """fsync the upload, then refuse it (422) unless PyAV finds a video stream in it within ``limits``
        (:class:`divita.video.VideoLimits`, checked against the container's metadata); sets ``duration``."""
        from divita.video import VIDEO_EXTENSIONS, VideoLimitError, probe_video

        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        try:
            self.duration = probe_video(self.path, limits).duration
        except VideoLimitError as e:
            raise Refusal(422, f"{self.filename}: {e.problem}", reason="over_limit") from None
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
