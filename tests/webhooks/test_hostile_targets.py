"""Webhook targets chosen by an attacker: a stored URL the sender can't use, and a name whose
DNS answer changes between the check and the connection (DNS rebinding)."""

from __future__ import annotations

import json
import time

from sqlalchemy import select, update

from mailhaven.accounts.service import create_account
from mailhaven.domains.service import create_domain
from mailhaven.webhooks.models import WebhookDelivery
from tests.support import WebhookReceiver, send_webhooks

# What finding 3 stored before URLs were checked at creation.
UNUSABLE = ["http://b.example:99999/x", "http://b.example:abc/x", "http://[::1"]
STUCK_ROWS = 60  # three claims' worth, due before A's event


def _send(client, domain: str) -> None:  # type: ignore[no-untyped-def]
    reply = client.post(f"/v3/{domain}/messages", data={
        "from": f"news@{domain}", "to": "ann@example.org", "subject": "Hi", "text": "Hi"})
    assert reply.status_code == 200, reply.text


def _other_tenant(services, live):  # type: ignore[no-untyped-def]
    with services.db.transaction() as session:
        other = create_account(session, services.vault, name="B", email="ops@b.test")
        create_domain(session, services.vault, other.account_id, {"name": "mg.b.test"},
                      services.clock)
    return other, live.client(other.api_key)


def test_unusable_stored_urls_do_not_hold_up_another_account(api, services, live, clock,
                                                           domain) -> None:
    other, b_client = _other_tenant(services, live)
    with b_client, WebhookReceiver() as receiver:
        assert b_client.post("/v1/webhooks", data={"url": "http://b.example/x",
                                                   "event_types": "accepted"}).status_code == 200
        _send(b_client, "mg.b.test")
        with services.db.transaction() as session:  # as if stored before the fix
            [row] = session.scalars(select(WebhookDelivery).where(
                WebhookDelivery.account_id == other.account_id))
            session.execute(WebhookDelivery.__table__.insert(), [
                {"account_id": row.account_id, "domain_id": row.domain_id,
                 "event_id": row.event_id, "webhook": "accepted",
                 "url": UNUSABLE[n % len(UNUSABLE)], "next_attempt_at": clock.now() - 60,
                 "created_at": row.created_at, "updated_at": row.updated_at,
                 "status": "pending", "attempts": 0, "attempt_log": "[]"}
                for n in range(STUCK_ROWS - 1)])
            session.execute(update(WebhookDelivery).where(WebhookDelivery.id == row.id)
                            .values(url=UNUSABLE[0], next_attempt_at=clock.now() - 60))
        assert api.post(f"/v3/domains/{domain}/webhooks",
                        data={"id": "accepted", "url": receiver.url}).status_code == 200
        _send(api, domain)

        started = time.monotonic()
        assert send_webhooks(services) == STUCK_ROWS + 1
        assert time.monotonic() - started < 5  # the whole batch once failed, every 60 s
        assert [h.json["event-data"]["event"] for h in receiver.received] == ["accepted"]
        clock.advance(24 * 3600)
        assert send_webhooks(services) == 0  # settled for good, not retried forever

    with services.db.sessions() as session:
        stuck = session.scalars(select(WebhookDelivery).where(
            WebhookDelivery.account_id == other.account_id)).all()
    assert len(stuck) == STUCK_ROWS
    assert {r.status for r in stuck} == {"gave-up"}
    assert all("invalid URL" in json.loads(r.attempt_log)[0]["error"] for r in stuck)
