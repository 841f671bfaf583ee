"""DNS that does not answer (SERVFAIL, a resolver that times out, a closed port) defers a
copy with a 4xx-like reason — never a bounce, never a suppression — and the copy is
delivered once DNS answers again; NXDOMAIN stays a permanent failure."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from mailhaven.services import Services
from tests.delivery.sinks import DnsServer, outcomes, queue_rows, send, with_dns
from tests.support import Sink, deliver_due

ZONE = {"customer.test": {"MX": ["10 mx.customer.test."]},
        "mx.customer.test": {"A": ["127.0.0.1"]}}
TIMEOUT = 1.0  # MAILHAVEN_DNS_TIMEOUT, short for the test (10 s by default)


@contextmanager
def silent_resolver() -> Iterator[tuple[str, int]]:
    """A UDP socket that reads queries and never answers them."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()


def closed_port() -> tuple[str, int]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()


def routed(services: Services, nameserver: tuple[str, int], smtp_port: int) -> Services:
    return dataclasses.replace(services, settings=services.settings.with_(
        relayhost=None, dns_nameserver=nameserver, smtp_delivery_port=smtp_port,
        dns_timeout_seconds=TIMEOUT))


def assert_deferred(api, services: Services, domain: str) -> int:  # type: ignore[no-untyped-def]
    """The copy's one outcome so far is a temporary failure, it is still queued, and its
    address is on no suppression list; returns the seconds until its retry."""
    [failed] = outcomes(api, domain)
    assert (failed["event"], failed["severity"]) == ("failed", "temporary")
    status = failed["delivery-status"]
    assert (status["code"], status["enhanced-code"]) == (451, "4.4.3")
    assert "DNS lookup for customer.test failed" in status["message"]
    assert [row.status for row in queue_rows(services)] == ["queued"]
    for listing in ("bounces", "unsubscribes", "complaints"):
        assert api.get(f"/v3/{domain}/{listing}").json()["items"] == []
    return int(status["retry-seconds"])


def test_servfail_defers_the_copy_and_it_is_delivered_once_dns_answers(
        api, services, domain, clock) -> None:
    send(api, domain, {"to": "ann@customer.test"})
    with DnsServer(ZONE, servfail=("customer.test",)) as dns, Sink() as sink:
        deliver_due(routed(services, dns.address, sink.port))
        retry = assert_deferred(api, services, domain)
        assert sink.received == []

        dns.servfail.clear()  # the domain's name servers are back
        clock.advance(retry - 1)
        deliver_due(routed(services, dns.address, sink.port))
        assert sink.received == []  # not before its time
        clock.advance(1)
        deliver_due(routed(services, dns.address, sink.port))
    assert [r.rcpt_tos for r in sink.received] == [["ann@customer.test"]]
    assert [e["event"] for e in outcomes(api, domain)] == ["failed", "delivered"]


@pytest.mark.parametrize("resolver", ["silent", "closed port"])
def test_a_resolver_that_does_not_answer_defers_the_copy(
        api, services, domain, clock, resolver) -> None:
    send(api, domain, {"to": "ann@customer.test"})
    with Sink() as sink:
        if resolver == "silent":
            with silent_resolver() as address:
                deliver_due(routed(services, address, sink.port))
        else:
            deliver_due(routed(services, closed_port(), sink.port))
        retry = assert_deferred(api, services, domain)

        with DnsServer(ZONE) as dns:  # the resolver answers again
            clock.advance(retry)
            deliver_due(routed(services, dns.address, sink.port))
    assert [r.rcpt_tos for r in sink.received] == [["ann@customer.test"]]


def test_nxdomain_is_still_a_permanent_failure(api, services, domain, clock) -> None:
    send(api, domain, {"to": "ann@nowhere.test"})
    with DnsServer(ZONE) as dns, Sink() as sink:
        deliver_due(with_dns(services, dns, sink.port))
        clock.advance(86400)
        deliver_due(with_dns(services, dns, sink.port))
    [failed] = outcomes(api, domain)
    assert (failed["severity"], failed["delivery-status"]["enhanced-code"]) == (
        "permanent", "5.1.2")
    assert [row.status for row in queue_rows(services)] == ["failed"]
