"""DSNs and ARF reports sent to the return-path listener become events and suppressions."""

from __future__ import annotations

import asyncio
import re
import smtplib
import threading

import pytest

from mailhaven.feedback.listener import start_listener
from tests.support import Sink, deliver_due, free_port


class Listener:
    """The real listener, on its own event loop in a thread."""

    def __init__(self, services) -> None:  # type: ignore[no-untyped-def]
        self.services, self.port = services, free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> Listener:
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(
            start_listener(self.services, "127.0.0.1", self.port), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            self.server.close()
            await self.server.wait_closed()
        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def send(self, rcpt: str, message: bytes) -> None:
        with smtplib.SMTP("127.0.0.1", self.port) as client:
            client.sendmail("mailer-daemon@example.org", [rcpt], message)


def _delivered(api, services, domain: str, to: str) -> tuple[str, bytes]:  # type: ignore[no-untyped-def]
    assert api.post(f"/v3/{domain}/messages", data={
        "from": f"news@{domain}", "to": to, "subject": "Hello", "text": "hi"}).status_code == 200
    with Sink() as sink:
        deliver_due(services, sink)
    [got] = sink.received
    return got.mail_from, got.data


def _report(report_type: str, parts: list[tuple[str, str]]) -> bytes:
    """A multipart/report, written out as a remote MTA sends it."""
    boundary = "REPORT-BOUNDARY"
    body = "".join(f"--{boundary}\r\nContent-Type: {ctype}\r\n\r\n{text}\r\n"
                   for ctype, text in parts)
    return (f"From: MAILER-DAEMON@mx.example.org\r\nSubject: report\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: multipart/report; report-type={report_type}; "
            f'boundary="{boundary}"\r\n\r\n{body}--{boundary}--\r\n').encode()


def _dsn(original_to: str, status: str, diagnostic: str, action: str = "failed") -> bytes:
    return _report("delivery-status", [
        ("text/plain", "Your message could not be delivered."),
        ("message/delivery-status",
         "Reporting-MTA: dns; mx.example.org\r\n\r\n"
         f"Final-Recipient: rfc822; {original_to}\r\nAction: {action}\r\n"
         f"Status: {status}\r\nDiagnostic-Code: smtp; {diagnostic}\r\n"),
    ])


def _arf(original: bytes, return_path: str) -> bytes:
    headers = original.split(b"\r\n\r\n", 1)[0].decode()
    return _report("feedback-report", [
        ("text/plain", "This is an abuse report."),
        ("message/feedback-report", "Feedback-Type: abuse\r\nUser-Agent: FBL/1.0\r\n"
                                    "Version: 1\r\n"),
        ("text/rfc822-headers", f"Return-Path: <{return_path}>\r\n{headers}\r\n"),
    ])


def _events(api, domain: str, event: str) -> list[dict]:  # type: ignore[no-untyped-def]
    return api.get(f"/v3/{domain}/events", params={"event": event}).json()["items"]


def test_a_dsn_becomes_a_delayed_bounce_and_a_bounce_record(api, services, domain) -> None:
    return_path, _ = _delivered(api, services, domain, "ann@example.org")
    with Listener(services) as listener:
        listener.send(return_path, _dsn("ann@example.org", "5.1.1",
                                        "550 5.1.1 <ann@example.org>: User unknown"))
    [failed] = _events(api, domain, "failed")
    assert failed["recipient"] == "ann@example.org"
    assert failed["flags"]["is-delayed-bounce"] is True
    assert failed["severity"] == "permanent" and failed["reason"] == "bounce"
    assert failed["delivery-status"]["code"] == 550
    assert failed["delivery-status"]["enhanced-code"] == "5.1.1"
    assert failed["message"]["headers"]["subject"] == "Hello"
    assert api.get(f"/v3/{domain}/bounces/ann@example.org").json()["code"] == "550"


def test_a_delay_warning_changes_nothing(api, services, domain) -> None:
    return_path, _ = _delivered(api, services, domain, "ann@example.org")
    with Listener(services) as listener:
        listener.send(return_path, _dsn("ann@example.org", "4.4.1", "451 4.4.1 timeout",
                                        action="delayed"))
    assert _events(api, domain, "failed") == []


def test_an_arf_report_becomes_a_complaint(api, services, domain) -> None:
    return_path, original = _delivered(api, services, domain, "bob@example.org")
    with Listener(services) as listener:
        listener.send(return_path, _arf(original, return_path))
    [complained] = _events(api, domain, "complained")
    assert complained["recipient"] == "bob@example.org"
    assert api.get(f"/v3/{domain}/complaints/bob@example.org").status_code == 200


def test_forged_or_unknown_return_paths_are_refused(api, services, domain) -> None:
    return_path, _ = _delivered(api, services, domain, "ann@example.org")
    delivery_id = int(re.search(r"bounce\+(\d+)-", return_path).group(1))
    forged = return_path.replace(f"bounce+{delivery_id}-", f"bounce+{delivery_id + 1}-")
    assert forged != return_path
    with Listener(services) as listener:
        for rcpt in (forged, f"postmaster@{domain}", "bounce+1-nothex@x.org"):
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                listener.send(rcpt, _dsn("ann@example.org", "5.1.1", "550 5.1.1 unknown"))
    assert _events(api, domain, "failed") == []


def test_a_repeated_report_is_recorded_once(api, services, domain) -> None:
    return_path, original = _delivered(api, services, domain, "ann@example.org")
    with Listener(services) as listener:
        for _ in range(2):
            listener.send(return_path, _dsn("ann@example.org", "5.1.1", "550 5.1.1 unknown"))
            listener.send(return_path, _arf(original, return_path))
    assert len(_events(api, domain, "failed")) == 1
    assert len(_events(api, domain, "complained")) == 0  # it had bounced: nobody read it
