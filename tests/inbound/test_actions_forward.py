"""forward("addr@…"): the message goes out again through our own queue, from the receiving
domain, unchanged but for two trace fields, with an SRS envelope sender on the receiving
domain (so SPF at the destination checks us) that only we can turn back."""

from __future__ import annotations

from mailhaven.inbound import srs
from mailhaven.routes.expressions import RouteAction
from tests.inbound.test_actions_support import MAILFROM, a_message, run_actions, store_inbound
from tests.support import Sink, deliver_due

RECIPIENT = "team@mg.acme.test"
TARGET = "alice@elsewhere.example"


def test_a_forward_to_an_address_arrives_with_an_srs_envelope_sender(
        services, account, domain, api) -> None:
    raw = a_message(attachment=b"%PDF-1.4 forwarded")
    key = store_inbound(services, account[0], domain, raw, to=[RECIPIENT])
    run_actions(services, key, RECIPIENT,
                [RouteAction("bbbbbbbbbbbbbbbbbbbbbbbb", "forward", TARGET)])
    with Sink() as sink:
        deliver_due(services, sink)
    got, = sink.received
    assert got.rcpt_tos == [TARGET]
    local, _, at = got.mail_from.rpartition("@")
    assert at == domain and local.startswith("SRS0=")
    assert local.endswith("=shop.example.org=bounces-77")
    assert srs.reverse(services.vault, got.mail_from, services.clock.now()) == MAILFROM
    message = got.message
    assert message["X-Forwarded-To"] == TARGET
    assert message["Message-ID"] == "<order-77@shop.example.org>"  # the message, unchanged
    assert message["From"] == "Ann Buyer <ann@shop.example.org>"
    assert message["DKIM-Signature"] is not None  # signed by the receiving domain too
    assert raw.split(b"\n\n", 1)[1].replace(b"\r\n", b"\n") in got.data.replace(b"\r\n", b"\n")
    accepted = api.get(f"/v3/{domain}/events", params={"event": "delivered"}).json()["items"]
    assert [e["recipient"] for e in accepted] == [TARGET]


def test_a_forwarded_bounce_keeps_the_null_sender(services, account, domain) -> None:
    key = store_inbound(services, account[0], domain, a_message(), to=[RECIPIENT],
                        mailfrom="")
    run_actions(services, key, RECIPIENT,
                [RouteAction("bbbbbbbbbbbbbbbbbbbbbbbb", "forward", TARGET)])
    with Sink() as sink:
        deliver_due(services, sink)
    assert [r.mail_from for r in sink.received] == ["<>"]  # MAIL FROM:<>, as aiosmtpd writes it


def test_srs_addresses_are_refused_when_forged_or_too_old(services) -> None:
    now = services.clock.now()
    address = srs.forward(services.vault, "ann@shop.example.org", "mg.acme.test", now)
    assert srs.reverse(services.vault, address, now + 86400 * 20) == "ann@shop.example.org"
    assert srs.reverse(services.vault, address, now + 86400 * 30) is None
    hashed = address.split("=")[1]
    forged = address.replace(f"SRS0={hashed}=", "SRS0=AAAA=")
    assert srs.reverse(services.vault, forged, now) is None
    assert srs.reverse(services.vault, "ann@shop.example.org", now) is None
    assert srs.forward(services.vault, "", "mg.acme.test", now) == ""


def test_a_message_forwarded_in_a_loop_stops(services, account, domain) -> None:
    raw = b"".join(b"X-Forwarded-To: team@mg.acme.test\r\n" for _ in range(10)) + a_message()
    key = store_inbound(services, account[0], domain, raw, to=[RECIPIENT])
    run_actions(services, key, RECIPIENT,
                [RouteAction("bbbbbbbbbbbbbbbbbbbbbbbb", "forward", TARGET)])
    with Sink() as sink:
        deliver_due(services, sink)
    assert sink.received == []
