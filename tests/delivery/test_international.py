"""Internationalised addresses: IDN domains travel as IDNA, UTF-8 mailboxes need SMTPUTF8."""

from __future__ import annotations

from tests.delivery.sinks import (
    DnsServer,
    outcomes,
    queue_rows,
    self_signed_tls,
    send,
    with_dns,
    without_smtputf8,
)
from tests.support import Sink, deliver_due


def test_an_idn_domain_is_addressed_in_its_ascii_form(api, services, domain) -> None:
    send(api, domain, {"to": "ann@exämple.org"})
    with Sink() as sink:
        deliver_due(services, sink)

    assert [r.rcpt_tos for r in sink.received] == [["ann@xn--exmple-cua.org"]]
    [delivered] = outcomes(api, domain)
    assert delivered["event"] == "delivered"
    assert delivered["recipient"] == "ann@exämple.org"


def test_an_idn_domain_is_routed_by_its_ascii_mx(api, services, domain) -> None:
    send(api, domain, {"to": "ann@bücher.test"})
    zone = {"xn--bcher-kva.test": {"MX": ["10 mx.xn--bcher-kva.test."]},
            "mx.xn--bcher-kva.test": {"A": ["127.0.0.1"]}}
    with DnsServer(zone) as dns_server, Sink() as sink:
        deliver_due(with_dns(services, dns_server, sink.port))

    assert [r.rcpt_tos for r in sink.received] == [["ann@xn--bcher-kva.test"]]
    assert outcomes(api, domain)[0]["delivery-status"]["mx-host"] == "mx.xn--bcher-kva.test"


def test_a_utf8_mailbox_is_delivered_with_smtputf8(api, services, domain) -> None:
    send(api, domain, {"to": "jürgen@example.org"})
    with Sink() as sink:
        deliver_due(services, sink)
    assert [r.rcpt_tos for r in sink.received] == [["jürgen@example.org"]]
    assert [e["event"] for e in outcomes(api, domain)] == ["delivered"]


def test_smtputf8_is_seen_on_a_session_upgraded_to_tls(
        api, services, domain, tmp_path) -> None:
    send(api, domain, {"to": "zoë@example.org"})
    with Sink(tls_context=self_signed_tls(tmp_path)) as sink:
        deliver_due(services, sink)
    assert [r.rcpt_tos for r in sink.received] == [["zoë@example.org"]]
    [delivered] = outcomes(api, domain)
    assert delivered["delivery-status"]["tls"] is True


def test_a_utf8_mailbox_bounces_at_a_server_without_smtputf8(
        api, services, domain, clock) -> None:
    send(api, domain, {"to": "jürgen@example.org"})
    with without_smtputf8(Sink()) as sink:
        deliver_due(services, sink)
        clock.advance(86400)
        deliver_due(services, sink)

    assert sink.received == []
    assert sink.rcpt_attempts == []
    [failed] = outcomes(api, domain)
    assert failed["severity"] == "permanent"
    assert failed["delivery-status"]["code"] == 553
    assert failed["delivery-status"]["enhanced-code"] == "5.6.7"
    assert "SMTPUTF8" in failed["delivery-status"]["message"]
    assert [r.status for r in queue_rows(services)] == ["failed"]


def test_the_delivered_headers_name_international_recipients_readably(
        api, services, domain) -> None:
    # Encoded-words are not allowed inside an address (RFC 2047 §5): the To header must
    # carry the domain as IDNA or UTF-8, and a UTF-8 mailbox as UTF-8 (RFC 6532).
    send(api, domain, {"to": ["ann@exämple.org", "jürgen@example.org"]})
    with Sink() as sink:
        deliver_due(services, sink)

    assert len(sink.received) == 2
    for got in sink.received:
        header = got.data.split(b"\r\n\r\n", 1)[0].replace(b"\r\n ", b" ")
        [to] = [line for line in header.split(b"\r\n") if line.lower().startswith(b"to:")]
        assert b"=?" not in to
        assert "exämple.org".encode() in to or b"xn--exmple-cua.org" in to
        assert "jürgen@example.org".encode() in to
