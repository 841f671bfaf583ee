"""Who may hold a domain name: nobody the mailbox providers' or ours; any account until one
verifies it, then only that one (SPEC P2, issue 10 item 16)."""

from __future__ import annotations

import asyncio
import dataclasses
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from mailhaven.accounts.service import create_account
from mailhaven.domains.models import Domain
from mailhaven.domains.verify import DomainChecker
from tests.delivery.sinks import DnsServer
from tests.domains.test_domains_api import create, created
from tests.domains.test_verify import _txt
from tests.support import LiveServer

NAME = "brand.example.com"


@pytest.fixture
def other(services) -> str:  # type: ignore[no-untyped-def]
    """Account B's API key (account A is the `account` fixture)."""
    with services.db.transaction() as session:
        return create_account(session, services.vault, name="B", email="b@b.test").api_key


def _dkim(body: dict) -> dict:
    return next(r for r in body["sending_dns_records"] if "._domainkey." in r["name"])


def _zone(*bodies: dict) -> dict:
    """DNS publishing the SPF record and the DKIM records of these copies of NAME."""
    zone: dict = {NAME: {"TXT": [_txt(bodies[0]["sending_dns_records"][0]["value"])]}}
    for body in bodies:
        record = _dkim(body)
        zone.setdefault(record["name"], {"TXT": []})["TXT"].append(_txt(record["value"]))
    return zone


def _resolving(services, dns_server: DnsServer, **settings: object):  # type: ignore[no-untyped-def]
    return dataclasses.replace(services, settings=services.settings.with_(
        dns_nameserver=dns_server.address, **settings))


@pytest.mark.parametrize("name", [
    "gmail.com", "GMail.com.", "mg.gmail.com", "outlook.com", "hotmail.com", "yahoo.com",
    "icloud.com", "gmx.de", "gmx.net", "web.de", "proton.me", "yandex.ru", "qq.com",
    "163.com", "mx.mailhaven.test", "bounces.mx.mailhaven.test"])
def test_nobody_may_add_a_provider_s_name_or_ours(api, name: str) -> None:
    reply = create(api, name)
    normal = name.lower().rstrip(".")
    assert reply.status_code == 400
    assert reply.json() == {
        "message": f"The domain name {normal} is reserved: no account may add it"}
    assert api.get(f"/v3/domains/{normal}").status_code == 404


def test_the_operator_reserves_more_names_and_lookalikes_stay_free(services, account) -> None:
    stricter = dataclasses.replace(services, settings=services.settings.with_(
        reserved_domains=("corp.example",)))
    with LiveServer(stricter) as live, live.client(account[1]) as api:
        for name in ("corp.example", "mail.corp.example"):
            assert create(api, name).status_code == 400
        for name in ("notgmail.com", "gmail.com.example.org", "mycorp.example"):
            assert created(create(api, name))["domain"]["state"] == "unverified"


def test_an_unverified_copy_does_not_keep_a_name_from_others(api, live, other) -> None:
    squatted = created(create(api, NAME))
    with live.client(other) as owner:
        own = created(create(owner, NAME))
        assert owner.get(f"/v3/domains/{NAME}").json()["domain"]["id"] == own["domain"]["id"]
        assert created(create(owner, "second.example.com"))  # and its other names as usual
        assert create(owner, NAME).json() == {  # once per account
            "message": f"The domain name {NAME} is already taken"}
    assert _dkim(squatted)["value"] != _dkim(own)["value"]  # each copy has its own key
    assert api.get(f"/v3/domains/{NAME}").json()["domain"]["id"] == squatted["domain"]["id"]


