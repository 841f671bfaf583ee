"""A domain's queues: `DELETE /v3/{domain}/envelopes` cancels its scheduled and queued mail
(a copy a worker is attempting is cancelled unless that attempt ends it),
`GET /v3/domains/{domain}/sending_queues` shows them; both to the domain's owner only."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx

from mailhaven.delivery import queue
from mailhaven.delivery.models import CANCELLED, DELIVERED, QUEUED
from mailhaven.domains.service import create_domain
from tests.delivery.sinks import events, queue_rows, refuse_first, send
from tests.support import LiveServer, Sink, SinkBehaviour, deliver_due

HOUR = 3600


def _later(clock, seconds: float) -> str:  # type: ignore[no-untyped-def]
    return format_datetime(datetime.fromtimestamp(int(clock.now()) + seconds, UTC),
                           usegmt=True)


def _queues(api: httpx.Client, domain: str) -> dict:
    reply = api.get(f"/v3/domains/{domain}/sending_queues")
    assert reply.status_code == 200, reply.text
    return reply.json()


def _cancel(api: httpx.Client, domain: str) -> None:
    reply = api.delete(f"/v3/{domain}/envelopes")
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"message": "done"}


def _a_retrying_copy(api, services, clock, domain) -> None:  # type: ignore[no-untyped-def]
    """Dan's copy, deferred once and waiting for its retry."""
    send(api, domain, {"to": "dan@example.org"})
    with Sink(SinkBehaviour(rcpt=refuse_first(1, "450 4.2.0 Mailbox busy"))) as sink:
        deliver_due(services, sink)
    assert [e["severity"] for e in events(api, domain, "failed")] == ["temporary"]


def test_the_queues_count_scheduled_and_regular_copies(api, services, clock, domain) -> None:
    assert _queues(api, domain) == {"regular": {"is_disabled": False, "queued": 0},
                                    "scheduled": {"is_disabled": False, "queued": 0}}
    _a_retrying_copy(api, services, clock, domain)
    send(api, domain, {"to": "ann@example.org", "o:deliverytime": _later(clock, HOUR)})
    send(api, domain, {"to": "bob@example.org, cat@example.org",
                       "o:deliverytime": _later(clock, 2 * HOUR)})
    send(api, domain, {"to": "eve@example.org"})  # due now
    assert _queues(api, domain) == {"regular": {"is_disabled": False, "queued": 2},
                                    "scheduled": {"is_disabled": False, "queued": 3}}
    with Sink() as sink:
        deliver_due(services, sink)  # Eve's goes; Dan's retry is not due yet
        assert _queues(api, domain)["regular"]["queued"] == 1
        clock.advance(HOUR)
        deliver_due(services, sink)
    assert _queues(api, domain) == {"regular": {"is_disabled": False, "queued": 0},
                                    "scheduled": {"is_disabled": False, "queued": 2}}


def test_an_unverified_domain_shows_its_queues_disabled_where_verification_is_required(
        services, account, domain) -> None:
    strict = dataclasses.replace(
        services, settings=services.settings.with_(require_verified_domains=True))
    with LiveServer(strict) as server, server.client(account[1]) as client:
        body = _queues(client, domain)
    disabled = {"is_disabled": True, "queued": 0, "disabled": {
        "until": "", "reason": "The domain is unverified and requires DNS configuration"}}
    assert body == {"regular": disabled, "scheduled": disabled}


def test_cancelling_removes_scheduled_due_and_retrying_mail_for_good(api, services, clock,
                                                                    domain) -> None:
    _a_retrying_copy(api, services, clock, domain)
    send(api, domain, {"to": "ann@example.org", "o:deliverytime": _later(clock, HOUR)})
    send(api, domain, {"to": "bob@example.org"})
    _cancel(api, domain)
    assert [r.status for r in queue_rows(services)] == [CANCELLED] * 3
    assert all(r.lease_owner is None for r in queue_rows(services))
    with Sink() as sink:
        clock.advance(2 * HOUR)  # past the schedule and the retry
        deliver_due(services, sink)
    assert sink.received == [] and sink.rcpt_attempts == []
    # No event for a cancelled copy (Mailgun documents none): the log shows what was sent.
    assert [e["event"] for e in events(api, domain)] == ["accepted", "failed", "accepted",
                                                         "accepted"]
    assert _queues(api, domain)["regular"]["queued"] == 0
    _cancel(api, domain)  # nothing left: still done


def test_cancelling_spares_a_copy_a_worker_is_attempting(api, services, clock,
                                                         domain) -> None:
    send(api, domain, {"to": "ann@example.org"})
    send(api, domain, {"to": "bob@example.org"})
    [job] = queue.claim(services.db, services.vault, owner="worker-1", now=clock.now(),
                        limit=1, lease_seconds=60)
    _cancel(api, domain)
    statuses = {r.id: r.status for r in queue_rows(services)}
    assert statuses.pop(job.delivery_id) == QUEUED
    assert list(statuses.values()) == [CANCELLED]
    # The worker records what came of its attempt, as if nothing had happened meanwhile.
    recorded = queue.settle(services.db, services.vault, job, now=clock.now(),
                            status=DELIVERED, next_attempt_at=None, event="delivered",
                            extra={"delivery-status": {"code": 250, "message": "OK"}})
    assert recorded is not None
    assert {r.id: r.status for r in queue_rows(services)}[job.delivery_id] == DELIVERED
    assert [e["recipient"] for e in events(api, domain, "delivered")] == [job.email]


