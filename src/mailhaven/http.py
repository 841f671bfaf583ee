"""What every router shares: form reading, Mailgun error bodies, request logs and metrics."""

from __future__ import annotations

import json
import logging
import re
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from itertools import accumulate
from typing import Any, BinaryIO, TypeVar
from urllib.parse import urlencode

import anyio
import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import Counter, Histogram
from pydantic import TypeAdapter, ValidationError
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailhaven import netpolicy
from mailhaven.clock import monotonic
from mailhaven.errors import BadRequest, MailhavenError, TooLarge, TooManyRequests, frames
from mailhaven.sending.request import Attachment
from mailhaven.storage.db import outage

log = logging.getLogger("mailhaven.http")
UNAVAILABLE = "Service temporarily unavailable: please retry in a few seconds"
RETRY_AFTER_SECONDS = "5"
T = TypeVar("T")

HTTP_REQUESTS = Counter("mailhaven_http_requests_total", "HTTP requests answered",
                        ["method", "route", "status"])
HTTP_SECONDS = Histogram("mailhaven_http_request_seconds", "HTTP request latency", ["route"])

MAX_REQUEST_BYTES = int(52.4 * 1024 * 1024)
MAX_PART_BYTES = 30 * 1024 * 1024
FILE_FIELDS = ("attachment", "inline", "message", "file")
TOO_LARGE = "request size exceeds 52.4MiB limit"
PART_TOO_LARGE = "field size exceeds 30MiB limit"
NOT_GZIP = "Request body is not valid gzip"
INTERNAL_ERROR = "Internal Server Error"
MAX_QUERY_PARAMS = 100  # no Mailgun call takes more than a dozen
TOO_MANY_PARAMS = f"Too many query parameters: at most {MAX_QUERY_PARAMS}"
MAX_JSON_BYTES = 1024 * 1024  # a batch of 1000 suppressions with long errors fits
MAX_JSON_DEPTH = 32  # the deepest body any route takes is 3
JSON_TOO_LARGE = "JSON body size exceeds 1MiB limit"
JSON_TOO_DEEP = f"JSON body is nested deeper than {MAX_JSON_DEPTH} levels"
NOT_JSON = "Request body is not valid JSON"
GZIP_WBITS = 16 + zlib.MAX_WBITS  # a gzip header and trailer around deflate data
INFLATE_STEP = 1024 * 1024  # inflated bytes handed on at a time


class _Gunzip:
    """A gzip body inflated at most `INFLATE_STEP` bytes at a time: a few hundred KB can
    inflate to gigabytes, so no single step, the last one included, may produce more."""

    def __init__(self) -> None:
        self._inflate = zlib.decompressobj(GZIP_WBITS)
        self._input = b""  # compressed bytes received and not yet inflated
        self._last = False  # `_input` ends the body
        self._any = False  # an empty body is an empty body, not broken gzip

    @property
    def pending(self) -> bool:
        return bool(self._input)

    def feed(self, data: bytes, *, last: bool) -> None:
        self._input, self._last = data, last
        self._any = self._any or bool(data)

    def step(self) -> tuple[bytes, bool]:
        """The next piece of the inflated body, and whether more of it follows."""
        out = b""
        try:
            while not out and self._input:
                if self._inflate.eof:  # members may follow one another (RFC 1952 2.2)
                    self._inflate = zlib.decompressobj(GZIP_WBITS)
                out = self._inflate.decompress(self._input, INFLATE_STEP)
                self._input = (self._inflate.unused_data if self._inflate.eof
                               else self._inflate.unconsumed_tail)
        except zlib.error as exc:
            raise BadRequest(NOT_GZIP) from exc
        more = bool(self._input) or not self._last
        if not more and self._any and not self._inflate.eof:  # cut short
            raise BadRequest(NOT_GZIP)
        return out, more


def _limited(receive: Receive, *, gzip: bool, limit: int = MAX_REQUEST_BYTES,
             too_large: str = TOO_LARGE) -> Receive:
    """`receive`, refusing a body past `limit` as it arrives (chunked bodies declare no
    length) and inflating a gzip body, whose inflated size is what counts."""
    gunzip = _Gunzip() if gzip else None
    seen = 0

    async def limited() -> Message:
        nonlocal seen
        if gunzip is None or not gunzip.pending:
            message = await receive()
            if message["type"] != "http.request":
                return message
            body, more = message.get("body", b""), message.get("more_body", False)
            if gunzip is not None:
                gunzip.feed(body, last=not more)
        if gunzip is not None:
            body, more = gunzip.step()
        seen += len(body)
        if seen > limit:
            raise TooLarge(too_large)
        return {"type": "http.request", "body": body, "more_body": more}

    return limited