def test_the_first_account_to_verify_takes_the_name(api, services, account, other) -> None:
    squatted = created(create(api, NAME))
    with LiveServer(services) as live, live.client(other) as owner:
        own = created(create(owner, NAME))
    message = {"from": f"news@{NAME}", "to": "ann@example.org", "subject": "s", "text": "t"}
    # DNS shows both copies' keys (the same selector name): the first to verify wins.
    with DnsServer(_zone(own, squatted)) as dns_server:
        strict = _resolving(services, dns_server, require_verified_domains=True)
        with LiveServer(strict) as live, live.client(other) as owner, \
                live.client(account[1]) as squatter:
            verified = owner.put(f"/v4/domains/{NAME}/verify")
            assert verified.status_code == 200 and verified.json()["domain"]["state"] == "active"
            refused = squatter.put(f"/v4/domains/{NAME}/verify")
            assert refused.status_code == 400
            assert refused.json() == {"message": (
                f"The domain name {NAME} has been verified by another account: only one "
                f"account can verify a name")}
            assert squatter.get(f"/v3/domains/{NAME}").json()["domain"]["state"] == "unverified"
            assert squatter.post(f"/v3/{NAME}/messages", data=message).status_code == 403
            assert owner.post(f"/v3/{NAME}/messages", data=message).status_code == 200
            with live.client(_third(services)) as third:
                assert create(third, NAME).json() == {
                    "message": f"The domain name {NAME} is already taken"}
        # The periodic check, which finds the squatter's key published too, agrees.
        asyncio.run(DomainChecker(strict).run_once())
    with services.db.sessions() as session:
        states = dict(session.execute(select(Domain.id, Domain.state).where(
            Domain.name == NAME)).all())
    assert states == {own["domain"]["id"]: "active", squatted["domain"]["id"]: "unverified"}


def _third(services) -> str:  # type: ignore[no-untyped-def]
    with services.db.transaction() as session:
        return create_account(session, services.vault, name="C", email="c@c.test").api_key


def test_two_accounts_verifying_at_once_make_one_owner(api, services, account, other) -> None:
    squatted = created(create(api, NAME))
    with LiveServer(services) as live, live.client(other) as owner:
        own = created(create(owner, NAME))
    with DnsServer(_zone(own, squatted)) as dns_server, \
            LiveServer(_resolving(services, dns_server)) as live:
        def verify(key: str) -> int:
            with live.client(key) as client:
                return client.put(f"/v4/domains/{NAME}/verify").status_code

        with ThreadPoolExecutor(2) as pool:
            assert sorted(pool.map(verify, [account[1], other])) == [200, 400]
    with services.db.sessions() as session:
        assert session.scalars(select(Domain.state).where(Domain.name == NAME)).all() in (
            ["active", "unverified"], ["unverified", "active"])


def test_the_database_holds_one_verified_copy_of_a_name(api, live, services, other) -> None:
    created(create(api, NAME))
    with live.client(other) as owner:
        created(create(owner, NAME))
    with pytest.raises(IntegrityError), services.db.transaction() as session:
        session.execute(update(Domain).where(Domain.name == NAME).values(state="active"))


def test_the_privacy_form_reaches_the_verified_copy_only(api, services, account,
                                                        other) -> None:
    """A recipient names a domain, not an account: the form mails from, and files the
    request with, the account that verified it; an unverified copy gets nothing."""
    squatted = created(create(api, NAME))
    with LiveServer(services) as live, live.client(other) as owner:
        own = created(create(owner, NAME))
    form = {"type": "access", "email": "ann@example.org", "domain": NAME}
    with DnsServer(_zone(own, squatted)) as dns_server:
        strict = _resolving(services, dns_server, require_verified_domains=True)
        with LiveServer(strict) as live, live.client(other) as owner, \
                live.client(account[1]) as squatter, live.client() as anyone:
            assert anyone.post("/v1/privacy/requests", data=form).status_code == 202
            assert owner.get(f"/v3/{NAME}/events").json()["items"] == []  # not verified yet
            assert squatter.get(f"/v3/{NAME}/events").json()["items"] == []
            assert owner.put(f"/v4/domains/{NAME}/verify").status_code == 200
            assert anyone.post("/v1/privacy/requests", data=form).status_code == 202
            [mailed] = owner.get(f"/v3/{NAME}/events").json()["items"]
            assert mailed["envelope"]["sender"] == f"privacy@{NAME}"
            assert squatter.get(f"/v3/{NAME}/events").json()["items"] == []