def test_a_copy_in_flight_whose_attempt_is_deferred_is_cancelled_not_retried(
        api, services, clock, domain) -> None:
    send(api, domain, {"to": "ann@example.org"})
    [job] = queue.claim(services.db, services.vault, owner="worker-1", now=clock.now(),
                        limit=1, lease_seconds=60)
    _cancel(api, domain)
    # The attempt ends in a 4xx: it would be queued for a retry, but the owner cancelled.
    recorded = queue.settle(services.db, services.vault, job, now=clock.now(), status=QUEUED,
                            next_attempt_at=clock.now() + 300, event="failed",
                            extra={"severity": "temporary",
                                   "delivery-status": {"code": 450}})
    assert recorded is not None  # the attempt's own event is still recorded
    assert [r.status for r in queue_rows(services)] == [CANCELLED]
    clock.advance(400)
    with Sink() as sink:
        deliver_due(services, sink)
    assert sink.received == []
    assert _queues(api, domain)["regular"]["queued"] == 0


def test_a_copy_in_flight_put_back_by_pacing_is_cancelled(api, services, clock,
                                                          domain) -> None:
    send(api, domain, {"to": "ann@example.org"})
    [job] = queue.claim(services.db, services.vault, owner="worker-1", now=clock.now(),
                        limit=1, lease_seconds=60)
    _cancel(api, domain)
    assert queue.put_back(services.db, job, now=clock.now(), due=clock.now() + 5)
    assert [r.status for r in queue_rows(services)] == [CANCELLED]
    clock.advance(10)
    with Sink() as sink:
        deliver_due(services, sink)
    assert sink.received == []


def test_a_copy_in_flight_whose_worker_died_is_cancelled_by_the_next_claim(
        api, services, clock, domain) -> None:
    send(api, domain, {"to": "ann@example.org"})
    queue.claim(services.db, services.vault, owner="worker-that-died", now=clock.now(),
                limit=1, lease_seconds=60)
    _cancel(api, domain)
    clock.advance(61)
    with Sink() as sink:
        deliver_due(services, sink)
    assert sink.received == []
    assert [r.status for r in queue_rows(services)] == [CANCELLED]


def test_a_lease_that_ran_out_does_not_keep_a_copy_from_being_cancelled(
        api, services, clock, domain) -> None:
    send(api, domain, {"to": "ann@example.org"})
    [job] = queue.claim(services.db, services.vault, owner="worker-that-died",
                        now=clock.now(), limit=1, lease_seconds=60)
    clock.advance(61)
    _cancel(api, domain)
    assert [r.status for r in queue_rows(services)] == [CANCELLED]
    late = queue.settle(services.db, services.vault, job, now=clock.now(), status=DELIVERED,
                        next_attempt_at=None, event="delivered",
                        extra={"delivery-status": {"code": 250, "message": "OK"}})
    assert late is None  # its fenced settle finds the copy gone from the queue


def test_cancelling_touches_only_that_domain(api, services, account, clock, domain,
                                            second_account, second_api) -> None:
    with services.db.transaction() as session:
        create_domain(session, services.vault, account[0], {"name": "news.acme.test"},
                      services.clock)
    send(api, domain, {"to": "ann@example.org"})
    send(api, "news.acme.test", {"to": "bob@example.org"})
    send(second_api, second_account.domain, {"to": "cat@example.org"})
    # Another account is told the domain does not exist, and cancels nothing.
    for client, name in ((second_api, domain), (api, second_account.domain)):
        reply = client.delete(f"/v3/{name}/envelopes")
        assert reply.status_code == 404
        assert reply.json() == {"message": "domain not found"}
        reply = client.get(f"/v3/domains/{name}/sending_queues")
        assert reply.status_code == 404
        assert reply.json() == {"message": "Domain not found"}
    assert [r.status for r in queue_rows(services)] == [QUEUED] * 3
    _cancel(api, domain)
    assert [r.status for r in queue_rows(services)] == [CANCELLED, QUEUED, QUEUED]
    assert _queues(api, "news.acme.test")["regular"]["queued"] == 1
    assert _queues(second_api, second_account.domain)["regular"]["queued"] == 1


def test_a_long_queue_is_cancelled_in_several_transactions(api, services, domain,
                                                           monkeypatch) -> None:
    monkeypatch.setattr(queue, "CANCEL_BATCH", 2)
    send(api, domain, {"to": ", ".join(f"r{n}@example.org" for n in range(5))})
    _cancel(api, domain)
    assert [r.status for r in queue_rows(services)] == [CANCELLED] * 5


def test_the_endpoints_are_described_in_the_openapi_document(api) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    resend = paths["/v3/domains/{domain_name}/messages/{storage_key}"]["post"]
    for kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
        schema = resend["requestBody"]["content"][kind]["schema"]
        assert schema["required"] == ["to"] and "to" in schema["properties"]
    assert {"200", "400", "404"} <= set(resend["responses"])
    assert resend["responses"]["200"]["content"]["application/json"]["example"]["message"] \
        == "Queued. Thank you."
    envelopes = paths["/v3/{domain_name}/envelopes"]["delete"]["responses"]
    assert envelopes["200"]["content"]["application/json"]["example"] == {"message": "done"}
    assert envelopes["404"]["content"]["application/json"]["example"] == {
        "message": "domain not found"}
    queues = paths["/v3/domains/{domain_name}/sending_queues"]["get"]["responses"]
    assert set(queues["200"]["content"]["application/json"]["example"]) == {"regular",
                                                                            "scheduled"}
