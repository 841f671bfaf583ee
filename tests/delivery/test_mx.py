"""Routing by MX, against a tiny authoritative name server on loopback."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from mailhaven.config import Settings
from mailhaven.delivery.mx import MailHost, MxResolver
from mailhaven.delivery.replies import DeliveryFailure
from tests.delivery.sinks import DnsServer, outcomes, send, with_dns
from tests.support import Sink, deliver_due

ZONE = {
    "example.test": {"MX": ["20 mx2.example.test.", "10 mx1.example.test.",
                            "30 mx3.example.test."]},
    "mx1.example.test": {"A": ["127.0.0.11", "127.0.0.12"]},
    "mx2.example.test": {"A": ["127.0.0.2"]},
    "mx3.example.test": {"A": ["127.0.0.3"], "AAAA": ["::1"]},
    "implicit.test": {"A": ["127.0.0.4"]},
    "nullmx.test": {"MX": ["0 ."], "A": ["127.0.0.5"]},
    "nohost.test": {"MX": ["10 gone.nohost.test."]},
    "gone.nohost.test": {"TXT": ["\"nothing to see\""]},
    # Delivery through MX: the preferred host refuses connections, the next one is a sink.
    "acme-customer.test": {"MX": ["10 down.acme-customer.test.", "20 up.acme-customer.test."]},
    "down.acme-customer.test": {"A": ["127.0.0.2"]},
    "up.acme-customer.test": {"A": ["127.0.0.1"]},
    # MX hosts on public and non-public addresses
    "mixed.test": {"MX": ["10 inside.mixed.test.", "20 outside.mixed.test."]},
    "inside.mixed.test": {"A": ["10.0.0.25"], "AAAA": ["64:ff9b::a00:19"]},  # NAT64 of it
    "outside.mixed.test": {"A": ["192.0.2.1", "8.8.8.8"], "AAAA": ["2002:c0a8:1::"]},
}


def hosts(server: DnsServer, domain: str, port: int = 2525, *,
          allow_private: bool = True) -> list[MailHost]:
    resolver = MxResolver(nameserver=server.address, port=port, allow_private=allow_private)
    return asyncio.run(resolver.hosts(domain))


def failure(server: DnsServer, domain: str, *, allow_private: bool = True) -> DeliveryFailure:
    with pytest.raises(DeliveryFailure) as caught:
        hosts(server, domain, allow_private=allow_private)
    return caught.value


@pytest.fixture
def dns_server():  # type: ignore[no-untyped-def]
    with DnsServer(ZONE, servfail=("broken.test",)) as server:
        yield server


def test_mx_hosts_come_in_preference_order_with_all_their_addresses(dns_server) -> None:
    found = hosts(dns_server, "example.test", port=2525)
    assert [h.name for h in found] == ["mx1.example.test", "mx1.example.test",
                                       "mx2.example.test", "mx3.example.test",
                                       "mx3.example.test"]
    assert {h.address for h in found[:2]} == {"127.0.0.11", "127.0.0.12"}  # an rrset is a set
    assert [h.address for h in found[2:]] == ["127.0.0.2", "127.0.0.3", "::1"]
    assert {h.port for h in found} == {2525}


def test_domain_names_are_matched_case_insensitively(dns_server) -> None:
    assert [h.name for h in hosts(dns_server, "Example.TEST.")][0] == "mx1.example.test"


def test_a_domain_without_mx_is_its_own_mail_host(dns_server) -> None:
    assert hosts(dns_server, "implicit.test") == [MailHost("implicit.test", "127.0.0.4", 2525)]


def test_a_null_mx_is_a_permanent_failure(dns_server) -> None:
    got = failure(dns_server, "nullmx.test")
    assert got.permanent
    assert (got.reply.code, got.reply.enhanced) == (556, "5.1.10")


def test_a_domain_that_does_not_exist_is_a_permanent_failure(dns_server) -> None:
    got = failure(dns_server, "no-such-domain.test")
    assert got.permanent
    assert (got.reply.code, got.reply.enhanced) == (550, "5.1.2")


def test_a_failing_name_server_is_a_temporary_failure(dns_server) -> None:
    got = failure(dns_server, "broken.test")
    assert not got.permanent
    assert got.reply.code == 451


def test_mx_hosts_without_addresses_are_a_temporary_failure(dns_server) -> None:
    got = failure(dns_server, "nohost.test")
    assert not got.permanent
    assert got.reply.enhanced == "4.4.4"


def test_answers_are_cached(dns_server) -> None:
    async def twice() -> tuple[list[MailHost], list[MailHost]]:
        resolver = MxResolver(nameserver=dns_server.address, port=25, allow_private=True)
        return await resolver.hosts("implicit.test"), await resolver.hosts("implicit.test")

    first, second = asyncio.run(twice())
    assert first == second
    assert dns_server.queries.count(("implicit.test", "MX")) == 1


# -- through the worker ----------------------------------------------------------------
def test_mail_is_delivered_to_the_first_mx_host_that_answers(
        api, services, domain, dns_server) -> None:
    send(api, domain, {"to": "Ann <ann@acme-customer.test>"})
    with Sink() as sink:
        deliver_due(with_dns(services, dns_server, sink.port))

    assert len(sink.received) == 1
    assert sink.received[0].rcpt_tos == ["ann@acme-customer.test"]
    [delivered] = outcomes(api, domain)
    assert delivered["event"] == "delivered"
    assert delivered["delivery-status"]["mx-host"] == "up.acme-customer.test"
    assert ("acme-customer.test", "MX") in dns_server.queries


@pytest.mark.parametrize("recipient, code, enhanced", [
    ("ann@nullmx.test", 556, "5.1.10"),
    ("ann@no-such-domain.test", 550, "5.1.2"),
])
def test_undeliverable_domains_fail_permanently(
        api, services, domain, clock, dns_server, recipient, code, enhanced) -> None:
    send(api, domain, {"to": recipient})
    with Sink() as sink:
        routed = with_dns(services, dns_server, sink.port)
        deliver_due(routed)
        clock.advance(86400)
        deliver_due(routed)

    assert sink.received == []
    [failed] = outcomes(api, domain)
    assert failed["event"] == "failed"
    assert failed["severity"] == "permanent"
    assert failed["delivery-status"]["code"] == code
    assert failed["delivery-status"]["enhanced-code"] == enhanced


def test_a_dns_outage_is_retried(api, services, domain, clock, dns_server) -> None:
    send(api, domain, {"to": "ann@broken.test"})
    with Sink() as sink:
        deliver_due(with_dns(services, dns_server, sink.port))
    [failed] = outcomes(api, domain)
    assert failed["severity"] == "temporary"
    assert failed["delivery-status"]["retry-seconds"] > 0


# -- MX hosts on non-public addresses (a customer aiming mail at internal servers) -------
def test_only_mx_hosts_on_public_addresses_are_used_by_default(dns_server) -> None:
    found = hosts(dns_server, "mixed.test", allow_private=False)
    assert [(h.name, h.address) for h in found] == [("outside.mixed.test", "8.8.8.8")]
    got = failure(dns_server, "acme-customer.test", allow_private=False)
    assert got.permanent and (got.reply.code, got.reply.enhanced) == (550, "5.4.4")
    assert "non-public addresses" in got.reply.text


def test_mail_is_not_delivered_to_a_private_mx_unless_allowed(
        api, services, domain, clock, dns_server) -> None:
    send(api, domain, {"to": "Ann <ann@acme-customer.test>"})  # its MX: 127.0.0.1
    default = dataclasses.replace(services, settings=services.settings.with_(
        allow_private_mx=Settings().allow_private_mx))
    with Sink() as sink:
        deliver_due(with_dns(default, dns_server, sink.port))
        clock.advance(86400)
        deliver_due(with_dns(default, dns_server, sink.port))

    assert sink.received == [] and sink.rcpt_attempts == []  # never even connected
    [failed] = outcomes(api, domain)
    assert (failed["event"], failed["severity"], failed["reason"]) == (
        "failed", "permanent", "generic")
    assert failed["delivery-status"]["code"] == 550
    assert "non-public addresses" in failed["delivery-status"]["message"]
    # our refusal, not the recipient's: the address is not put on the bounce list
    assert api.get(f"/v3/{domain}/bounces").json()["items"] == []


def test_private_mx_hosts_are_an_operator_s_choice(monkeypatch) -> None:
    monkeypatch.delenv("MAILHAVEN_ALLOW_PRIVATE_MX", raising=False)
    assert not Settings.from_env().allow_private_mx
    monkeypatch.setenv("MAILHAVEN_ALLOW_PRIVATE_MX", "1")
    assert Settings.from_env().allow_private_mx
