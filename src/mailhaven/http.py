"""What every router shares: form reading, Mailgun error bodies, request logs and metrics."""

from __future__ import annotations

import json
import logging
import time
import zlib

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import Counter, Histogram
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Message, Receive

from mailhaven.errors import BadRequest, MailhavenError, TooLarge
from mailhaven.sending.request import Attachment

log = logging.getLogger("mailhaven.http")

HTTP_REQUESTS = Counter("mailhaven_http_requests_total", "HTTP requests answered",
                        ["method", "route", "status"])
HTTP_SECONDS = Histogram("mailhaven_http_request_seconds", "HTTP request latency", ["route"])

MAX_REQUEST_BYTES = int(52.4 * 1024 * 1024)
MAX_PART_BYTES = 30 * 1024 * 1024
FILE_FIELDS = ("attachment", "inline", "message")
TOO_LARGE = "request size exceeds 52.4MiB limit"


def _limited(receive: Receive, *, gzip: bool) -> Receive:
    """`receive`, refusing a body past the limit as it arrives (chunked bodies declare no
    length) and inflating a gzip body, whose inflated size is what counts."""
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzip else None
    seen = 0

    async def limited() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] != "http.request":
            return message
        body = message.get("body", b"")
        if inflate is not None:
            try:
                body = inflate.decompress(body, MAX_REQUEST_BYTES + 1 - seen)
                if not message.get("more_body", False):
                    body += inflate.flush()
            except zlib.error as exc:
                raise BadRequest("Request body is not valid gzip") from exc
        seen += len(body)
        if seen > MAX_REQUEST_BYTES:
            raise TooLarge(TOO_LARGE)
        return {**message, "body": body}

    return limited


async def read_form(request: Request) -> tuple[list[tuple[str, str]], list[tuple[str, Attachment]]]:
    """Fields and file parts of an urlencoded or multipart body, repeated fields kept."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_REQUEST_BYTES:
        raise TooLarge(TOO_LARGE)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip"):
        raise BadRequest(f"Unsupported Content-Encoding: {encoding}")
    body = Request(request.scope, _limited(request.receive, gzip=encoding == "gzip"))
    fields: list[tuple[str, str]] = []
    files: list[tuple[str, Attachment]] = []
    async with body.form(max_files=2000, max_fields=20000,
                         max_part_size=MAX_PART_BYTES) as form:
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                data = await value.read()
                if key in FILE_FIELDS:
                    files.append((key, Attachment(
                        filename=value.filename or "attachment",
                        content_type=value.content_type or "application/octet-stream",
                        data=data, inline=key == "inline")))
                else:
                    fields.append((key, data.decode("utf-8", "replace")))
            else:
                fields.append((key, value))
    return fields, files


def field_dict(fields: list[tuple[str, str]]) -> dict[str, str]:
    """First value of each field (for endpoints that take no repeated fields)."""
    out: dict[str, str] = {}
    for key, value in fields:
        out.setdefault(key, value)
    return out


def _is_send(request: Request) -> bool:
    return request.url.path.endswith(("/messages", "/messages.mime"))


def install(app: FastAPI) -> None:
    @app.exception_handler(MailhavenError)
    async def _domain_error(request: Request, exc: MailhavenError) -> Response:
        if exc.status == 401 and _is_send(request):
            return PlainTextResponse("Forbidden", status_code=401)
        return JSONResponse({"message": exc.message}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:])
        return JSONResponse({"message": f"Invalid parameter {where}: {first.get('msg', '')}"},
                            status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        return JSONResponse({"message": str(exc.detail)}, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, _route(request))
        return JSONResponse({"message": "Internal Server Error"}, status_code=500)

    @app.middleware("http")
    async def _refuse_nul(request: Request, call_next):  # type: ignore[no-untyped-def]
        # PostgreSQL text cannot hold NUL, and no name, address or filter contains one.
        if b"%00" in request.scope.get("raw_path", b"") + request.scope.get("query_string", b""):
            return JSONResponse({"message": "Invalid NUL byte in request URL"}, status_code=400)
        return await call_next(request)

    @app.middleware("http")
    async def _log_and_count(request: Request, call_next):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            elapsed = time.perf_counter() - started
            route = _route(request)
            HTTP_REQUESTS.labels(request.method, route, str(status)).inc()
            HTTP_SECONDS.labels(route).observe(elapsed)
            log.info(json.dumps({
                "kind": "request", "method": request.method, "route": route,
                "status": status, "ms": round(elapsed * 1000, 2),
                "account": getattr(request.state, "account_id", None),
            }))


def _route(request: Request) -> str:
    # The route template, never the raw path: paths can carry addresses.
    route = request.scope.get("route")
    return getattr(route, "path", "unmatched")