def _bounded(request: Request, limit: int, too_large: str) -> Request:
    """The request with a body that cannot grow past `limit`: refused at once when its
    Content-Length says so, else as it arrives (and inflates)."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise TooLarge(too_large)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip"):
        raise BadRequest(f"Unsupported Content-Encoding: {encoding}")
    return Request(request.scope, _limited(request.receive, gzip=encoding == "gzip",
                                           limit=limit, too_large=too_large))


async def read_body(request: Request, limit: int) -> bytes:
    """A small body whole, at most `limit` bytes (inflated): 413 past it, as it arrives."""
    return await _bounded(request, limit, f"request size exceeds {limit} bytes limit").body()


async def read_json(request: Request) -> Any:
    """The JSON body of any route that takes one, at most `MAX_JSON_BYTES` and
    `MAX_JSON_DEPTH` deep: parsed objects take ~10 times the text, and the parser recurses
    once per level."""
    data = await _bounded(request, MAX_JSON_BYTES, JSON_TOO_LARGE).body()
    try:
        text = data.decode("utf-8-sig")
        value = json.loads(text)
    except RecursionError as exc:
        raise BadRequest(JSON_TOO_DEEP) from exc
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError alike
        raise BadRequest(NOT_JSON) from exc
    if _json_depth(text) > MAX_JSON_DEPTH:
        raise BadRequest(JSON_TOO_DEEP)
    return value


_JSON_STRING = re.compile(r'"[^"]*"')  # once escaped quotes are gone
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_NESTING = {"[": 1, "{": 1, "]": -1, "}": -1}


def _json_depth(text: str) -> int:
    """How deep valid JSON nests, in C loops only (a 1 MiB body in well under 0.2 s): its
    brackets outside strings, summed. Escapes pair up from the left, as JSON reads them."""
    unescaped = text.replace("\\\\", "").replace('\\"', "")
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", unescaped))
    return max(accumulate(map(_NESTING.__getitem__, brackets)), default=0)


def json_as(shape: TypeAdapter[T], value: Any) -> T:
    """`value` (from `read_json`) checked against `shape`: a mismatch is a 400, worded as
    FastAPI words a body parameter's."""
    try:
        return shape.validate_python(value)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]) from exc


async def read_form(request: Request, limit: int = MAX_REQUEST_BYTES,
                    ) -> tuple[list[tuple[str, str]], list[tuple[str, Attachment]]]:
    """Fields and file parts of an urlencoded or multipart body, repeated fields kept; a
    route that takes a few short fields only reads up to its own smaller `limit`."""
    form = await _parsed_form(request, limit, max_files=2000, max_fields=20000)
    fields: list[tuple[str, str]] = []
    files: list[tuple[str, Attachment]] = []
    try:
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
    finally:
        await form.close()
    return fields, files


async def _parsed_form(request: Request, limit: int, *, max_files: int,
                       max_fields: int) -> FormData:
    """The body parsed as a form, at most `limit` bytes (413 past it, or past one part's
    MAX_PART_BYTES) and the given number of files and fields."""
    too_large = TOO_LARGE if limit == MAX_REQUEST_BYTES else \
        f"request size exceeds {limit // 1024}KiB limit"
    try:
        return await _bounded(request, limit, too_large).form(
            max_files=max_files, max_fields=max_fields, max_part_size=MAX_PART_BYTES)
    except StarletteHTTPException as exc:
        # Starlette's 400 for one field over `max_part_size`: too large, as a whole body is
        if "exceeded maximum size" in str(exc.detail):
            raise TooLarge(PART_TOO_LARGE) from exc
        raise


@asynccontextmanager
async def uploaded_file(request: Request, names: tuple[str, ...],
                        limit: int = MAX_REQUEST_BYTES) -> AsyncIterator[BinaryIO | None]:
    """The first file part of a multipart body named one of `names`, left where Starlette
    spooled it (memory up to 1 MiB, then a temporary file) for the caller to read a piece
    at a time: an import of many megabytes is never held whole. None if there is none."""
    form = await _parsed_form(request, limit, max_files=10, max_fields=100)
    try:
        yield next((value.file for key, value in form.multi_items()
                    if key in names and isinstance(value, UploadFile)), None)
    finally:
        await form.close()


_DB_THREADS = 8
_limiter: anyio.CapacityLimiter | None = None


async def in_thread(fn: Callable[[], T]) -> T:
    """Run blocking work (database, sealing) off the event loop, a few threads at a time:
    more threads than that only fight over the GIL and the database's write lock."""
    global _limiter
    if _limiter is None:
        _limiter = anyio.CapacityLimiter(_DB_THREADS)
    return await anyio.to_thread.run_sync(fn, limiter=_limiter)


def query_url(url: str, **params: object) -> str:
    """A paging link in Mailgun's query form; empty parameters are left out."""
    return f"{url}?{urlencode({k: v for k, v in params.items() if v})}"




