"""PUT /v4/domains/{name}/verify checks the published records with a real DNS server."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from sqlalchemy import select

from mailhaven.domains.models import Domain
from mailhaven.domains.verify import DomainChecker
from tests.delivery.sinks import DnsServer
from tests.support import LiveServer


def _txt(value: str) -> str:
    """A TXT record's text as zone data: quoted strings of at most 255 characters."""
    return " ".join(f'"{value[i:i + 255]}"' for i in range(0, len(value), 255))


@pytest.fixture
def records(api, domain) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    body = api.get(f"/v3/domains/{domain}").json()
    return {r["record_type"] + ":" + r["name"]: r
            for r in body["sending_dns_records"] + body["receiving_dns_records"]}


def _verify(services, account, domain: str, zone: dict) -> dict:  # type: ignore[no-untyped-def]
    with DnsServer(zone) as dns_server:
        resolving = dataclasses.replace(
            services, settings=services.settings.with_(dns_nameserver=dns_server.address))
        with LiveServer(resolving) as live, live.client(account[1]) as client:
            reply = client.put(f"/v4/domains/{domain}/verify")
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_a_domain_that_publishes_its_records_becomes_active(api, services, account, domain,
                                                            records) -> None:
    spf, dkim = records[f"TXT:{domain}"], next(
        r for k, r in records.items() if "._domainkey." in k)
    zone = {domain: {"TXT": [_txt(spf["value"]), _txt("google-site-verification=x")],
                     "MX": [f"10 {records['MX:' + domain]['value']}."]},
            dkim["name"]: {"TXT": [_txt(dkim["value"])]},
            f"email.{domain}": {"CNAME": ["mx.mailhaven.test."]}}
    body = _verify(services, account, domain, zone)
    assert body["message"] == "Domain DNS records have been updated"
    assert body["domain"]["state"] == "active"
    assert {r["valid"] for r in body["sending_dns_records"]} == {"valid"}
    assert body["receiving_dns_records"][0]["valid"] == "valid"
    assert spf["value"] in body["sending_dns_records"][0]["cached"]
    assert api.get(f"/v3/domains/{domain}").json()["domain"]["state"] == "active"


def test_a_wrong_dkim_key_or_a_missing_spf_keeps_it_unverified(api, services, account,
                                                              domain, records) -> None:
    dkim = next(r for k, r in records.items() if "._domainkey." in k)
    zone = {domain: {"TXT": [_txt("v=spf1 include:elsewhere.example ~all")]},
            dkim["name"]: {"TXT": [_txt("k=rsa; p=AAAAnotthekey")]}}
    body = _verify(services, account, domain, zone)
    assert body["domain"]["state"] == "unverified"
    valid = {r["record_type"] + ":" + r["name"]: r["valid"]
             for r in body["sending_dns_records"] + body["receiving_dns_records"]}
    assert valid[f"TXT:{domain}"] == "invalid"
    assert valid[dkim["record_type"] + ":" + dkim["name"]] == "invalid"
    assert valid[f"CNAME:email.{domain}"] == "invalid"  # NXDOMAIN
    assert valid[f"MX:{domain}"] == "invalid"  # no MX


def test_verify_is_404_for_another_account_s_domain(live, services, domain) -> None:
    from mailhaven.accounts.service import create_account
    with services.db.transaction() as session:
        other = create_account(session, services.vault, name="O", email="o@o.test")
    with live.client(other.api_key) as intruder:
        assert intruder.put(f"/v3/domains/{domain}/verify").status_code == 404


def test_the_periodic_check_updates_domains_nobody_asked_about(services, clock, domain,
                                                               records) -> None:
    spf = records[f"TXT:{domain}"]
    dkim = next(r for k, r in records.items() if "._domainkey." in k)
    zone = {domain: {"TXT": [_txt(spf["value"])]}, dkim["name"]: {"TXT": [_txt(dkim["value"])]}}
    with DnsServer(zone) as dns_server:
        resolving = dataclasses.replace(
            services, settings=services.settings.with_(dns_nameserver=dns_server.address))
        checker = DomainChecker(resolving)
        assert asyncio.run(checker.run_once()) == 1
        assert asyncio.run(checker.run_once()) == 0  # checked: not due again for a while
        clock.advance(DomainChecker.INTERVAL + 1)
        assert asyncio.run(checker.run_once()) == 1
    with services.db.sessions() as session:
        state = session.scalar(select(Domain.state).where(Domain.name == domain))
    assert state == "active"


def test_only_a_verified_domain_may_send(services, account, domain, records) -> None:
    """With the production default (MAILHAVEN_REQUIRE_VERIFIED_DOMAINS=1), a domain
    sends once its DNS proves the account owns it."""
    strict = dataclasses.replace(
        services, settings=services.settings.with_(require_verified_domains=True))
    message = {"from": f"news@{domain}", "to": "ann@example.org", "subject": "s", "text": "t"}
    with LiveServer(strict) as live, live.client(account[1]) as client:
        refused = client.post(f"/v3/{domain}/messages", data=message)
        assert refused.status_code == 403
        assert refused.json()["message"].startswith(f"Domain {domain} is not allowed to send")
        assert client.get(f"/v3/{domain}/events").json()["items"] == []  # nothing queued
    spf, dkim = records[f"TXT:{domain}"], next(
        r for k, r in records.items() if "._domainkey." in k)
    _verify(strict, account, domain, {domain: {"TXT": [_txt(spf["value"])]},
                                      dkim["name"]: {"TXT": [_txt(dkim["value"])]}})
    with LiveServer(strict) as live, live.client(account[1]) as client:
        assert client.post(f"/v3/{domain}/messages", data=message).status_code == 200
