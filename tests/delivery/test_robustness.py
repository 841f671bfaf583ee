"""A copy that can't be read or a server that stalls must not hold up the rest of the queue."""

from __future__ import annotations

import asyncio
import dataclasses

from sqlalchemy import delete, select

from mailhaven.delivery.models import Delivery
from mailhaven.vault import VaultKey
from tests.delivery.sinks import events, send
from tests.support import Sink, deliver_due


def test_a_copy_whose_key_is_gone_is_cancelled_and_the_rest_is_delivered(
        api, services, domain) -> None:
    send(api, domain, {"to": "gone@example.org"})
    send(api, domain, {"to": "kept@example.org"})
    with services.db.transaction() as session:
        gone = services.vault.find_subject(session, session.scalar(
            select(Delivery.account_id).limit(1)), "gone@example.org")
        session.execute(delete(VaultKey).where(VaultKey.id == gone.id))
    services.vault.forget(gone.id)
    with Sink() as sink:
        deliver_due(services, sink)
    assert [r.rcpt_tos for r in sink.received] == [["kept@example.org"]]
    with services.db.sessions() as session:
        statuses = sorted(session.scalars(select(Delivery.status)))
    assert statuses == ["cancelled", "delivered"]
    assert [e["recipient"] for e in events(api, domain, "delivered")] == ["kept@example.org"]


def test_an_attempt_that_outlives_its_share_of_the_lease_is_deferred(api, services,
                                                                     domain) -> None:
    send(api, domain, {"to": "slow@example.org"})
    short_lease = dataclasses.replace(
        services, settings=services.settings.with_(lease_seconds=1))
    with Sink() as sink:
        original = sink.controller.handler.handle_DATA

        async def slow_data(server, session, envelope):  # type: ignore[no-untyped-def]
            await asyncio.sleep(3)
            return await original(server, session, envelope)

        sink.controller.handler.handle_DATA = slow_data
        deliver_due(short_lease, sink)
    [failed] = events(api, domain, "failed")
    assert failed["severity"] == "temporary"
    assert failed["delivery-status"]["enhanced-code"] == "4.4.7"
    with services.db.sessions() as session:
        [row] = session.scalars(select(Delivery)).all()
    assert row.status == "queued" and row.lease_owner is None