def client_network(request: Request) -> str:
    """Who a request comes from, for limits (netpolicy.client_network). Behind a proxy,
    uvicorn takes the client from X-Forwarded-For when the proxy is in
    MAILHAVEN_FORWARDED_ALLOW_IPS (default loopback; empty: no proxy is trusted)."""
    return netpolicy.client_network(request.client.host if request.client else None)


def _is_send(request: Request) -> bool:
    return request.url.path.endswith(("/messages", "/messages.mime"))


def install(app: FastAPI) -> None:
    @app.exception_handler(MailhavenError)
    async def _domain_error(request: Request, exc: MailhavenError) -> Response:
        if exc.status == 401 and _is_send(request):
            return PlainTextResponse("Forbidden", status_code=401)
        headers = ({"Retry-After": str(exc.retry_after)}
                   if isinstance(exc, TooManyRequests) else None)
        return JSONResponse({exc.key: exc.message}, status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:])
        return JSONResponse({"message": f"Invalid parameter {where}: {first.get('msg', '')}"},
                            status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> Response:
        return JSONResponse({"message": str(exc.detail)}, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        # RequestLog answers first; this is for an error in the middleware itself.
        return answer_failure(request.scope, exc)

    app.add_middleware(RequestLog)


class RequestLog:
    """One JSON line and the metrics for every request; and no NUL in any URL.

    Plain ASGI rather than `@app.middleware`: Starlette's BaseHTTPMiddleware costs a task
    and a stream per request, a sixth of the event loop's time under load (BENCHMARKS.md).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"")
        refused = None
        if b"%00" in scope.get("raw_path", b"") + query:
            # PostgreSQL text cannot hold NUL, and no name, address or filter contains one.
            refused = "Invalid NUL byte in request URL"
        elif query.count(b"&") >= MAX_QUERY_PARAMS and _query_params(query) > MAX_QUERY_PARAMS:
            refused = TOO_MANY_PARAMS  # handlers may work once per value (stats: per event)
        if refused is not None:
            await JSONResponse({"message": refused}, 400)(scope, receive, send)
            return
        started = monotonic()
        status = 500
        responded = False

        async def send_and_note(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status, responded = message["status"], True
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        except Exception as exc:
            if responded:  # too late for a status: the client sees the connection close
                raise
            # Answered here rather than by Starlette's outermost handler, which re-raises
            # to the server, and uvicorn then drops the keep-alive connection.
            await answer_failure(scope, exc)(scope, receive, send_and_note)
        else:
            if status < 500:
                outage.answered()
        finally:
            elapsed = monotonic() - started
            route = _route_of(scope)
            HTTP_REQUESTS.labels(scope["method"], route, str(status)).inc()
            HTTP_SECONDS.labels(route).observe(elapsed)
            log.info(json.dumps({
                "kind": "request", "method": scope["method"], "route": route,
                "status": status, "ms": round(elapsed * 1000, 2),
                "account": scope.get("state", {}).get("account_id"),
            }))




def answer_failure(scope: Scope, exc: Exception) -> Response:
    """A request that failed: 503 with Retry-After when the database is unavailable (the
    client should try again; Mailgun's clients and SDKs retry a 503), else our 500."""
    if outage.refused(_route_of(scope), exc):
        return JSONResponse({"message": UNAVAILABLE}, status_code=503,
                            headers={"Retry-After": RETRY_AFTER_SECONDS})
    _log_unexpected(scope, exc)
    return JSONResponse({"message": INTERNAL_ERROR}, status_code=500)


def _log_unexpected(scope: Scope, exc: Exception) -> None:
    """Where it failed, without the exception's message: messages built from input can
    hold addresses."""
    log.error("%s\n%s", json.dumps({"kind": "error", "method": scope.get("method"),
                                     "route": _route_of(scope),
                                     "error": type(exc).__name__}), frames(exc))


def _query_params(query: bytes) -> int:
    return sum(1 for pair in query.split(b"&") if pair)


def _route_of(scope: Scope) -> str:
    # The route template, never the raw path: paths can carry addresses.
    return getattr(scope.get("route"), "path", "unmatched")


def form_body(fields: dict[str, str], *, required: tuple[str, ...] = ()) -> dict:
    """`openapi_extra` declaring a route's form body as Mailgun's clients send it,
    urlencoded or multipart: each field named with what it holds."""
    schema = {"type": "object", "required": list(required), "properties": {
        name: {"type": "string", "description": text} for name, text in fields.items()}}
    return {"requestBody": {"required": bool(required), "content": {
        "application/x-www-form-urlencoded": {"schema": schema},
        "multipart/form-data": {"schema": schema}}}}


def json_responses(examples: dict[int, tuple[str, object]]) -> dict[int | str, dict]:
    """`responses` for a route's documented statuses: each described, with an example body
    (Mailgun's `{"message": …}` for its errors)."""
    return {status: {"description": description,
                     "content": {"application/json": {"example": example}}}
            for status, (description, example) in examples.items()}
