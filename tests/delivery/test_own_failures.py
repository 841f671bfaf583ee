"""Only a refusal of the recipient lists them as a bounce (issue 10, finding 14): a message
the receiver refuses for what it is (a line too long, its content, its size) fails, and the
recipient still gets the next one."""

from __future__ import annotations

import pytest

from tests.delivery.sinks import events, outcomes, send
from tests.support import Sink, SinkBehaviour, deliver_due


def bounces(api, domain: str) -> list[dict]:  # type: ignore[no-untyped-def]
    reply = api.get(f"/v3/{domain}/bounces")
    assert reply.status_code == 200
    return reply.json()["items"]


def test_a_line_too_long_for_the_receiver_fails_without_suppressing_the_recipient(
        api, services, domain) -> None:
    """aiosmtpd answers a line over 1,000 octets with `500 Line too long` after DATA: the
    probe's 400K-character display name did that, and Ann was listed as a hard bounce."""
    raw = (b"From: a@mg.acme.test\r\nTo: ann@example.org\r\nSubject: s\r\n\r\n"
           + b"x" * 2000 + b"\r\n")
    reply = api.post(f"/v3/{domain}/messages.mime", data={"to": "ann@example.org"},
                     files={"message": ("m.eml", raw, "message/rfc822")})
    assert reply.status_code == 200, reply.text
    with Sink() as sink:
        deliver_due(services, sink)
        assert sink.received == []
        [failed] = outcomes(api, domain)
        assert (failed["event"], failed["severity"]) == ("failed", "permanent")
        assert failed["reason"] == "generic"
        assert failed["delivery-status"]["code"] == 500
        assert "Line too long" in failed["delivery-status"]["message"]
        assert bounces(api, domain) == []
        assert api.get(f"/v3/{domain}/bounces/ann@example.org").status_code == 404

        send(api, domain, {"to": "ann@example.org"})  # her next mail still goes
        deliver_due(services, sink)
    assert [r.rcpt_tos for r in sink.received] == [["ann@example.org"]]
    assert [e["event"] for e in events(api, domain, "delivered")] == ["delivered"]


@pytest.mark.parametrize(("reply", "listed"), [
    ("554 5.6.0 Message content rejected", False),
    ("552 5.3.4 Message size exceeds fixed limit", False),
    ("552 5.2.3 Message length exceeds administrative limit", False),
    ("550 Message refused", False),
    ("550 5.1.1 No such user", True),  # some servers check recipients only after DATA
    ("550 5.2.1 Mailbox disabled", True),
])
def test_a_refusal_after_data_lists_a_bounce_only_when_it_is_about_the_mailbox(
        api, services, domain, reply: str, listed: bool) -> None:
    send(api, domain, {"to": "ann@example.org"})
    with Sink(SinkBehaviour(data=lambda _rcpts: reply)) as sink:
        deliver_due(services, sink)
    [failed] = outcomes(api, domain)
    assert (failed["event"], failed["severity"]) == ("failed", "permanent")
    assert failed["reason"] == ("bounce" if listed else "generic")
    assert [b["address"] for b in bounces(api, domain)] == (["ann@example.org"] if listed
                                                            else [])
