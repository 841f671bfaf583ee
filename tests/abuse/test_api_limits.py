"""Abuse of the HTTP API (issue 16, item 4): each limit answered as Mailgun answers, and
the work and memory one request can cost bounded. Limits tested elsewhere are cited in
docs/security.md, "Limits at every door"."""

from __future__ import annotations

import base64
import dataclasses
import json
import tracemalloc
from collections.abc import Iterator

import httpx
import pytest

from mailhaven.deps import TOO_MANY_FAILURES
from mailhaven.sending.request import (
    RECIPIENT_VARIABLES_TOO_LARGE,
    TOO_MANY_RECIPIENT_VARIABLES,
)
from mailhaven.suppressions.service import CSV_TOO_MANY_ROWS
from tests.support import LiveServer
from tests.test_http import _raw_post

MiB = 1024 * 1024
WRONG = ("api", "key-" + "0" * 40)
SEND = {"from": "ann@mg.acme.test", "to": "bob@example.org", "subject": "Hi", "text": "x"}


def test_wrong_keys_past_the_limit_are_429_with_retry_after_the_window_s_rest(
        live, clock, domain) -> None:
    with httpx.Client(base_url=live.base_url, auth=WRONG) as wrong:
        for _ in range(20):
            assert wrong.get("/v3/domains").status_code == 401
        refused = wrong.get("/v3/domains")
        assert (refused.status_code, refused.json()) == (429, {"message": TOO_MANY_FAILURES})
        assert refused.headers["Retry-After"] == "60"
        clock.advance(45)
        assert wrong.post(f"/v3/{domain}/messages", data=SEND).headers["Retry-After"] == "15"


def test_the_wrong_key_limit_is_a_setting(services, domain) -> None:
    strict = dataclasses.replace(services, settings=services.settings.with_(
        api_auth_failures_per_minute=3))
    with LiveServer(strict) as live, httpx.Client(base_url=live.base_url, auth=WRONG) as wrong:
        assert [wrong.get("/v3/domains").status_code for _ in range(4)] == [401] * 3 + [429]


def _batch(recipients: int, filler: int = 0) -> dict[str, str]:
    variables = {f"r{n}@example.org": {"id": n, "pad": "x" * filler} for n in range(recipients)}
    return {**SEND, "to": "r0@example.org", "recipient-variables": json.dumps(variables)}


def test_recipient_variables_are_bounded_in_size_and_in_recipients(api, domain) -> None:
    big = api.post(f"/v3/{domain}/messages", files={"x": ("", b"")}, data=_batch(2, 3 * MiB))
    assert (big.status_code, big.json()) == (413, {"message": RECIPIENT_VARIABLES_TOO_LARGE})
    many = api.post(f"/v3/{domain}/messages", data=_batch(1001))
    assert (many.status_code, many.json()) == (400, {"message": TOO_MANY_RECIPIENT_VARIABLES})
    assert api.post(f"/v3/{domain}/messages", data=_batch(1000)).status_code == 200


def test_a_form_of_too_many_parts_or_fields_is_400(api, domain) -> None:
    files = [("attachment", (f"{n}.txt", b"x", "text/plain")) for n in range(2001)]
    parts = api.post(f"/v3/{domain}/messages", data=SEND, files=files)
    assert parts.status_code == 400
    assert parts.json() == {"message": "Too many files. Maximum number of files is 2000."}
    fields = api.post(f"/v3/{domain}/messages", content="&".join(["v:a=1"] * 20001),
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert fields.status_code == 400
    assert fields.json() == {"message": "Too many fields. Maximum number of fields is 20000."}


@dataclasses.dataclass
class Capped:
    client: httpx.Client
    port: int
    authorization: str


@pytest.fixture
def capped(services, account, domain) -> Iterator[Capped]:
    """The API with a suppressions import capped at 10 rows."""
    capped = dataclasses.replace(services, settings=services.settings.with_(
        csv_import_max_rows=10))
    with LiveServer(capped) as live, live.client(account[1]) as client:
        key = base64.b64encode(f"api:{account[1]}".encode()).decode()
        yield Capped(client, live.port, f"Basic {key}")


def _rows(count: int, start: int = 0) -> bytes:
    return b"".join(b"a%d@example.org,550,gone\n" % n for n in range(start, start + count))


def test_a_csv_import_past_its_row_cap_is_400_and_adds_nothing(capped, domain) -> None:
    csv = b"address,code,error\n" + _rows(11)
    reply = capped.client.post(f"/v3/{domain}/bounces/import", files={"file": ("b.csv", csv)})
    assert (reply.status_code, reply.json()) == (400, {"message": CSV_TOO_MANY_ROWS.format(10)})
    assert capped.client.get(f"/v3/{domain}/bounces").json()["items"] == []
    reply = capped.client.post(f"/v3/{domain}/bounces/import",
                        files={"file": ("b.csv", b"address,code,error\n" + _rows(10))})
    assert reply.status_code == 202
    listed = capped.client.get(f"/v3/{domain}/bounces", params={"limit": 100}).json()
    assert len(listed["items"]) == 10


def test_a_csv_import_is_read_a_row_at_a_time_not_whole(capped, domain) -> None:
    """12 MB of rows past the cap: refused at the 11th, the file never held in memory (it
    was read whole, then decoded whole: twice its size)."""
    csv = b"address,code,error\n" + _rows(11) + b"a@example.org,550,x\n" * (12 * MiB // 20)
    body = (b'--zzz\r\nContent-Disposition: form-data; name="file"; filename="b.csv"\r\n'
            b"Content-Type: text/csv\r\n\r\n" + csv + b"\r\n--zzz--\r\n")
    tracemalloc.start()
    try:
        held = tracemalloc.get_traced_memory()[0]
        status, answer = _raw_post(capped.port, f"/v3/{domain}/bounces/import", {
            "Content-Type": "multipart/form-data; boundary=zzz",
            "Authorization": capped.authorization}, body)
        growth = tracemalloc.get_traced_memory()[1] - held
    finally:
        tracemalloc.stop()
    assert (status, json.loads(answer)) == (400, {"message": CSV_TOO_MANY_ROWS.format(10)})
    assert growth < 6 * MiB  # the old code grew by three times the file
