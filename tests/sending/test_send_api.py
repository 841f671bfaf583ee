"""`POST /v3/{domain}/messages` and `/messages.mime` as Mailgun clients send them.

Every request goes over HTTP to the live server; every delivery lands in an aiosmtpd sink.
"""

from __future__ import annotations

import base64
import gzip
import json
import socket
from collections.abc import Iterable
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses
from urllib.parse import urlencode

import dkim
import httpx
import pytest
from sqlalchemy import select

from mailhaven.clock import format_rfc2822
from mailhaven.errors import BadRequest
from mailhaven.messages.document import Document
from mailhaven.messages.models import Message
from mailhaven.sending.request import build_request
from mailhaven.vault import VaultKey
from tests.support import Received, Sink, deliver_due

FROM = "Acme <news@mg.acme.test>"
BODY_MISSING = "Need at least one of 'text', 'html', 'amp-html' or 'template' parameters specified"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5E"
    "rkJggg==")
EVERY_BYTE = bytes(range(256)) * 4


# -- helpers ------------------------------------------------------------------------------
def _as_data(fields: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """httpx sends a dict of lists as repeated fields, in order, as `requests` does."""
    data: dict[str, list[str]] = {}
    for key, value in fields:
        data.setdefault(key, []).append(value)
    return data


def send(api: httpx.Client, domain: str, fields: Iterable[tuple[str, str]], *,
         encoding: str = "urlencoded", files: list | None = None,
         path: str = "messages") -> httpx.Response:
    """POST the fields urlencoded, or multipart (each field its own part, like curl -F)."""
    url = f"/v3/{domain}/{path}"
    if encoding == "multipart" or files:
        parts = [(k, (None, v)) for k, v in fields] + list(files or [])
        return api.post(url, files=parts)
    return api.post(url, data=_as_data(fields))


def queued(reply: httpx.Response) -> str:
    """The message id of a 200, after checking the body is exactly Mailgun's."""
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert set(body) == {"id", "message"}
    assert body["message"] == "Queued. Thank you."
    assert body["id"].startswith("<") and body["id"].endswith(">")
    return body["id"]


def delivered(services) -> list[Received]:  # type: ignore[no-untyped-def]
    with Sink() as sink:
        deliver_due(services, sink)
    return sink.received


def by_rcpt(received: list[Received]) -> dict[str, Received]:
    copies = {}
    for got in received:
        assert len(got.rcpt_tos) == 1
        copies[got.rcpt_tos[0]] = got
    assert len(copies) == len(received), "a recipient got two copies"
    return copies


def events(api: httpx.Client, domain: str, **filters: str) -> list[dict]:
    reply = api.get(f"/v3/{domain}/events", params={"ascending": "yes", "limit": 300, **filters})
    assert reply.status_code == 200, reply.text
    return reply.json()["items"]


def not_rejected(api: httpx.Client, domain: str) -> list[dict]:
    """Events other than `rejected`: what a refused send must not have produced."""
    return [e for e in events(api, domain) if e["event"] != "rejected"]


def addresses(header: str | None) -> list[str]:
    return sorted(addr for _, addr in getaddresses([header or ""]))


def minimal(**fields: str) -> list[tuple[str, str]]:
    """A small valid send; keyword arguments replace or add fields."""
    return list({"from": FROM, "to": "ann@example.org", "subject": "Hi", "text": "Hello",
                 **fields}.items())


@pytest.fixture(params=["urlencoded", "multipart"])
def encoding(request: pytest.FixtureRequest) -> str:
    return request.param


# -- 400s ---------------------------------------------------------------------------------
NOT_AN_ADDRESS = "{} parameter is not a valid address. please check documentation"
OPTIONS_TOO_LARGE = ("Send options (parameters starting with o:, h:, or v:) are limited to 16KB "
                     "total")
REFUSED: dict[str, tuple[list[tuple[str, str]], str]] = {
    "no-from": ([("to", "ann@example.org"), ("text", "x")], "from parameter is missing"),
    "blank-from": ([("from", " "), ("to", "ann@example.org"), ("text", "x")],
                   "from parameter is missing"),
    "no-to": ([("from", FROM), ("text", "x")], "to parameter is missing"),
    "empty-to": ([("from", FROM), ("to", ""), ("text", "x")], "to parameter is missing"),
    "only-commas-to": ([("from", FROM), ("to", " , ,"), ("text", "x")],
                       "to parameter is missing"),
    "no-body": ([("from", FROM), ("to", "ann@example.org"), ("subject", "s")], BODY_MISSING),
    "empty-body": ([("from", FROM), ("to", "ann@example.org"), ("text", ""), ("html", "")],
                   BODY_MISSING),
    "rv-not-json": (minimal(**{"recipient-variables": "{not json"}),
                    "'recipient-variables' parameter is not a valid JSON"),
    "rv-array": (minimal(**{"recipient-variables": '["ann@example.org"]'}),
                 "'recipient-variables' parameter is not a valid JSON"),
    "rv-not-objects": (minimal(**{"recipient-variables": '{"ann@example.org": "x"}'}),
                       "'recipient-variables' parameter is not a valid JSON"),
    "rv-too-deep": (minimal(**{"recipient-variables": "[" * 100_000}),
                    "'recipient-variables' parameter is not a valid JSON"),
    "to-invalid": (minimal(to="ann"), NOT_AN_ADDRESS.format("to")),
    "to-second-invalid": (minimal(to="ann@example.org, bob@"), NOT_AN_ADDRESS.format("to")),
    "to-two-in-one": (minimal(to="ann@example.org bob@example.org"),
                      NOT_AN_ADDRESS.format("to")),
    "to-space-in-domain": (minimal(to="ann@exa mple.org"), NOT_AN_ADDRESS.format("to")),
    "to-domain-too-long": (minimal(to="ann@" + "x" * 250 + ".org"), NOT_AN_ADDRESS.format("to")),
    "to-nul": (minimal(to="ann\x00@example.org"), NOT_AN_ADDRESS.format("to")),
    "cc-invalid": (minimal(cc="Carl <carl@>"), NOT_AN_ADDRESS.format("cc")),
    "bcc-invalid": (minimal(bcc="dan at example.org"), NOT_AN_ADDRESS.format("bcc")),
    "from-invalid": (minimal(**{"from": "Acme"}), NOT_AN_ADDRESS.format("from")),
    "options-over-16kb": (minimal(**{"v:big": "x" * (16 * 1024)}), OPTIONS_TOO_LARGE),
    "options-over-16kb-in-bytes": (
        [*minimal(), *[(f"h:X-H{i}", "é" * 300) for i in range(30)]], OPTIONS_TOO_LARGE),
    "deliverytime-garbage": (minimal(**{"o:deliverytime": "tomorrow at noon"}),
                             "o:deliverytime is not a valid RFC 2822 date"),
    "header-name-space": (minimal(**{"h:X Bad": "v"}), "Header name is not valid: X Bad"),
    "header-name-non-ascii": (minimal(**{"h:X-Ünï": "v"}),
                              "Header name must be pure ASCII: X-Ünï"),
    "message-id-too-long": (minimal(**{"h:Message-ID": f"<{'x' * 300}@acme.test>"}),
                            "h:Message-ID is not a valid message id"),
}


def test_invalid_sends_get_mailgun_400_bodies(api, domain) -> None:
    wrong = []
    for case, (fields, message) in REFUSED.items():
        for encoding in ("urlencoded", "multipart"):
            reply = send(api, domain, fields, encoding=encoding)
            if (reply.status_code, reply.json()) != (400, {"message": message}):
                wrong.append((case, encoding, reply.status_code, reply.text))
    assert wrong == []
    assert not_rejected(api, domain) == []
    reasons = [e["reject"]["reason"] for e in events(api, domain, event="rejected")]
    assert reasons == [message for _, message in REFUSED.values() for _ in range(2)]


def test_more_than_1000_recipients_is_refused(api, domain) -> None:
    to = [f"user{i}@example.org" for i in range(1001)]
    for fields in (
        [("from", FROM), *[("to", a) for a in to], ("text", "x")],
        [("from", FROM), ("to", ", ".join(to)), ("text", "x")],
        [("from", FROM), ("to", ", ".join(to[:600])), ("cc", ", ".join(to[600:900])),
         ("bcc", ", ".join(to[900:])), ("text", "x")],
        # parsing stops at the 1001st address: what follows is never looked at
        [("from", FROM), ("to", ", ".join([*to, "not an address"])), ("text", "x")],
    ):
        reply = send(api, domain, fields)
        assert reply.status_code == 400
        assert reply.json() == {"message": "Too many recipients, max is 1000"}
    assert not_rejected(api, domain) == []


def test_address_lists_longer_than_1000_recipients_can_be_are_refused_unread(
        api, domain) -> None:
    """The parse loop costs CPU by the character: 512 KB is past any 1000 real addresses."""
    junk = "x" * (512 * 1024)
    for fields in (
        [("from", FROM), ("to", f"ann@example.org, {junk}"), ("text", "x")],
        [("from", FROM), ("to", "ann@example.org"), ("cc", junk[:300_000]),
         ("bcc", junk[:300_000]), ("text", "x")],
    ):
        reply = send(api, domain, fields)
        assert (reply.status_code, reply.json()) == (
            400, {"message": "Too many recipients, max is 1000"})
    reply = send(api, domain, minimal(**{"from": f"a@mg.acme.test{junk}"}))
    assert (reply.status_code, reply.json()) == (400, {"message": NOT_AN_ADDRESS.format("from")})
    assert not_rejected(api, domain) == []


def test_a_refused_send_reports_no_more_recipients_than_a_send_may_have(api, domain) -> None:
    to = ", ".join(f"user{i}@example.org" for i in range(1500))
    reply = send(api, domain, [("from", FROM), ("to", to), ("text", "x")])
    assert reply.status_code == 400
    [rejected] = events(api, domain, event="rejected")
    named = addresses(rejected["message"]["headers"]["to"])
    assert len(named) == 1000
    assert rejected["recipient"] == "user0@example.org"


def test_a_refused_send_queues_nothing(api, services, domain) -> None:
    send(api, domain, [("from", FROM), ("to", "ann@example.org")])
    assert not_rejected(api, domain) == []
    [rejected] = events(api, domain)
    assert rejected["event"] == "rejected" and rejected["recipient"] == "ann@example.org"
    assert delivered(services) == []


def test_messages_mime_needs_a_message_and_recipients(api, domain) -> None:
    mime = ("message", ("m.eml", b"From: a@mg.acme.test\r\nSubject: s\r\n\r\nbody\r\n",
                        "message/rfc822"))
    reply = send(api, domain, [("to", "ann@example.org")], path="messages.mime",
                 encoding="multipart")
    assert (reply.status_code, reply.json()) == (400, {"message": "message parameter is missing"})
    reply = send(api, domain, [], files=[mime], path="messages.mime")
    assert (reply.status_code, reply.json()) == (400, {"message": "to parameter is missing"})


# -- 404 and 413 --------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["messages", "messages.mime"])
def test_unknown_domain_is_404_with_its_name(api, path) -> None:
    files = [("message", ("m.eml", b"Subject: s\r\n\r\nx\r\n", "message/rfc822"))]
    reply = send(api, "nope.example.net", minimal(), path=path, files=files)
    assert reply.status_code == 404
    assert reply.json() == {"message": "Domain not found: nope.example.net"}


def test_a_message_over_25mb_is_413(api, services, domain) -> None:
    big = b"\0" * (25 * 1024 * 1024 + 1)
    reply = send(api, domain, minimal(), files=[("attachment", ("big.bin", big, "x/y"))])
    assert reply.status_code == 413, reply.text
    assert not_rejected(api, domain) == []


def test_a_request_declaring_more_than_52_4_mib_is_413_before_its_body(live, account,
                                                                        domain) -> None:
    """The limit is checked on Content-Length: the 60 MB are never sent, nor read."""
    token = base64.b64encode(f"api:{account[1]}".encode()).decode()
    head = (f"POST /v3/{domain}/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Basic {token}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {60 * 1024 * 1024}\r\n\r\nfrom=a%40b.test&").encode()
    with socket.create_connection(("127.0.0.1", live.port), timeout=30) as sock:
        sock.sendall(head)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.split()[1] == b"413", answer


def test_a_chunked_request_over_52_4_mib_is_413(api, domain) -> None:
    """No Content-Length to trust: the body itself is counted as it arrives."""
    def body() -> Iterable[bytes]:
        yield b"from=a%40mg.acme.test&to=ann%40example.org&text="
        for _ in range(52):
            yield b"x" * (1024 * 1024) + b"&text="
        yield b"x" * 500 * 1024  # past 52.4 MiB only with these last bytes

    reply = api.post(f"/v3/{domain}/messages", content=body(),
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert reply.status_code == 413, reply.text


# -- never a 500 --------------------------------------------------------------------------
MALFORMED: dict[str, tuple[str | None, bytes]] = {
    "empty-no-type": (None, b""),
    "empty-urlencoded": ("application/x-www-form-urlencoded", b""),
    "multipart-no-boundary": ("multipart/form-data", b"--x\r\n"),
    "multipart-garbage": ("multipart/form-data; boundary=zzz", b"garbage garbage"),
    "multipart-truncated": (
        "multipart/form-data; boundary=zzz",
        b"--zzz\r\nContent-Disposition: form-data; name=\"to\"\r\n\r\nann@exa"),
    "multipart-non-utf8": (
        "multipart/form-data; boundary=zzz",
        b"--zzz\r\nContent-Disposition: form-data; name=\"from\"\r\n\r\n\xff\xfe\x00\r\n"
        b"--zzz\r\nContent-Disposition: form-data; name=\"to\"\r\n\r\nann@example.org\r\n"
        b"--zzz\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\n\xc3\x28\r\n"
        b"--zzz--\r\n"),
    "multipart-unknown-charset": (
        "multipart/form-data; boundary=zzz; charset=klingon",
        b"--zzz\r\nContent-Disposition: form-data; name=\"to\"\r\n\r\n\xff\r\n--zzz--\r\n"),
    "multipart-part-without-name": (
        "multipart/form-data; boundary=zzz",
        b"--zzz\r\nContent-Disposition: form-data\r\n\r\nx\r\n--zzz--\r\n"),
    "urlencoded-non-utf8-and-bad-escape": ("application/x-www-form-urlencoded",
                                           b"from=%ff%fe&to=%c3%28&text=%"),
    "urlencoded-garbage": ("application/x-www-form-urlencoded", b"&&&===&to"),
    "recipient-variables-non-utf8": (
        "application/x-www-form-urlencoded",
        b"from=a%40mg.acme.test&to=ann%40example.org&text=x&recipient-variables=%ff"),
    "json": ("application/json", b'{"from": "a@mg.acme.test", "to": "ann@example.org"}'),
    "binary-text-plain": ("text/plain", b"\xff\x00\x01"),
    "urlencoded-binary": ("application/x-www-form-urlencoded", b"\xff\xfe\xfd"),
}


def test_malformed_bodies_are_400_not_500(api, domain) -> None:
    wrong = []
    for case, (content_type, body) in MALFORMED.items():
        headers = {"Content-Type": content_type} if content_type else {}
        for path in ("messages", "messages.mime"):
            reply = api.post(f"/v3/{domain}/{path}", content=body, headers=headers)
            if reply.status_code != 400 or "message" not in reply.json():
                wrong.append((case, path, reply.status_code, reply.text))
    assert wrong == []


def test_a_gzip_body_is_accepted_and_a_broken_one_is_400(api, services, domain) -> None:
    body = urlencode(minimal(subject="Squeezed")).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded",
               "Content-Encoding": "gzip"}
    queued(api.post(f"/v3/{domain}/messages", content=gzip.compress(body), headers=headers))
    (got,) = delivered(services)
    assert got.message["Subject"] == "Squeezed"
    reply = api.post(f"/v3/{domain}/messages", content=body, headers=headers)
    assert (reply.status_code, reply.json()) == (400, {"message": "Request body is not valid gzip"})


def test_a_gzip_bomb_is_413(api, domain) -> None:
    bomb = gzip.compress(b"text=" + b"x" * (60 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 1024 * 1024
    reply = api.post(f"/v3/{domain}/messages", content=bomb, headers={
        "Content-Type": "application/x-www-form-urlencoded", "Content-Encoding": "gzip"})
    assert reply.status_code == 413, reply.text


def test_other_methods_on_messages_are_405(api, domain) -> None:
    for method in ("GET", "PUT", "DELETE", "PATCH"):
        reply = api.request(method, f"/v3/{domain}/messages")
        assert (reply.status_code, reply.json()) == (405, {"message": "Method Not Allowed"})


def test_odd_domain_names_in_the_path_are_404(api) -> None:
    for name in ("x" * 400 + ".test", "%ff%fe.test", "mg.acme.test.", "mg.acme.test.org"):
        reply = api.post(f"/v3/{name}/messages", data=dict(minimal()))
        assert reply.status_code == 404, (name, reply.text)
        assert reply.json()["message"].startswith("Domain not found: ")


def test_a_nul_byte_in_the_url_is_400(api, domain) -> None:
    """PostgreSQL can't compare text with NUL in it; it must never get that far."""
    reply = api.post("/v3/mg%00.acme.test/messages", data=dict(minimal()))
    assert reply.status_code == 400
    assert reply.json() == {"message": "Invalid NUL byte in request URL"}
    reply = api.get(f"/v3/{domain}/events", params={"event": "deli\x00vered"})
    assert reply.status_code == 400


# Each accepted, and each must really leave: one copy, one of each unique header, nothing
# injected. Keys are the recipients' local parts.
ODD_BUT_VALID: dict[str, dict[str, str]] = {
    "subject-crlf": {"subject": "Line one\r\nBcc: evil@attacker.test"},
    "subject-controls": {"subject": "Tab\tand\x00nul\x1b"},
    "header-injection": {"h:X-Custom": "a\r\nBcc: evil@attacker.test"},
    "reply-to-garbage": {"h:Reply-To": "not an address"},
    "date-garbage": {"h:Date": "yesterday"},
    "subject-header": {"h:Subject": "Overridden"},
    "to-header": {"h:To": "Undisclosed recipients:;"},
    "from-header": {"h:From": "Other <other@mg.acme.test>"},
    "content-type-header": {"h:Content-Type": "text/html"},
    "long-header": {"h:X-Long": "y" * 5000},
    "empty-header": {"h:X-Empty": ""},
    "nameless-header": {"h:": "nameless"},
    "nameless-variable": {"v:": "nameless"},
    "empty-tag": {"o:tag": ""},
    "long-tag": {"o:tag": "x" * 2000},
    "deliverytime-0000": {},  # a day ahead of the test's clock, set in the test
    "deliverytime-past": {"o:deliverytime": "Mon, 01 Jan 2001 00:00:00 +0000"},
    "testmode-garbage": {"o:testmode": "maybe"},
    "display-name-crlf": {"to": '"Ann\r\nBcc: evil@attacker.test" <display-name-crlf@x.org>'},
    "unicode-display-name": {"to": "Zoë Ünicode <unicode-display-name@x.org>"},
    "quoted-comma-name": {"to": '"Doe, \\"JD\\" John" <quoted-comma-name@x.org>'},
    "odd-text": {"text": "nul\x00byte and \ufffe noncharacter"},
    "nul-html": {"html": "<p>\x00</p>"},
    "attachment-odd-type": {},
}


def test_odd_but_acceptable_fields_are_sent_safely(api, services, clock, domain) -> None:
    for case, fields in ODD_BUT_VALID.items():
        files = None
        if case == "attachment-odd-type":
            files = [("attachment", ("a\r\nb.txt", b"x", "bogus; x=\"y\"")),
                     ("inline", ('q"uote.png', PNG, "image"))]
        if case == "deliverytime-0000":  # no zone: UTC (RFC 5322 3.3); naive dates get -0000
            tomorrow = datetime.fromtimestamp(clock.now() + 86400, UTC).replace(tzinfo=None)
            fields = {"o:deliverytime": format_datetime(tomorrow)}
            assert fields["o:deliverytime"].endswith(" -0000")
        reply = send(api, domain, minimal(**{"to": f"{case}@x.org", **fields}), files=files)
        assert reply.status_code == 200, (case, reply.text)
    clock.advance(30 * 365 * 86400)  # past any o:deliverytime above
    copies = by_rcpt(delivered(services))
    assert sorted(copies) == sorted(f"{case}@x.org" for case in ODD_BUT_VALID)
    for got in copies.values():
        assert [k for k in got.message if k.lower() in ("bcc", "x-injected")] == []
        for unique in ("From", "To", "Subject", "Date", "Message-ID"):
            assert len(got.message.get_all(unique) or []) == 1, (got.rcpt_tos, unique)
    assert copies["subject-crlf@x.org"].message["Subject"] == "Line one Bcc: evil@attacker.test"
    assert getaddresses([copies["display-name-crlf@x.org"].message["To"]]) == [
        ("Ann Bcc: evil@attacker.test", "display-name-crlf@x.org")]
    assert copies["subject-header@x.org"].message["Subject"] == "Overridden"
    assert copies["from-header@x.org"].message["From"] == "Other <other@mg.acme.test>"
    assert {n for n, _ in getaddresses([copies["quoted-comma-name@x.org"].message["To"]])} == {
        'Doe, "JD" John'}
    assert len(events(api, domain, event="delivered")) == len(ODD_BUT_VALID)


def test_a_bad_authorization_header_is_never_a_500(live, domain) -> None:
    for value in (b"Basic \xc3\xa9t\xc3\xa9", b"Basic !!!", b"Basic", b"Digest x",
                  b"Basic " + base64.b64encode(b"\xff\xfe:\xff")):
        with httpx.Client(base_url=live.base_url) as client:
            reply = client.post(f"/v3/{domain}/messages", data=dict(minimal()),
                                headers={"Authorization": value})
        assert (reply.status_code, reply.text) == (401, "Forbidden")


# -- success ------------------------------------------------------------------------------
def test_the_reply_is_exactly_mailguns_and_the_mail_arrives(api, services, domain,
                                                            encoding) -> None:
    message_id = queued(send(api, domain, minimal(), encoding=encoding))
    (got,) = delivered(services)
    assert got.rcpt_tos == ["ann@example.org"]
    assert got.message["From"] == FROM
    assert got.message["To"] == "ann@example.org"
    assert got.message["Subject"] == "Hi"
    assert got.message["Message-ID"] == message_id
    assert got.message.get_content().strip() == "Hello"


def test_repeated_and_comma_separated_recipients_with_display_names(api, services, domain,
                                                                    encoding) -> None:
    fields = [
        ("from", FROM),
        ("to", "Ann <ann@example.org>"),
        ("to", '"Doe, John" <john@example.org>, bob@example.org'),
        ("cc", "Carl <carl@example.org>, Cleo <cleo@example.org>"),
        ("bcc", "Secret Sam <sam@hidden.example>"),
        ("bcc", "sue@hidden.example"),
        ("subject", "Team"), ("text", "Hello all"),
    ]
    queued(send(api, domain, fields, encoding=encoding))
    copies = by_rcpt(delivered(services))
    assert sorted(copies) == sorted(["ann@example.org", "john@example.org", "bob@example.org",
                                     "carl@example.org", "cleo@example.org",
                                     "sam@hidden.example", "sue@hidden.example"])
    for got in copies.values():
        assert addresses(got.message["To"]) == ["ann@example.org", "bob@example.org",
                                                "john@example.org"]
        assert addresses(got.message["Cc"]) == ["carl@example.org", "cleo@example.org"]
        assert "Doe, John" in {n for n, _ in getaddresses([got.message["To"]])}
        assert got.message["Bcc"] is None
        assert b"hidden.example" not in got.data  # bcc is in no header, on no copy
    recipients = sorted(e["recipient"] for e in events(api, domain, event="delivered"))
    assert recipients == sorted(copies)


def test_a_utf8_mailbox_with_a_display_name(api, services, domain) -> None:
    queued(send(api, domain, minimal(to="Jürgen Ü <jürgen@example.org>",
                                     cc='"Doe, Zoë" <zoë@exämple.org>')))
    copies = by_rcpt(delivered(services))
    assert sorted(copies) == ["jürgen@example.org", "zoë@xn--exmple-cua.org"]
    for got in copies.values():
        assert getaddresses([got.message["To"]]) == [("Jürgen Ü", "jürgen@example.org")]
        assert getaddresses([got.message["Cc"]]) == [("Doe, Zoë", "zoë@exämple.org")]


def test_the_same_address_twice_gets_one_copy(api, services, domain) -> None:
    queued(send(api, domain, [("from", FROM), ("to", "ann@example.org, ANN@example.org"),
                              ("cc", "Ann <ann@example.org>"), ("text", "x")]))
    assert [r.rcpt_tos for r in delivered(services)] == [["ann@example.org"]]


def test_attachments_and_inline_images_arrive_intact(api, services, domain) -> None:
    files = [
        ("attachment", ("report.bin", EVERY_BYTE, "application/octet-stream")),
        ("attachment", ("notes.txt", "Grüße\r\nline two\n".encode(), "text/plain")),
        ("attachment", ("résumé.pdf", b"%PDF-1.4 fake", "application/pdf")),
        ("inline", ("logo.png", PNG, "image/png")),
    ]
    fields = [("from", FROM), ("to", "ann@example.org"), ("subject", "Files"),
              ("text", "see html"), ("html", '<p><img src="cid:logo.png"></p>')]
    queued(send(api, domain, fields, files=files))
    (got,) = delivered(services)
    msg = got.message
    parts = {part.get_filename(): part for part in msg.walk() if part.get_filename()}
    assert set(parts) == {"report.bin", "notes.txt", "résumé.pdf", "logo.png"}
    assert parts["report.bin"].get_content() == EVERY_BYTE
    assert parts["notes.txt"].get_payload(decode=True) == "Grüße\r\nline two\n".encode()
    assert parts["résumé.pdf"].get_content_type() == "application/pdf"
    assert parts["report.bin"].get_content_disposition() == "attachment"
    logo = parts["logo.png"]
    assert logo["Content-ID"] == "<logo.png>"
    assert logo.get_content_type() == "image/png"
    assert logo.get_content_disposition() == "inline"
    assert logo.get_payload(decode=True) == PNG
    related = next(p for p in msg.walk() if p.get_content_type() == "multipart/related")
    assert [p.get_content_type() for p in related.iter_parts()] == ["text/html", "image/png"]
    assert msg.get_body(("plain",)).get_content().strip() == "see html"

    accepted = events(api, domain, event="accepted")[0]
    listed = {a["filename"]: a for a in accepted["message"]["attachments"]}
    assert set(listed) == {"report.bin", "notes.txt", "résumé.pdf"}
    assert listed["report.bin"]["size"] == len(EVERY_BYTE)


def test_tags_variables_and_custom_headers(api, services, domain, encoding) -> None:
    fields = [*minimal(), ("o:tag", "newsletter"), ("o:tag", "march"),
              ("v:order-id", "42"), ("v:customer", '{"id": 7}'),
              ("h:Reply-To", "Support <help@acme.test>"), ("h:X-Custom", "custom value")]
    message_id = queued(send(api, domain, fields, encoding=encoding))
    (got,) = delivered(services)
    assert got.message["Reply-To"] == "Support <help@acme.test>"
    assert got.message["X-Custom"] == "custom value"
    assert json.loads(got.message["X-Mailgun-Variables"]) == {"order-id": "42",
                                                             "customer": '{"id": 7}'}
    found = events(api, domain)
    assert [e["event"] for e in found] == ["accepted", "delivered"]
    for event in found:
        assert event["tags"] == ["newsletter", "march"]
        assert event["user-variables"] == {"order-id": "42", "customer": '{"id": 7}'}
        assert event["message"]["headers"]["message-id"] == message_id.strip("<>")
    assert [e["event"] for e in events(api, domain, tags="march")] == ["accepted", "delivered"]


def test_a_custom_message_id_is_the_id_everywhere(api, services, domain) -> None:
    message_id = queued(send(api, domain, minimal(**{"h:Message-ID": "<my-own.1@acme.test>"})))
    assert message_id == "<my-own.1@acme.test>"
    (got,) = delivered(services)
    assert got.message.get_all("Message-ID") == ["<my-own.1@acme.test>"]
    assert {e["message"]["headers"]["message-id"] for e in events(api, domain)} == {
        "my-own.1@acme.test"}


def test_custom_headers_replace_the_ones_mailhaven_writes(api, services, domain) -> None:
    fields = [*minimal(), ("h:Reply-To", "a@acme.test"), ("h:Reply-To", "b@acme.test"),
              ("h:Subject", "Chosen subject"), ("h:Sender", "bulk@mg.acme.test")]
    queued(send(api, domain, fields))
    (got,) = delivered(services)
    assert got.message.get_all("Reply-To") == ["b@acme.test"]
    assert got.message.get_all("Subject") == ["Chosen subject"]
    assert got.message["Sender"] == "bulk@mg.acme.test"


def test_header_injection_stays_inside_the_header(api, services, domain) -> None:
    fields = minimal(**{"h:X-Custom": "a\r\nBcc: evil@attacker.test",
                        "subject": "Hi\r\nX-Injected: yes"})
    queued(send(api, domain, fields))
    (got,) = delivered(services)
    assert got.rcpt_tos == ["ann@example.org"]
    assert got.message["Bcc"] is None and got.message["X-Injected"] is None
    assert got.message["X-Custom"] == "a Bcc: evil@attacker.test"
    assert got.message["Subject"] == "Hi X-Injected: yes"


def test_testmode_sends_nothing_but_reports_delivered_650(api, services, domain) -> None:
    queued(send(api, domain, minimal(**{"o:testmode": "yes"})))
    with Sink() as sink:
        deliver_due(services, sink)
    assert sink.received == [] and sink.rcpt_attempts == []
    found = events(api, domain)
    assert [e["event"] for e in found] == ["accepted", "delivered"]
    assert found[1]["delivery-status"]["code"] == 650
    assert found[1]["recipient"] == "ann@example.org"
    assert all(e["flags"]["is-test-mode"] for e in found)


@pytest.mark.parametrize("stamp", [
    lambda when: format_datetime(when, usegmt=True),  # anymail: "Wed, 02 Jan 2030 03:04:05 GMT"
    lambda when: when.strftime("%a, %d %b %Y %H:%M:%S +0000"),  # Mailgun's own examples
])
def test_deliverytime_holds_the_message_until_the_clock_reaches_it(api, services, clock,
                                                                   domain, stamp) -> None:
    when = datetime.fromtimestamp(int(clock.now()) + 3600, UTC)
    queued(send(api, domain, minimal(**{"o:deliverytime": stamp(when)})))
    assert delivered(services) == []
    clock.advance(3590)
    assert delivered(services) == []
    assert [e["event"] for e in events(api, domain)] == ["accepted"]
    clock.advance(15)
    (got,) = delivered(services)
    assert got.rcpt_tos == ["ann@example.org"]
    assert [e["event"] for e in events(api, domain)] == ["accepted", "delivered"]


def test_deliverytime_may_be_at_most_3_days_ahead() -> None:
    """Mailgun's documented maximum, checked against the clock the caller passes in."""
    now = 1_900_000_000.0

    def at(offset: float) -> list[tuple[str, str]]:
        stamp = format_datetime(datetime.fromtimestamp(now + offset, UTC), usegmt=True)
        return minimal(**{"o:deliverytime": stamp})

    assert build_request(at(3 * 86400), [], now=now).deliverytime == now + 3 * 86400
    with pytest.raises(BadRequest) as refused:
        build_request(at(3 * 86400 + 1), [], now=now)
    assert refused.value.message == "o:deliverytime can't be more than 3 days in the future"
    assert build_request(at(-86400), [], now=now).deliverytime == now - 86400  # sends now
    assert build_request(at(30 * 86400), []).deliverytime == now + 30 * 86400  # no clock


def _stored_documents(services) -> list[dict]:  # type: ignore[no-untyped-def]
    """The content documents as sealed, opened the way the worker opens them."""
    with services.db.sessions() as session:
        return [Document.load(services.vault.open(
                    session.scalars(select(VaultKey).where(
                        VaultKey.id == message.content_key_id)).one(),
                    message.content_sealed, f"message:{message.id}"))
                for message in session.scalars(select(Message))]


def test_the_stored_content_says_when_a_message_is_scheduled(api, services, clock,
                                                            domain) -> None:
    """The worker gives up 5 days after the schedule, not after the send."""
    when = datetime.fromtimestamp(int(clock.now()) + 7200, UTC)
    queued(send(api, domain, minimal(**{"o:deliverytime": format_datetime(when, usegmt=True)})))
    queued(send(api, domain, minimal()))
    scheduled = [doc.deliverytime for doc in _stored_documents(services)]
    assert sorted(scheduled, key=lambda t: t or 0) == [None, when.timestamp()]


def _published_dkim_record(api: httpx.Client, domain: str) -> tuple[str, bytes]:
    records = api.get(f"/v3/domains/{domain}").json()["sending_dns_records"]
    dkim_record = next(r for r in records if "._domainkey." in r["name"])
    return dkim_record["name"], dkim_record["value"].encode()


def _verifies(api: httpx.Client, domain: str, data: bytes) -> bool:
    name, value = _published_dkim_record(api, domain)

    def dns(qname: bytes, timeout: int = 5) -> bytes | None:
        return value if qname.decode().rstrip(".") == name else None

    return dkim.verify(data, dnsfunc=dns)


def test_mail_is_dkim_signed_with_the_published_key_unless_o_dkim_no(api, services,
                                                                     domain) -> None:
    queued(send(api, domain, minimal(**{"to": "signed@example.org"})))
    queued(send(api, domain, minimal(**{"to": "plain@example.org", "o:dkim": "no"})))
    copies = by_rcpt(delivered(services))
    signed = copies["signed@example.org"]
    assert signed.message["DKIM-Signature"] is not None
    assert "d=mg.acme.test" in signed.message["DKIM-Signature"].replace(" ", "")
    assert _verifies(api, domain, signed.data)
    assert copies["plain@example.org"].message["DKIM-Signature"] is None


def _mime(message_id: str | None = None, newline: bytes = b"\r\n") -> bytes:
    msg = EmailMessage()
    msg["From"] = "Acme <news@mg.acme.test>"
    msg["To"] = "Ann <ann@example.org>"
    msg["Subject"] = "Built by the client"
    if message_id:
        msg["Message-ID"] = message_id
    msg.set_content("Plain body\n.\n..leading dots\n")
    msg.add_alternative("<p>HTML body</p>", subtype="html")
    return msg.as_bytes().replace(b"\n", newline)


def test_messages_mime_delivers_the_mime_as_given(api, services, domain) -> None:
    raw = _mime("<client-made.1@acme.test>")
    files = [("message", ("message.mime", raw, "message/rfc822"))]
    fields = [("to", "Ann <ann@example.org>"), ("to", "hidden@example.org"),
              ("o:tag", "mime")]
    message_id = queued(send(api, domain, fields, files=files, path="messages.mime"))
    assert message_id == "<client-made.1@acme.test>"
    copies = by_rcpt(delivered(services))
    assert sorted(copies) == ["ann@example.org", "hidden@example.org"]
    for got in copies.values():
        assert got.data.endswith(raw)  # only a DKIM-Signature is prepended
        assert b"hidden@" not in got.data
        assert _verifies(api, domain, got.data)
    found = events(api, domain, event="delivered")
    assert {e["message"]["headers"]["subject"] for e in found} == {"Built by the client"}
    assert {e["message"]["headers"]["message-id"] for e in found} == {"client-made.1@acme.test"}
    assert all(e["tags"] == ["mime"] for e in found)


def test_messages_mime_with_bare_newlines_and_no_message_id(api, services, domain) -> None:
    raw = _mime(newline=b"\n")
    files = [("message", ("message.mime", raw, "message/rfc822"))]
    message_id = queued(send(api, domain, [("to", "ann@example.org"), ("o:dkim", "yes")],
                             files=files, path="messages.mime"))
    (got,) = delivered(services)
    assert got.message["Message-ID"] == message_id
    assert got.message["Subject"] == "Built by the client"
    assert got.data.endswith(raw.replace(b"\n", b"\r\n"))
    assert _verifies(api, domain, got.data)


def test_messages_mime_carries_the_headers_and_variables_given_with_it(api, services,
                                                                     domain) -> None:
    raw = _mime("<client-made.2@acme.test>")
    files = [("message", ("message.mime", raw, "message/rfc822"))]
    fields = [("to", "ann@example.org"), ("h:X-Campaign", "Grüße aus Köln"),
              ("h:Reply-To", "Help <help@acme.test>"), ("h:Subject", "First"),
              ("h:Subject", "Chosen by the request"), ("h:Message-ID", "<not-this@acme.test>"),
              ("v:order", "42")]
    queued(send(api, domain, fields, files=files, path="messages.mime"))
    (got,) = delivered(services)
    head, _, body = got.data.partition(b"\r\n\r\n")
    assert head.isascii()  # the non-ASCII value as RFC 2047 encoded-words
    assert raw.endswith(b"\r\n\r\n" + body)  # the body as given
    msg = got.message
    assert msg["X-Campaign"] == "Grüße aus Köln"
    assert msg["Reply-To"] == "Help <help@acme.test>"
    assert msg.get_all("Subject") == ["Chosen by the request"]  # replaced, not doubled
    assert msg.get_all("Message-ID") == ["<client-made.2@acme.test>"]
    assert json.loads(msg["X-Mailgun-Variables"]) == {"order": "42"}
    assert _verifies(api, domain, got.data)
    [delivered_event] = events(api, domain, event="delivered")
    assert delivered_event["user-variables"] == {"order": "42"}


def test_a_utf8_body_goes_out_7bit_safe(api, services, domain) -> None:
    """Not every server offers 8BITMIME: non-ASCII text is quoted-printable or base64."""
    text, html = "Grüße aus Köln — ✓\n", "<p>Schöne Grüße</p>\n"
    queued(send(api, domain, minimal(text=text, html=html, subject="Grüße")))
    (got,) = delivered(services)
    assert got.data.isascii()
    for subtype, sent in (("plain", text), ("html", html)):
        part = got.message.get_body((subtype,))
        assert part["Content-Transfer-Encoding"] in ("quoted-printable", "base64")
        assert part.get_content().replace("\r\n", "\n") == sent
    assert _verifies(api, domain, got.data)


NOT_MIME = "message parameter is not a valid MIME message"
UNDELIVERABLE_MIME = {
    b"\xff\xfe\x00garbage": NOT_MIME,
    b"no headers at all\r\n\r\nbody": NOT_MIME,
    b"\r\nFrom: a@mg.acme.test\r\n\r\nbody": NOT_MIME,
    b"Subject: x\r\nBroken line\r\n\r\nbody": NOT_MIME,
    b"From : a@mg.acme.test\r\n\r\nbody": NOT_MIME,  # DKIM signers refuse the space
    b"Subject: no sender\r\n\r\nbody": "message parameter has no From header",
    b" \r\n\t": "message parameter is missing",
}


def test_messages_mime_refuses_what_cannot_be_delivered(api, services, domain) -> None:
    for junk, message in UNDELIVERABLE_MIME.items():
        files = [("message", ("m.eml", junk, "application/octet-stream"))]
        reply = send(api, domain, [("to", "ann@example.org")], files=files,
                     path="messages.mime")
        assert (reply.status_code, reply.json()) == (400, {"message": message}), junk
    assert not_rejected(api, domain) == []


def test_messages_mime_odd_but_deliverable(api, services, domain) -> None:
    odd = (b"FROM:a@mg.acme.test\r\nSubject: =?x?q?broken?=\r\nX-Folded: one\r\n two\r\n"
           b"\r\n\xff\xfe body bytes\r\n.\r\n")
    files = [("message", ("m.eml", odd, "application/octet-stream"))]
    queued(send(api, domain, [("to", "ann@example.org")], files=files, path="messages.mime"))
    (got,) = delivered(services)
    assert got.data.endswith(odd)


def test_percent_encoded_and_upper_case_domain_in_the_path(api, services, domain) -> None:
    queued(api.post("/v3/mg%2Eacme%2Etest/messages", data=dict(minimal())))
    queued(api.post("/v3/MG.Acme.Test/messages", data=dict(minimal())))
    assert len(delivered(services)) == 2


def test_deliverytime_more_than_3_days_ahead_is_400(api, clock, domain) -> None:
    too_far = format_rfc2822(clock.now() + 3 * 86400 + 60)
    reply = send(api, domain, minimal(**{"o:deliverytime": too_far}))
    assert (reply.status_code, reply.json()) == (
        400, {"message": "o:deliverytime can't be more than 3 days in the future"})
    assert not_rejected(api, domain) == []
    in_time = format_rfc2822(clock.now() + 3 * 86400 - 60)
    assert send(api, domain, minimal(**{"o:deliverytime": in_time})).status_code == 200
