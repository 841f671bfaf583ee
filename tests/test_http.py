"""What every route shares (mailhaven/http.py): request size limits on plain, gzip and JSON
bodies, and Mailgun's JSON errors on every failure path."""

from __future__ import annotations

import functools
import socket
import time
import tracemalloc
import zlib
from collections.abc import Iterator

import anyio
import httpx
import pytest
from fastapi import Depends, Request

from mailhaven.errors import TooLarge
from mailhaven.http import (
    JSON_TOO_DEEP,
    JSON_TOO_LARGE,
    NOT_JSON,
    TOO_LARGE,
    _limited,
    read_json,
)
from tests.support import LiveServer

MiB = 1024 * 1024


def _gzip(*pieces: bytes) -> bytes:
    """One gzip member made of `pieces`, compressed as hard as zlib can."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return b"".join(deflate.compress(p) for p in pieces) + deflate.flush()


@functools.cache
def _bomb(inflated: int) -> bytes:
    """An urlencoded body of many 8 MiB fields (no field is over the per-field limit, the
    whole is over the request limit), gzipped to a few hundred KB."""
    field = b"text=" + b"x" * (8 * MiB) + b"&"
    return _gzip(*[field] * (inflated // len(field) + 1))


class Memory:
    """Python allocations (tracemalloc) in this process, where the live server runs in a
    thread: how far they grew past what was held at `reset`."""

    def reset(self) -> None:
        tracemalloc.reset_peak()
        self._held = tracemalloc.get_traced_memory()[0]

    def growth(self) -> int:
        return tracemalloc.get_traced_memory()[1] - self._held


@pytest.fixture
def memory() -> Iterator[Memory]:
    tracemalloc.start()
    try:
        watch = Memory()
        watch.reset()
        yield watch
    finally:
        tracemalloc.stop()


def _raw_post(port: int, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
    """The head first, then the whole body in one write a moment later, so that the server
    reads the body as one chunk (it reads up to 256 KiB at a time); answers status, body."""
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall((f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                      f"Content-Length: {len(body)}\r\n{head}\r\n").encode())
        time.sleep(0.2)
        sock.sendall(body)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:  # closed with the body unread: the answer came first
            pass
    status = int(answer.split(b" ", 2)[1])
    return status, answer.partition(b"\r\n\r\n")[2]


# -- gzip ---------------------------------------------------------------------------------
GZIP_FORM = {"Content-Type": "application/x-www-form-urlencoded", "Content-Encoding": "gzip"}


def test_a_gzip_bomb_in_one_chunk_is_413_with_bounded_memory(live, memory) -> None:
    """The attack, unauthenticated: 60 KB on the wire, read by the server as one chunk,
    inflating to 60 MB; the old code inflated the last chunk whole (`flush()`), whatever
    its size, on top of what the limit had let through."""
    bomb = _bomb(60 * MiB)
    assert len(bomb) < 64 * 1024
    memory.reset()
    status, body = _raw_post(live.port, "/v1/privacy/requests", GZIP_FORM, bomb)
    # The form reads at most 64 KiB (inflated) of its few fields.
    assert (status, body) == (413, b'{"message":"request size exceeds 64KiB limit"}')
    assert memory.growth() < 30 * MiB  # flush() once inflated all 60 MiB here


def test_a_gzip_bomb_in_several_chunks_is_413_with_bounded_memory(api, domain,
                                                                  memory) -> None:
    """Harmless chunks first, the bomb in the last one."""
    def chunks() -> Iterator[bytes]:
        # The same member cut in pieces: a tiny head, then the rest, a moment apart.
        whole = _gzip(b"from=a%40mg.acme.test&to=ann%40example.org&",
                      *[b"text=" + b"x" * (8 * MiB) + b"&"] * 10)
        for start in range(0, 64, 16):
            yield whole[start:start + 16]
            time.sleep(0.02)
        yield whole[64:]

    memory.reset()
    reply = api.post(f"/v3/{domain}/messages", content=chunks(), headers=GZIP_FORM)
    assert (reply.status_code, reply.json()) == (413, {"message": TOO_LARGE})
    assert memory.growth() < 100 * MiB


def test_a_multipart_gzip_bomb_is_413(api, domain, memory) -> None:
    """An attachment of 64 MiB of zeros, gzipped to 64 KB."""
    head = (b"--zzz\r\nContent-Disposition: form-data; name=\"attachment\"; "
            b"filename=\"zeros.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n")
    bomb = _gzip(head, *[bytes(8 * MiB)] * 8, b"\r\n--zzz--\r\n")
    memory.reset()
    reply = api.post(f"/v3/{domain}/messages", content=bomb, headers={
        "Content-Type": "multipart/form-data; boundary=zzz", "Content-Encoding": "gzip"})
    assert (reply.status_code, reply.json()) == (413, {"message": TOO_LARGE})
    assert memory.growth() < 100 * MiB


@pytest.mark.parametrize("pieces", [1, 40])
def test_every_inflating_step_is_bounded_the_last_included(pieces, memory) -> None:
    """The same attack at the ASGI boundary, where the chunking is exact: 200 KB inflating
    to 200 MB in one message, or in 40."""
    bomb = _bomb(200 * MiB)
    size = -(-len(bomb) // pieces)
    messages = [{"type": "http.request", "body": bomb[i:i + size],
                 "more_body": i + size < len(bomb)} for i in range(0, len(bomb), size)]

    async def receive() -> dict:
        return messages.pop(0)

    async def drain() -> None:
        receive_body = _limited(receive, gzip=True)  # type: ignore[arg-type]
        while (await receive_body())["more_body"]:
            pass

    memory.reset()
    with pytest.raises(TooLarge):
        anyio.run(drain)
    assert memory.growth() < 8 * MiB


def test_a_gzip_body_of_several_members_is_read_whole(api, domain) -> None:
    """RFC 1952 allows members one after another (`cat a.gz b.gz`), as gzip -d reads them."""
    body = (_gzip(b"from=a%40mg.acme.test&to=ann%40example.org&")
            + _gzip(b"subject=Two+members&text=hello"))
    reply = api.post(f"/v3/{domain}/messages", content=body, headers=GZIP_FORM)
    assert reply.status_code == 200, reply.text


@pytest.mark.parametrize("body", [
    pytest.param(lambda: _gzip(b"text=hello")[:-10], id="truncated"),
    pytest.param(lambda: _gzip(b"text=hello") + b"garbage", id="trailing-garbage"),
    pytest.param(lambda: b"\x1f\x8b\x08\x00garbage", id="bad-deflate"),
])
def test_a_broken_gzip_body_is_400(api, domain, body) -> None:
    reply = api.post(f"/v3/{domain}/messages", content=body(), headers=GZIP_FORM)
    assert (reply.status_code, reply.json()) == (400, {"message": "Request body is not valid gzip"})


def test_a_field_over_the_per_field_limit_is_413(api, domain) -> None:
    """One urlencoded field inflating past 30 MiB: too large, as the whole request would be."""
    bomb = _gzip(b"text=" + b"x" * (40 * MiB))
    reply = api.post(f"/v3/{domain}/messages", content=bomb, headers=GZIP_FORM)
    assert reply.status_code == 413, reply.text
    assert "message" in reply.json()


# -- JSON ---------------------------------------------------------------------------------
JSON_ROUTES = [("POST", "/v3/mg.acme.test/bounces"), ("PUT", "/v1/privacy/retention")]
JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize(("method", "path"), JSON_ROUTES)
def test_a_json_body_over_1_mib_is_413_before_it_is_read_whole(api, domain, method, path,
                                                                memory) -> None:
    """The attack sent 200 MB; 20 MB show it as well: with a Content-Length, refused before
    the body is read; chunked (no length), refused once 1 MiB has come."""
    big = b'[{"address": "a@example.com", "error": "' + b"x" * (20 * MiB) + b'"}]'
    reply = api.request(method, path, content=big, headers=JSON)
    assert (reply.status_code, reply.json()) == (413, {"message": JSON_TOO_LARGE})

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), MiB):
            yield big[start:start + MiB]

    memory.reset()
    reply = api.request(method, path, content=chunks(), headers=JSON)
    assert (reply.status_code, reply.json()) == (413, {"message": JSON_TOO_LARGE})
    assert memory.growth() < 8 * MiB


@pytest.mark.parametrize(("method", "path"), JSON_ROUTES)
def test_a_gzip_json_bomb_is_413(api, domain, method, path) -> None:
    bomb = _gzip(b'[{"address": "a@example.com", "error": "', b"x" * (8 * MiB), b'"}]')
    reply = api.request(method, path, content=bomb,
                        headers={**JSON, "Content-Encoding": "gzip"})
    assert (reply.status_code, reply.json()) == (413, {"message": JSON_TOO_LARGE})


@pytest.mark.parametrize(("method", "path"), JSON_ROUTES)
@pytest.mark.parametrize("body", [
    pytest.param(b"[" * 100_000, id="100000-open"),
    pytest.param(b"[" * 100_000 + b"]" * 100_000, id="100000-deep"),
    pytest.param(b"[" * 33 + b"]" * 33, id="33-deep"),
    pytest.param(b'{"a":' * 40 + b"1" + b"}" * 40, id="40-objects-deep")])
def test_deeply_nested_json_is_400_not_500(api, domain, method, path, body) -> None:
    reply = api.request(method, path, content=body, headers=JSON)
    assert (reply.status_code, reply.json()) == (400, {"message": JSON_TOO_DEEP})


def test_brackets_in_json_strings_are_text_not_nesting(api, domain) -> None:
    record = {"address": "ann@example.org", "code": "550", "error": '[{"\\' * 50 + '\\"[' * 50}
    reply = api.post(f"/v3/{domain}/bounces", json=[record])
    assert reply.status_code == 200, reply.text
    assert api.get(f"/v3/{domain}/bounces/ann@example.org").json()["error"] == record["error"]


@pytest.mark.parametrize(("method", "path"), JSON_ROUTES)
@pytest.mark.parametrize("body", [b"", b"{", b"\xff\xfe", b'{"a": 1} x', b"NaN-ish"],
                         ids=["empty", "cut-short", "not-utf8", "trailing-text", "not-json"])
def test_broken_json_is_400(api, domain, method, path, body) -> None:
    reply = api.request(method, path, content=body, headers=JSON)
    assert (reply.status_code, reply.json()) == (400, {"message": NOT_JSON})


def test_a_gzip_json_body_within_the_limits_is_read(api, domain) -> None:
    body = _gzip(b'[{"address": "ann@example.org"}, {"address": "bob@example.org"}]')
    reply = api.post(f"/v3/{domain}/complaints", content=body,
                     headers={**JSON, "Content-Encoding": "gzip"})
    assert reply.status_code == 200, reply.text
    assert reply.json()["message"].startswith("2 ")


# -- never a traceback ---------------------------------------------------------------------
def test_an_unexpected_error_anywhere_is_a_json_500_that_tells_nothing(services,
                                                                       caplog) -> None:
    """Routes of our own added to the real app, failing as a bug would: in the handler, in
    a dependency, by recursion, while reading the body. Each is a JSON 500; the connection
    stays open for the next request; the log says where, not the message (which may hold
    an address)."""
    victim = "ann@example.org"

    def fails() -> None:
        raise RuntimeError(f"{victim} broke it")

    def recurses() -> None:
        raise RecursionError("maximum recursion depth exceeded")

    async def reads(request: Request) -> None:
        await read_json(request)
        raise KeyError(victim)

    server = LiveServer(services)
    app = server.server.config.app
    app.add_api_route("/test/fails", fails)
    app.add_api_route("/test/dependency", lambda _=Depends(fails): None)
    app.add_api_route("/test/recurses", recurses)
    app.add_api_route("/test/reads", reads, methods=["POST"])
    with server, httpx.Client(base_url=server.base_url) as client:
        for reply in (client.get("/test/fails"), client.get("/test/dependency"),
                      client.get("/test/recurses"), client.post("/test/reads", json={})):
            assert (reply.status_code, reply.json()) == (
                500, {"message": "Internal Server Error"}), reply.request.url
            assert reply.headers["content-type"] == "application/json"
        assert client.get("/healthz").status_code == 200
        assert client.get("/test/fails").status_code == 500
        assert client.get("/healthz").status_code == 200
    logged = caplog.text
    assert "RuntimeError" in logged and "KeyError" in logged and "in fails" in logged
    assert victim not in logged
