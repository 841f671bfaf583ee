"""Sender identity (issue 10, finding 21): by default an account sends only as its own
domains; MAILHAVEN_SENDER_POLICY=any is Mailgun's accept-anything."""

from __future__ import annotations

import dataclasses

import pytest

from mailhaven.accounts.service import create_account
from mailhaven.config import Settings
from mailhaven.domains.models import Domain
from mailhaven.domains.service import create_domain
from mailhaven.errors import Forbidden
from mailhaven.sending import identity
from mailhaven.sending.service import send
from tests.sending.test_send_api import by_rcpt, delivered, events, not_rejected, queued
from tests.support import LiveServer

BODY = {"to": "ann@example.org", "subject": "Your password", "text": "Reset it here"}


def forbidden(reply, sender_domain: str, domain: str) -> None:  # type: ignore[no-untyped-def]
    assert reply.status_code == 403, reply.text
    assert reply.json() == {"message": identity.NOT_YOURS.format(sender_domain, domain)}


def mime(sender: str) -> dict:
    raw = f"From: {sender}\r\nTo: ann@example.org\r\nSubject: s\r\n\r\nbody\r\n".encode()
    return {"message": ("m.eml", raw, "message/rfc822")}


@pytest.fixture
def globex(services) -> str:  # type: ignore[no-untyped-def]
    """Another account's domain."""
    with services.db.transaction() as session:
        other = create_account(session, services.vault, name="Globex", email="o@globex.test")
        create_domain(session, services.vault, other.account_id, {"name": "mg.globex.test"},
                      services.clock)
    return "mg.globex.test"


def test_a_from_outside_the_accounts_domains_is_refused(api, services, domain,
                                                        globex) -> None:
    """The probe sent as any address through its own domain; as a bank, or as the account
    next door."""
    for sender, at in (("Security <security@bank.example>", "bank.example"),
                       (f"billing@{globex}", globex), ("x@acme-shop.test", "acme-shop.test"),
                       ("x@co.uk", "co.uk"),
                       ("x@evil-mg.acme.test.example", "evil-mg.acme.test.example")):
        forbidden(api.post(f"/v3/{domain}/messages", data={**BODY, "from": sender}), at,
                  domain)
    forbidden(api.post(f"/v3/{domain}/messages", data={
        **BODY, "from": f"news@{domain}", "h:From": "CEO <ceo@bank.example>"}),
        "bank.example", domain)
    forbidden(api.post(f"/v3/{domain}/messages", data={
        **BODY, "from": f"news@{domain}", "h:Sender": f"ops@{globex}"}), globex, domain)
    forbidden(api.post(f"/v3/{domain}/messages.mime", data={"to": "ann@example.org"},
                       files=mime("=?utf-8?q?Bank?= <security@bank.example>")),
              "bank.example", domain)
    reply = api.post(f"/v3/{domain}/messages", data={
        **BODY, "from": f"news@{domain}", "h:From": "not an address"})
    assert reply.json() == {"message": identity.UNREADABLE.format("From")}
    assert not_rejected(api, domain) == []
    assert len(events(api, domain, event="rejected")) == 9
    assert delivered(services) == []


def test_the_domains_organization_and_the_accounts_other_domains_may_send(
        api, services, account, domain) -> None:
    """The sending domain, its subdomains, its organizational domain (Mailgun's usual
    `news@acme.test` through `mg.acme.test`) and its other subdomains, and another domain of
    the account."""
    with services.db.transaction() as session:
        create_domain(session, services.vault, account[0], {"name": "acme-shop.test"},
                      services.clock)
    for n, sender in enumerate((f"News <news@{domain}>", f"eu@bounce.{domain.upper()}",
                                "Acme <hello@acme.test>", "a@shop.acme.test",
                                "Shop <hi@acme-shop.test>")):
        queued(api.post(f"/v3/{domain}/messages", data={
            **BODY, "from": sender, "to": f"r{n}@example.org", "h:Sender": f"ops@{domain}"}))
    queued(api.post(f"/v3/{domain}/messages.mime", data={"to": "r9@example.org"},
                    files=mime(f'"Acme, Inc." <news@{domain}>')))
    assert len(by_rcpt(delivered(services))) == 6


def test_another_domain_of_the_account_counts_once_verified_where_that_is_required(
        services, account, domain) -> None:
    with services.db.transaction() as session:
        create_domain(session, services.vault, account[0], {"name": "acme-shop.test"},
                      services.clock)
        session.query(Domain).filter_by(name=domain).update({"state": "active"})
    fields = [("from", "hello@acme-shop.test"), *BODY.items()]
    with pytest.raises(Forbidden, match="acme-shop.test is not a domain of this account"):
        send(services.db, services.vault, account[0], domain, fields, [], mime=False,
             clock=services.clock, require_verified=True)
    with services.db.transaction() as session:
        session.query(Domain).filter_by(name="acme-shop.test").update({"state": "active"})
    assert send(services.db, services.vault, account[0], domain, fields, [], mime=False,
                clock=services.clock, require_verified=True).recipients == 1


