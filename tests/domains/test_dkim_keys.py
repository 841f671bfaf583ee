"""DKIM keys over time: rotation with both keys published, Ed25519 beside RSA, and Mailgun's
PUT dkim_selector — as a user sees them through the API, DNS and the mail that arrives."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from mailhaven.clock import format_rfc2822
from mailhaven.delivery.worker import SIGNER_SECONDS
from mailhaven.domains.keys import RETIRE_SECONDS
from mailhaven.domains.verify import DomainChecker
from tests.delivery.dkim_check import from_dns, from_records, verify_each
from tests.delivery.sinks import DnsServer, deliver_in_rounds, send
from tests.support import LiveServer, Sink, deliver_due

WEEK = RETIRE_SECONDS


def _txt(value: str) -> str:
    return " ".join(f'"{value[i:i + 255]}"' for i in range(0, len(value), 255))


def _zone(records: list[dict]) -> dict:
    """A zone publishing exactly these TXT records (what the user put in DNS)."""
    zone: dict[str, dict[str, list[str]]] = {}
    for r in records:
        zone.setdefault(r["name"], {}).setdefault("TXT", []).append(_txt(r["value"]))
    return zone


def _records(api, domain: str) -> tuple[dict, list[dict]]:  # type: ignore[no-untyped-def]
    """(the SPF record, the DKIM records) that GET /v3/domains/{domain} lists."""
    sending = api.get(f"/v3/domains/{domain}").json()["sending_dns_records"]
    return sending[0], [r for r in sending if "._domainkey." in r["name"]]


def _keys(api, domain: str) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    reply = api.get(f"/v1/admin/domains/{domain}/dkim/keys")
    assert reply.status_code == 200, reply.text
    return [(k["selector"], k["state"]) for k in reply.json()["items"]]


def _resolving(services, dns_server: DnsServer):  # type: ignore[no-untyped-def]
    return dataclasses.replace(
        services, settings=services.settings.with_(dns_nameserver=dns_server.address))


def _verify(services, account, domain: str, records: list[dict]) -> dict:  # type: ignore[no-untyped-def]
    with DnsServer(_zone(records)) as dns_server, \
            LiveServer(_resolving(services, dns_server)) as live, \
            live.client(account[1]) as client:
        reply = client.put(f"/v3/domains/{domain}/verify")
    assert reply.status_code == 200, reply.text
    return reply.json()


def _deliver_one(api, services, domain: str) -> bytes:  # type: ignore[no-untyped-def]
    send(api, domain, {"text": "Your invoice is attached."})
    with Sink() as sink:
        deliver_due(services, sink)
    [got] = sink.received
    return got.data


def _check(services, records: list[dict]) -> None:  # type: ignore[no-untyped-def]
    """One round of the periodic checker, with DNS publishing `records`."""
    with DnsServer(_zone(records)) as dns_server:
        asyncio.run(DomainChecker(_resolving(services, dns_server)).run_once())


def test_a_rotation_signs_with_the_new_key_only_once_dns_shows_it(
        api, services, account, clock, domain) -> None:
    spf, [old] = _records(api, domain)
    assert _verify(services, account, domain, [spf, old])["domain"]["state"] == "active"
    old_selector = old["name"].split("._domainkey.")[0]

    reply = api.post(f"/v1/admin/domains/{domain}/dkim/rotate", data={"dkim_key_size": "1024"})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    [new_selector] = [k["selector"] for k in body["dkim_keys"] if k["state"] == "pending"]
    assert [(k["selector"], k["state"]) for k in body["dkim_keys"]] == [
        (old_selector, "active"), (new_selector, "pending")]
    spf, [listed_old, new] = _records(api, domain)
    assert (listed_old["name"], listed_old["value"], listed_old["valid"]) == (
        old["name"], old["value"], "valid")  # still published, still valid
    assert new["name"] == f"{new_selector}._domainkey.{domain}"
    assert (new["valid"], new["is_active"]) == ("unknown", True)
    assert [r["name"] for r in body["sending_dns_records"]] == [
        domain, old["name"], new["name"], f"email.{domain}"]

    # Not in DNS yet: the old key goes on signing, and a check changes nothing.
    data = _deliver_one(api, services, domain)
    with DnsServer(_zone([spf, old])) as dns_server:
        assert verify_each(data, from_dns(dns_server.address)) == [
            ("rsa-sha256", old_selector, True)]
    checked = _verify(services, account, domain, [spf, old])
    assert checked["domain"]["state"] == "active"
    assert _keys(api, domain) == [(old_selector, "active"), (new_selector, "pending")]

    # Published: the next verification makes it the signing key; the old one retires.
    _verify(services, account, domain, [spf, old, new])
    assert _keys(api, domain) == [(new_selector, "active"), (old_selector, "retiring")]
    retiring = api.get(f"/v1/admin/domains/{domain}/dkim/keys").json()["items"][1]
    assert retiring["retire_after"] == format_rfc2822(clock.now() + WEEK)
    assert [r["name"] for r in _records(api, domain)[1]] == [new["name"], old["name"]]
    data = _deliver_one(api, services, domain)
    with DnsServer(_zone([spf, old, new])) as dns_server:
        assert verify_each(data, from_dns(dns_server.address)) == [
            ("rsa-sha256", new_selector, True)]

    # The old key stays published for a week, then it is gone.
    clock.advance(WEEK - 60)
    _check(services, [spf, old, new])
    assert _keys(api, domain) == [(new_selector, "active"), (old_selector, "retiring")]
    clock.advance(120)
    _check(services, [spf, new])
    assert _keys(api, domain) == [(new_selector, "active")]
    spf, dkim_records = _records(api, domain)
    assert [(r["name"], r["valid"]) for r in dkim_records] == [(new["name"], "valid")]
    assert api.get(f"/v3/domains/{domain}").json()["domain"]["state"] == "active"


def test_a_running_worker_signs_with_the_new_key_within_a_minute(
        api, services, account, clock, domain) -> None:
    spf, [old] = _records(api, domain)
    api.post(f"/v1/admin/domains/{domain}/dkim/rotate",
             data={"dkim_key_size": "1024", "dkim_selector": "fresh"})
    _, [_, new] = _records(api, domain)

    def publish_and_send() -> None:
        _verify(services, account, domain, [spf, old, new])
        clock.advance(SIGNER_SECONDS)
        send(api, domain)

    send(api, domain)
    with Sink() as sink:
        deliver_in_rounds(services, sink, publish_and_send)
    dnsfunc = from_records([old, new])
    assert [verify_each(r.data, dnsfunc) for r in sink.received] == [
        [("rsa-sha256", old["name"].split("._domainkey.")[0], True)],
        [("rsa-sha256", "fresh", True)]]


def test_a_verification_after_the_week_drops_the_retired_key(
        api, services, account, clock, domain) -> None:
    spf, [old] = _records(api, domain)
    api.post(f"/v1/admin/domains/{domain}/dkim/rotate", data={"dkim_key_size": "1024"})
    _, [_, new] = _records(api, domain)
    _verify(services, account, domain, [spf, old, new])
    clock.advance(WEEK + 1)
    _verify(services, account, domain, [spf, new])
    assert [state for _, state in _keys(api, domain)] == ["active"]


def test_rotating_in_an_ed25519_key_adds_a_second_signature(api, services, account,
                                                           domain) -> None:
    spf, [rsa] = _records(api, domain)
    reply = api.post(f"/v1/admin/domains/{domain}/dkim/rotate", data={"dkim_algorithm": "ed25519"})
    assert reply.status_code == 200, reply.text
    [ed] = [k for k in reply.json()["dkim_keys"] if k["algorithm"] == "ed25519-sha256"]
    assert (ed["state"], ed["key_size"]) == ("pending", 256)
    assert ed["selector"].endswith("-ed")
    assert ed["dns_record"]["value"].startswith("v=DKIM1; k=ed25519; p=")

    _verify(services, account, domain, [spf, rsa, ed["dns_record"]])
    rsa_selector = rsa["name"].split("._domainkey.")[0]
    assert _keys(api, domain) == [(rsa_selector, "active"), (ed["selector"], "active")]
    data = _deliver_one(api, services, domain)
    assert verify_each(data, from_records([rsa, ed["dns_record"]])) == [
        ("rsa-sha256", rsa_selector, True), ("ed25519-sha256", ed["selector"], True)]


def test_a_second_rotation_replaces_the_pending_key(api, domain) -> None:
    [(current, _)] = _keys(api, domain)
    assert current.startswith("mh")  # mhYYYYMM, the default
    first = api.post(f"/v1/admin/domains/{domain}/dkim/rotate",
                     data={"dkim_key_size": "1024", "dkim_selector": "next"}).json()
    second = api.post(f"/v1/admin/domains/{domain}/dkim/rotate",
                      data={"dkim_key_size": "1024", "dkim_selector": "next"}).json()
    assert [k["state"] for k in second["dkim_keys"]] == ["active", "pending"]
    assert second["dkim_keys"][1]["selector"] == "next"
    assert second["dkim_keys"][1]["dns_record"] != first["dkim_keys"][1]["dns_record"]
    third = api.post(f"/v1/admin/domains/{domain}/dkim/rotate", data={"dkim_key_size": "1024"})
    assert _keys(api, domain) == [(current, "active"), (current + "b", "pending")]
    assert third.json()["dkim_keys"][1]["selector"] == current + "b"  # this month's second


@pytest.mark.parametrize("fields", [
    {"dkim_algorithm": "dsa"}, {"dkim_key_size": "4096"}, {"dkim_selector": "bad selector"},
], ids=lambda f: next(iter(f)))
def test_bad_rotation_fields_are_400_and_change_nothing(api, domain, fields) -> None:
    reply = api.post(f"/v1/admin/domains/{domain}/dkim/rotate", data=fields)
    assert reply.status_code == 400, reply.text
    assert reply.json()["message"]
    assert [state for _, state in _keys(api, domain)] == ["active"]


def test_a_selector_in_use_cannot_be_taken_again(api, domain) -> None:
    [(current, _)] = _keys(api, domain)
    reply = api.post(f"/v1/admin/domains/{domain}/dkim/rotate",
                     data={"dkim_key_size": "1024", "dkim_selector": current})
    assert reply.status_code == 400
    assert reply.json() == {
        "message": f"The DKIM selector {current} is already used by this domain"}


def test_another_accounts_domain_cannot_be_rotated_or_listed(live, services, domain) -> None:
    from mailhaven.accounts.service import create_account
    with services.db.transaction() as session:
        other = create_account(session, services.vault, name="O", email="o@o.test")
    with live.client(other.api_key) as intruder:
        for reply in (intruder.post(f"/v1/admin/domains/{domain}/dkim/rotate",
                                    data={"dkim_key_size": "1024"}),
                      intruder.get(f"/v1/admin/domains/{domain}/dkim/keys"),
                      intruder.put(f"/v3/domains/{domain}/dkim_selector",
                                   data={"dkim_selector": "x"})):
            assert (reply.status_code, reply.json()) == (404, {"message": "Domain not found"})


# -- Mailgun's PUT /v3/domains/{name}/dkim_selector ----------------------------------------
def test_changing_the_selector_renames_the_signing_key(api, services, account,
                                                       domain) -> None:
    spf, [before] = _records(api, domain)
    assert _verify(services, account, domain, [spf, before])["domain"]["state"] == "active"
    reply = api.put(f"/v3/domains/{domain}/dkim_selector", data={"dkim_selector": "Renamed"})
    assert (reply.status_code, reply.json()) == (200, {"message": "DKIM selector changed"})

    spf, [after] = _records(api, domain)
    assert after["name"] == f"renamed._domainkey.{domain}"
    assert (after["value"], after["valid"]) == (before["value"], "unknown")
    data = _deliver_one(api, services, domain)
    assert verify_each(data, from_records([after])) == [("rsa-sha256", "renamed", True)]
    # Only the old name is in DNS: the domain can't be active until the new one is.
    assert _verify(services, account, domain, [spf, before])["domain"]["state"] == "unverified"
    assert _verify(services, account, domain, [spf, after])["domain"]["state"] == "active"


def test_changing_the_selector_validates_and_may_change_nothing(api, domain) -> None:
    [(current, _)] = _keys(api, domain)
    assert api.put(f"/v3/domains/{domain}/dkim_selector").status_code == 200
    assert api.put(f"/v3/domains/{domain}/dkim_selector",
                   params={"dkim_selector": current}).status_code == 200
    assert _keys(api, domain) == [(current, "active")]
    api.post(f"/v1/admin/domains/{domain}/dkim/rotate",
             data={"dkim_key_size": "1024", "dkim_selector": "pending1"})
    for bad in ("a b", "x" * 64, "pending1"):
        reply = api.put(f"/v3/domains/{domain}/dkim_selector", data={"dkim_selector": bad})
        assert reply.status_code == 400, (bad, reply.text)
    assert _keys(api, domain) == [(current, "active"), ("pending1", "pending")]
    reply = api.put("/v3/domains/nope.example.com/dkim_selector", data={"dkim_selector": "x"})
    assert reply.status_code == 404
