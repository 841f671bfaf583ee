"""A domain's message_ttl (Mailgun's, set through the domains API) is how long the purge
keeps that domain's stored messages: never longer than its account's message_bodies period,
and nobody else's messages are touched."""

from __future__ import annotations

from sqlalchemy import select

from mailhaven.accounts.service import create_account
from mailhaven.domains.service import create_domain
from mailhaven.events.models import Event
from mailhaven.retention import service
from mailhaven.retention.categories import DAY
from tests.delivery.sinks import send
from tests.support import Sink, deliver_due

HOUR = 3600.0


def _key(services, message_id: str) -> str:  # type: ignore[no-untyped-def]
    with services.db.sessions() as session:
        for account_id in session.scalars(select(Event.account_id).distinct()):
            key = session.scalar(select(Event.storage_key).where(
                Event.message_id_index == services.vault.message_index(account_id, message_id))
                .limit(1))
            if key:
                return key
    raise AssertionError("no event for the message")


def _stored(api, domain: str, key: str) -> int:  # type: ignore[no-untyped-def]
    return api.get(f"/v3/domains/{domain}/messages/{key}").status_code


def _both_counts(services, clock) -> int:  # type: ignore[no-untyped-def]
    """What a dry run says would go, checked against what the purge then removes."""
    expected = service.run(services.db, clock, dry_run=True)["message_bodies"]
    assert service.run(services.db, clock, batch=2)["message_bodies"] == expected
    return expected


def test_a_domains_message_ttl_purges_its_messages_only(api, live, services, account, domain,
                                                        clock) -> None:
    with services.db.transaction() as session:
        create_domain(session, services.vault, account[0],
                      {"name": "other.acme.test", "dkim_key_size": "1024"}, services.clock)
        issued = create_account(session, services.vault, name="Globex",
                                email="ops@globex.test", clock=services.clock)
        create_domain(session, services.vault, issued.account_id,
                      {"name": "mg.globex.test", "dkim_key_size": "1024"}, services.clock)
    assert api.put(f"/v4/domains/{domain}", data={"message_ttl": "7200"}).status_code == 200
    with live.client(issued.api_key) as globex:
        assert globex.put("/v4/domains/mg.globex.test",
                          data={"message_ttl": "86400"}).status_code == 200
        with Sink() as sink:
            short = _key(services, send(api, domain))
            other = _key(services, send(api, "other.acme.test"))
            theirs = _key(services, send(globex, "mg.globex.test"))
            deliver_due(services, sink)

        clock.advance(HOUR)
        assert _both_counts(services, clock) == 0
        clock.advance(HOUR + 60)  # past the domain's two hours
        assert _both_counts(services, clock) == 1
        assert _stored(api, domain, short) == 404
        assert _stored(api, "other.acme.test", other) == 200  # the account's 3 days
        assert _stored(globex, "mg.globex.test", theirs) == 200  # its own day

        clock.advance(DAY)
        assert _both_counts(services, clock) == 1
        assert _stored(globex, "mg.globex.test", theirs) == 404
        assert _stored(api, "other.acme.test", other) == 200
        clock.advance(2 * DAY)
        assert _both_counts(services, clock) == 1
        assert _stored(api, "other.acme.test", other) == 404


def test_an_account_period_shortened_below_a_domains_ttl_wins(api, services, domain,
                                                               clock) -> None:
    assert api.put("/v1/privacy/retention", json={"message_bodies": 10}).status_code == 200
    assert api.put(f"/v4/domains/{domain}",
                   data={"message_ttl": str(int(5 * DAY))}).status_code == 200
    assert api.put("/v1/privacy/retention", json={"message_bodies": 2}).status_code == 200
    with Sink() as sink:
        key = _key(services, send(api, domain))
        deliver_due(services, sink)
    clock.advance(DAY)
    assert _both_counts(services, clock) == 0
    clock.advance(DAY + 60)
    assert _both_counts(services, clock) == 1  # two days, not the domain's five
    assert _stored(api, domain, key) == 404