def test_the_any_policy_sends_as_anyone_as_mailgun_does(services, account, domain) -> None:
    anyone = dataclasses.replace(services, settings=services.settings.with_(
        sender_policy=identity.ANY))
    with LiveServer(anyone) as server, server.client(account[1]) as client:
        queued(client.post(f"/v3/{domain}/messages",
                           data={**BODY, "from": "someone@elsewhere.example"}))
    assert [got.message["From"] for got in delivered(services)] == ["someone@elsewhere.example"]


def test_the_policy_is_read_from_the_environment(monkeypatch) -> None:
    assert Settings.from_env().sender_policy == identity.DOMAIN
    monkeypatch.setenv("MAILHAVEN_SENDER_POLICY", "Any")
    assert Settings.from_env().sender_policy == identity.ANY
    monkeypatch.setenv("MAILHAVEN_SENDER_POLICY", "everyone")
    with pytest.raises(ValueError, match="MAILHAVEN_SENDER_POLICY must be one of domain, any"):
        Settings.from_env()


def test_a_from_is_read_as_written_encoded_names_and_comments_included(
        api, services, domain) -> None:
    """Before: the whole value was decoded first, so an encoded comma split the name (403
    'not a list of valid addresses'), and a comment made it unreadable too."""
    senders = ["=?iso-8859-1?q?M=FCller=2C_Hans?= <h@mg.acme.test>", "h@mg.acme.test (Hans)",
               "Hans (the boss, really) <h@mg.acme.test> (x)", '"Muller, Hans" <h@mg.acme.test>',
               "h(a)@mg.acme.test"]
    for n, sender in enumerate(senders):
        queued(api.post(f"/v3/{domain}/messages.mime", data={"to": f"m{n}@example.org"},
                        files=mime(sender)))
        queued(api.post(f"/v3/{domain}/messages", data={
            **BODY, "to": f"f{n}@example.org", "from": f"news@{domain}", "h:From": sender}))
    copies = by_rcpt(delivered(services))
    assert len(copies) == 2 * len(senders)
    assert copies["m0@example.org"].message["From"].addresses[0].display_name == "Müller, Hans"
    # a comment or an encoded name hides nobody: the address outside it is what is checked
    for sender in ("h@mg.acme.test (ceo@bank.example)",
                   "=?utf-8?q?ceo=40bank.example?= <h@mg.acme.test>"):
        queued(api.post(f"/v3/{domain}/messages.mime", data={"to": "x@example.org"},
                        files=mime(sender)))
    for sender in ("ceo@bank.example (h@mg.acme.test)",
                   "=?utf-8?q?h=40mg.acme.test?= <ceo@bank.example>"):
        forbidden(api.post(f"/v3/{domain}/messages.mime", data={"to": "x@example.org"},
                           files=mime(sender)), "bank.example", domain)
    reply = api.post(f"/v3/{domain}/messages.mime", data={"to": "x@example.org"},
                     files=mime("h@mg.acme.test (unclosed"))
    assert reply.json() == {"message": identity.UNREADABLE.format("From")}


def _verified(services, account_name: str, name: str) -> None:  # type: ignore[no-untyped-def]
    with services.db.transaction() as session:
        other = create_account(session, services.vault, name=account_name,
                               email=f"o@{account_name}.test")
        create_domain(session, services.vault, other.account_id, {"name": name},
                      services.clock)
        session.query(Domain).filter_by(name=name, account_id=other.account_id).update(
            {"state": "active"})


def test_a_from_at_another_accounts_verified_domain_is_refused_though_aligned(
        api, services, account, domain) -> None:
    """Relaxed alignment let mg.acme.test send as ceo@acme.test when acme.test is another
    account's verified domain: the closer owner of a name decides."""
    _verified(services, "parent", "acme.test")
    _verified(services, "shop", "shop.mg.acme.test")
    for sender, at in (("ceo@acme.test", "acme.test"), ("x@eu.acme.test", "eu.acme.test"),
                       ("x@shop.mg.acme.test", "shop.mg.acme.test"),
                       ("x@a.shop.mg.acme.test", "a.shop.mg.acme.test")):
        forbidden(api.post(f"/v3/{domain}/messages", data={**BODY, "from": sender}), at,
                  domain)
    with services.db.transaction() as session:  # unverified copies claim nothing
        other = create_account(session, services.vault, name="x", email="o@x.test")
        create_domain(session, services.vault, other.account_id, {"name": "bounce.mg.acme.test"},
                      services.clock)
    for n, sender in enumerate((f"news@{domain}", f"x@bounce.{domain}", f"x@eu.{domain}")):
        queued(api.post(f"/v3/{domain}/messages", data={
            **BODY, "from": sender, "to": f"r{n}@example.org"}))
    with services.db.transaction() as session:  # the account's own, closer: its own again
        create_domain(session, services.vault, account[0], {"name": "eu.acme.test"},
                      services.clock)
    queued(api.post(f"/v3/{domain}/messages", data={**BODY, "from": "x@eu.acme.test"}))
    assert len(delivered(services)) == 4
