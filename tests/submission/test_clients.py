"""Clients as applications use them — aiosmtplib and Django's SMTP EmailBackend, over
STARTTLS and implicit TLS — verifying the server's certificate and submitting."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage

import aiosmtplib
import pytest

from tests.delivery.dkim_check import from_records, verify_each
from tests.submission.conftest import LOGIN, PASSWORD, RunningSubmission
from tests.support import Sink, deliver_due

DOMAIN = "mg.acme.test"


def _accepted(api) -> list[dict]:  # type: ignore[no-untyped-def]
    return api.get(f"/v3/{DOMAIN}/events", params={"event": "accepted"}).json()["items"]


async def _send(message: EmailMessage, client: aiosmtplib.SMTP) -> tuple[dict, str]:
    """What `aiosmtplib.send` does, then until the connection is really closed: a TLS
    connection ends after the client's close returns (close_notify both ways), and a loop
    closed before that leaves its socket for the garbage collector."""
    async with client:
        protocol = client.protocol
        errors, reply = await client.send_message(message)
    for _ in range(500):
        if protocol is None or protocol.transport is None:
            break
        await asyncio.sleep(0.01)
    return errors, reply


@pytest.mark.parametrize("implicit_tls", [False, True], ids=["starttls", "tls"])
def test_aiosmtplib(api, submission: RunningSubmission, implicit_tls: bool) -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = f"news@{DOMAIN}", "ann@example.org", "Hi"
    message["X-Mailgun-Tag"] = "aiosmtplib"
    message.set_content("Hello from aiosmtplib")
    port = submission.tls_port if implicit_tls else submission.port
    errors, reply = asyncio.run(_send(message, aiosmtplib.SMTP(
        hostname="127.0.0.1", port=port, username=LOGIN, password=PASSWORD,
        use_tls=implicit_tls, start_tls=not implicit_tls, tls_context=submission.context(),
        timeout=60)))
    assert errors == {}
    [event] = _accepted(api)
    assert reply == f"2.0.0 OK: queued as <{event['message']['headers']['message-id']}>"
    assert (event["method"], event["tags"]) == ("smtp", ["aiosmtplib"])


@pytest.fixture
def django_mail(monkeypatch: pytest.MonkeyPatch, submission: RunningSubmission):  # type: ignore[no-untyped-def]
    """Django's mail, configured as a project sending through Mailhaven is; its backend
    checks certificates against the system's CAs, here the server's own."""
    from django.conf import settings

    if not settings.configured:
        settings.configure(EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend")
    monkeypatch.setenv("SSL_CERT_FILE", str(submission.cafile))
    from django.core import mail

    return mail


@pytest.mark.parametrize("implicit_tls", [False, True], ids=["starttls", "tls"])
def test_django_smtp_backend(api, services, submission: RunningSubmission, django_mail,  # type: ignore[no-untyped-def]
                             implicit_tls: bool) -> None:
    connection = django_mail.get_connection(
        "django.core.mail.backends.smtp.EmailBackend", host="127.0.0.1",
        port=submission.tls_port if implicit_tls else submission.port, username=LOGIN,
        password=PASSWORD, use_tls=not implicit_tls, use_ssl=implicit_tls, timeout=60,
        fail_silently=False)
    email = django_mail.EmailMessage(
        "Your order", "It has shipped.", f"Acme <orders@{DOMAIN}>",
        ["ann@example.org"], bcc=["audit@example.org"], connection=connection,
        headers={"X-Mailgun-Tag": "django", "X-Mailgun-Variables": '{"order": "1234"}'})
    assert email.send() == 1
    accepted = {e["recipient"]: e for e in _accepted(api)}
    assert sorted(accepted) == ["ann@example.org", "audit@example.org"]
    for event in accepted.values():
        assert event["method"] == "smtp"
        assert event["tags"] == ["django"]
        assert event["user-variables"] == {"order": "1234"}
    # ...and it arrives, DKIM-signed, the blind copy's address in no header
    with Sink() as sink:
        deliver_due(services, sink)
    records = api.get(f"/v3/domains/{DOMAIN}").json()["sending_dns_records"]
    assert sorted(r for got in sink.received for r in got.rcpt_tos) == [
        "ann@example.org", "audit@example.org"]
    for got in sink.received:
        assert [ok for _, _, ok in verify_each(got.data, from_records(records))] == [True]
        assert got.message["Subject"] == "Your order" and "Bcc" not in got.message
        assert b"audit@example.org" not in got.data
