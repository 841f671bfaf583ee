"""STARTTLS: opportunistic by default, enforced with `o:require-tls`."""

from __future__ import annotations

import ssl

from tests.delivery.sinks import BrokenTlsSink, outcomes, self_signed_tls, send
from tests.support import Sink, SinkBehaviour, deliver_due


def test_a_sink_offering_starttls_gets_the_message_over_tls(
        api, services, domain, tmp_path) -> None:
    send(api, domain)
    with Sink(tls_context=self_signed_tls(tmp_path)) as sink:
        deliver_due(services, sink)

    assert len(sink.received) == 1
    [delivered] = outcomes(api, domain)
    assert delivered["event"] == "delivered"
    assert delivered["delivery-status"]["tls"] is True
    # Opportunistic TLS encrypts but does not authenticate a self-signed certificate.
    assert delivered["delivery-status"]["certificate-verified"] is False


def test_a_sink_without_starttls_gets_plaintext_by_default(api, services, domain) -> None:
    send(api, domain)
    with Sink() as sink:
        deliver_due(services, sink)
    assert len(sink.received) == 1
    assert outcomes(api, domain)[0]["delivery-status"]["tls"] is False


def test_require_tls_refuses_a_sink_without_starttls(api, services, domain, clock) -> None:
    send(api, domain, {"o:require-tls": "yes"})
    with Sink() as sink:
        deliver_due(services, sink)
        clock.advance(3600)
        deliver_due(services, sink)

    assert sink.received == []
    assert sink.rcpt_attempts == []  # not a word of the message in plaintext
    failed = outcomes(api, domain)
    assert [e["event"] for e in failed] == ["failed", "failed"]
    for event in failed:
        assert event["severity"] == "temporary"
        assert "tls" in event["reason"].lower()
        assert "TLS" in event["delivery-status"]["message"]
        assert event["delivery-status"]["tls"] is False
        assert event["delivery-status"]["retry-seconds"] > 0


def test_require_tls_verifies_the_certificate(api, services, domain, tmp_path) -> None:
    send(api, domain, {"o:require-tls": "yes"})
    with Sink(tls_context=self_signed_tls(tmp_path)) as sink:
        deliver_due(services, sink)

    assert sink.received == []
    [failed] = outcomes(api, domain)
    assert failed["severity"] == "temporary"
    assert "tls" in failed["reason"].lower()


def test_require_tls_with_skip_verification_accepts_a_self_signed_certificate(
        api, services, domain, tmp_path) -> None:
    send(api, domain, {"o:require-tls": "yes", "o:skip-verification": "yes"})
    with Sink(tls_context=self_signed_tls(tmp_path)) as sink:
        deliver_due(services, sink)

    assert len(sink.received) == 1
    [delivered] = outcomes(api, domain)
    assert delivered["delivery-status"]["tls"] is True
    assert delivered["delivery-status"]["certificate-verified"] is False


def test_a_failed_tls_handshake_falls_back_to_plaintext(
        api, services, domain, tmp_path) -> None:
    # The sink offers STARTTLS but then demands a client certificate we don't have.
    context = self_signed_tls(tmp_path)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(tmp_path / "sink-cert.pem")
    send(api, domain)
    with Sink(tls_context=context) as sink:
        deliver_due(services, sink)

    assert len(sink.received) == 1
    [delivered] = outcomes(api, domain)
    assert delivered["event"] == "delivered"
    assert delivered["delivery-status"]["tls"] is False


def test_a_tls_failure_on_our_side_falls_back_to_plaintext(
        api, services, domain, tmp_path) -> None:
    send(api, domain)
    with BrokenTlsSink(self_signed_tls(tmp_path)) as sink:
        deliver_due(services, sink)

    assert len(sink.received) == 1
    [delivered] = outcomes(api, domain)
    assert delivered["event"] == "delivered"
    assert delivered["delivery-status"]["tls"] is False


def test_require_tls_never_falls_back_after_a_failed_handshake(
        api, services, domain, tmp_path) -> None:
    send(api, domain, {"o:require-tls": "yes", "o:skip-verification": "yes"})
    with BrokenTlsSink(self_signed_tls(tmp_path)) as sink:
        deliver_due(services, sink)

    assert sink.received == []
    assert sink.rcpt_attempts == []
    [failed] = outcomes(api, domain)
    assert failed["severity"] == "temporary"
    assert "tls" in failed["reason"].lower()


def test_a_bounce_over_tls_says_so(api, services, domain, tmp_path) -> None:
    send(api, domain)
    behaviour = SinkBehaviour(rcpt=lambda _rcpt: "550 5.1.1 No such user")
    with Sink(behaviour, tls_context=self_signed_tls(tmp_path)) as sink:
        deliver_due(services, sink)
    [failed] = outcomes(api, domain)
    assert failed["severity"] == "permanent"
    assert failed["delivery-status"]["tls"] is True
