"""When a message was meant to go and when it was first tried, as Mailgun's events say it:
`message.scheduled-for` on the events of an `o:deliverytime` send, and
`delivery-status.first-delivery-attempt-seconds` on delivered and failed events — in the
Events API and in webhook payloads alike."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

from sqlalchemy import select, update

from mailhaven.clock import format_rfc2822
from mailhaven.delivery import queue
from mailhaven.delivery.models import Delivery
from tests.delivery.sinks import events, outcomes, refuse_first, send
from tests.support import Sink, SinkBehaviour, WebhookReceiver, deliver_due, send_webhooks


def test_a_scheduled_messages_events_say_when_it_was_scheduled_for(api, services, clock,
                                                                   domain) -> None:
    when = int(clock.now()) + 3600
    send(api, domain, {"o:deliverytime": format_datetime(datetime.fromtimestamp(when, UTC))})
    send(api, domain, {"to": "bob@example.org"})
    clock.advance(3600)
    with Sink() as sink:
        deliver_due(services, sink)
    found = events(api, domain)
    scheduled = [e for e in found if e["recipient"] == "ann@example.org"]
    assert [e["event"] for e in scheduled] == ["accepted", "delivered"]
    # Mailgun's Events API: a string, the date asked for (its dates are RFC 2822)
    assert all(e["message"]["scheduled-for"] == format_rfc2822(when) for e in scheduled)
    assert format_rfc2822(when).endswith(" GMT")
    assert all("scheduled-for" not in e["message"]
               for e in found if e["recipient"] == "bob@example.org")


def test_the_first_attempt_is_timed_from_acceptance_and_kept_through_retries(
        api, services, clock, domain) -> None:
    send(api, domain)
    clock.advance(7.25)
    with Sink(SinkBehaviour(rcpt=refuse_first(1, "450 4.2.0 Mailbox busy"))) as sink:
        deliver_due(services, sink)
        [failed] = outcomes(api, domain)
        clock.advance(failed["delivery-status"]["retry-seconds"])
        deliver_due(services, sink)
    failed, delivered = outcomes(api, domain)
    assert failed["delivery-status"]["attempt-no"] == 1
    assert failed["delivery-status"]["first-delivery-attempt-seconds"] == 7.25
    assert delivered["delivery-status"]["attempt-no"] == 2
    assert delivered["delivery-status"]["first-delivery-attempt-seconds"] == 7.25


def test_a_scheduled_messages_first_attempt_counts_from_its_acceptance(api, services, clock,
                                                                       domain) -> None:
    later = datetime.fromtimestamp(int(clock.now()) + 600, UTC)
    accepted_at = clock.now()
    send(api, domain, {"o:deliverytime": format_datetime(later)})
    clock.advance(later.timestamp() - accepted_at)
    with Sink() as sink:
        deliver_due(services, sink)
    [delivered] = outcomes(api, domain)
    assert delivered["delivery-status"]["first-delivery-attempt-seconds"] == round(
        later.timestamp() - accepted_at, 3)


def test_a_suppressed_copys_failure_is_timed_too(api, services, clock, domain) -> None:
    assert api.post(f"/v3/{domain}/bounces", data={"address": "ann@example.org"}) \
        .status_code == 200
    send(api, domain)
    clock.advance(2)
    deliver_due(services)
    [failed] = outcomes(api, domain)
    assert failed["delivery-status"]["code"] == 605
    assert failed["delivery-status"]["first-delivery-attempt-seconds"] == 2.0


def test_a_copy_put_back_untried_has_not_had_its_first_attempt(api, services, clock,
                                                               domain) -> None:
    """A claim held back by pacing is no attempt: the first one is timed when it comes."""
    send(api, domain)
    [job] = queue.claim(services.db, services.vault, owner="w", now=clock.now(), limit=1,
                        lease_seconds=60)
    assert job.first_attempt_seconds == 0.0
    assert queue.put_back(services.db, job, now=clock.now(), due=clock.now() + 30)
    with services.db.sessions() as session:
        assert session.scalar(select(Delivery.first_attempt_at)) is None
    clock.advance(30)
    with Sink() as sink:
        deliver_due(services, sink)
    [delivered] = outcomes(api, domain)
    assert delivered["delivery-status"]["attempt-no"] == 1
    assert delivered["delivery-status"]["first-delivery-attempt-seconds"] == 30.0


def test_webhook_payloads_carry_the_same_fields(api, services, clock, domain) -> None:
    when = int(clock.now()) + 60
    with WebhookReceiver() as receiver, Sink() as sink:
        api.post(f"/v4/domains/{domain}/webhooks",
                 data={"url": receiver.url, "event_types": ["accepted", "delivered"]})
        send(api, domain, {"o:deliverytime": format_datetime(datetime.fromtimestamp(when, UTC))})
        clock.advance(60)
        deliver_due(services, sink)
        assert send_webhooks(services) == 2
    posted = {hook.json["event-data"]["event"]: hook.json["event-data"]
              for hook in receiver.received}
    assert posted["accepted"]["message"]["scheduled-for"] == format_rfc2822(when)
    assert posted["delivered"]["message"]["scheduled-for"] == format_rfc2822(when)
    assert posted["delivered"]["delivery-status"]["first-delivery-attempt-seconds"] == 60.0


def test_a_copy_retried_before_the_time_was_kept_leaves_the_field_out(api, services,
                                                                      domain) -> None:
    """A copy queued (and tried) by a Mailhaven older than revision 0023: its first attempt
    is unknown, and a later one is not passed off as the first."""
    send(api, domain)
    with services.db.transaction() as session:
        session.execute(update(Delivery).values(attempts=1, first_attempt_at=None))
    with Sink() as sink:
        deliver_due(services, sink)
    [delivered] = outcomes(api, domain)
    assert delivered["delivery-status"]["attempt-no"] == 2
    assert "first-delivery-attempt-seconds" not in delivered["delivery-status"]
