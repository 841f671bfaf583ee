"""The return-path listener under attack: deep MIME nesting is refused cleanly, failures never
show their exception, and the banner names Mailhaven, not the library."""

from __future__ import annotations

import base64
import re
import smtplib
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text

from tests.feedback.test_reports import Listener, _delivered, _dsn, _events, _report

NESTING_REFUSED = "5.6.0"


def _nested(depth: int, blank: str = " ") -> bytes:
    """A multipart/report whose first part nests `depth` multiparts, as the probe sent;
    `blank` after each `Content-Type:` (the email package strips \\x1c-\\x1f too)."""
    opening = "".join(f"--n{i}\r\nContent-Type:{blank}multipart/mixed; boundary=\"n{i + 1}\""
                      f"\r\n\r\n" for i in range(depth))
    closing = "".join(f"--n{i}--\r\n" for i in reversed(range(depth + 1)))
    return (f"From: MAILER-DAEMON@mx.example.org\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: multipart/report; report-type=delivery-status; boundary=\"n0\""
            f"\r\n\r\n{opening}--n{depth}\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
            f"{closing}").encode()


def _reply_to(listener: Listener, rcpt: str, message: bytes) -> tuple[int, str]:
    """What the listener answers at the end of DATA."""
    with smtplib.SMTP("127.0.0.1", listener.port) as client:
        try:
            client.sendmail("", [rcpt], message)
        except smtplib.SMTPDataError as refused:
            return refused.smtp_code, refused.smtp_error.decode()
    return 250, ""


def test_the_banner_names_mailhaven_not_the_library(services) -> None:
    with Listener(services) as listener, smtplib.SMTP() as client:
        code, banner = client.connect("127.0.0.1", listener.port)
        _, features = client.ehlo()
        _, help_text = client.docmd("HELP")
    assert code == 220 and banner.decode() == "mx.mailhaven.test Mailhaven ESMTP"
    for said in (banner, features, help_text):
        assert b"python" not in said.lower() and b"aiosmtpd" not in said.lower()


def test_a_deeply_nested_report_is_refused_cleanly(api, services, domain) -> None:
    return_path, _ = _delivered(api, services, domain, "ann@example.org")
    with Listener(services) as listener:
        started = time.monotonic()
        for nested in (_nested(2000), _nested(50), _nested(2000, "\x1c"), _nested(2000, "\x1f")):
            code, said = _reply_to(listener, return_path, nested)
            assert code == 554 and said.startswith(NESTING_REFUSED), said
            assert "Error" not in said and "Recursion" not in said
        # The same inside the reported message's headers, which are read a second time.
        inner = base64.encodebytes(_nested(2000)).decode().replace("\n", "\r\n")
        hidden = _report("feedback-report", [
            ("message/feedback-report", "Feedback-Type: abuse\r\nVersion: 1\r\n"),
            ("text/rfc822-headers\r\nContent-Transfer-Encoding: base64", inner)])
        code, said = _reply_to(listener, return_path, hidden)
        assert code == 554 and said.startswith(NESTING_REFUSED), said
        assert time.monotonic() - started < 5
        # A real report, on the same listener, is still read.
        assert _reply_to(listener, return_path, _dsn("ann@example.org", "5.1.1",
                                                     "550 5.1.1 unknown")) == (250, "")
    assert len(_events(api, domain, "failed")) == 1


def test_a_report_nested_as_deep_as_real_mail_is_read(api, services, domain) -> None:
    return_path, _ = _delivered(api, services, domain, "ann@example.org")
    dsn = _dsn("ann@example.org", "5.1.1", "550 5.1.1 unknown").decode()
    # The original message, returned whole: mixed > alternative > related, as newsletters are.
    original = ("Content-Type: message/rfc822\r\n\r\nSubject: Hello\r\nContent-Type: "
                "multipart/mixed; boundary=m1\r\n\r\n--m1\r\nContent-Type: multipart/alternative;"
                " boundary=m2\r\n\r\n--m2\r\nContent-Type: multipart/related; boundary=m3\r\n\r\n"
                "--m3\r\nContent-Type: text/html\r\n\r\n<p>hi</p>\r\n"
                "--m3--\r\n--m2--\r\n--m1--\r\n")
    whole = dsn.replace("--REPORT-BOUNDARY--", f"--REPORT-BOUNDARY\r\n{original}\r\n"
                                               f"--REPORT-BOUNDARY--")
    with Listener(services) as listener:
        assert _reply_to(listener, return_path, whole.encode()) == (250, "")
    assert len(_events(api, domain, "failed")) == 1


@contextmanager
def _deliveries_gone(services) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """A real failure of our own: the deliveries table is away while a report comes in."""
    with services.db.engine.begin() as conn:
        conn.execute(text("ALTER TABLE deliveries RENAME TO deliveries_away"))
    try:
        yield
    finally:
        with services.db.engine.begin() as conn:
            conn.execute(text("ALTER TABLE deliveries_away RENAME TO deliveries"))


def test_an_internal_failure_is_a_generic_temporary_reply(api, services, domain,
                                                         caplog) -> None:
    return_path, _ = _delivered(api, services, domain, "ann@example.org")
    with Listener(services) as listener, _deliveries_gone(services):
        code, said = _reply_to(listener, return_path,
                               _dsn("ann@example.org", "5.1.1", "550 5.1.1 unknown"))
    assert (code, said) == (451, "4.3.0 Temporary failure, please try again later")
    # Where it failed is in our log (not its message, which may quote the report), not in
    # the reply.
    assert re.search(r"feedback listener: \w+Error at\n", caplog.text), caplog.text
    assert "ann@example.org" not in caplog.text
    assert _events(api, domain, "failed") == []
