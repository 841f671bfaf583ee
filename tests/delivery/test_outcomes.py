"""What happens to a queued copy when the recipient's server accepts, defers, refuses or
hangs up — as the user sees it: the sink's mailbox, the Events API, the queue."""

from __future__ import annotations

import pytest

from mailhaven.delivery.backoff import FIRST_RETRY
from mailhaven.delivery.models import DELIVERED, FAILED, QUEUED
from tests.delivery.sinks import outcomes, queue_rows, refuse_first, send
from tests.support import Sink, SinkBehaviour, deliver_due

DAY = 24 * 3600


def test_accepted_mail_is_delivered_once(api, services, domain) -> None:
    message_id = send(api, domain)
    with Sink() as sink:
        deliver_due(services, sink)
        deliver_due(services, sink)  # nothing left to do: no second copy

    assert len(sink.received) == 1
    assert sink.received[0].rcpt_tos == ["ann@example.org"]
    assert sink.received[0].message["Message-ID"] == f"<{message_id}>"
    [delivered] = outcomes(api, domain)
    assert delivered["event"] == "delivered"
    assert delivered["log-level"] == "info"
    assert delivered["recipient"] == "ann@example.org"
    assert "severity" not in delivered and "reason" not in delivered
    status = delivered["delivery-status"]
    assert status["code"] == 250
    assert status["enhanced-code"] == "2.0.0"
    assert status["message"] == "OK queued"
    assert status["attempt-no"] == 1
    assert status["mx-host"] == "127.0.0.1"
    assert status["tls"] is False
    assert [r.status for r in queue_rows(services)] == [DELIVERED]


@pytest.mark.parametrize("stage, reply, enhanced, text, reason", [
    ("rcpt", "450 4.2.0 Mailbox busy", "4.2.0", "Mailbox busy", "generic"),
    # 4.7.x is the receiving server's security or policy status: it holds back the sender.
    ("rcpt", "421 4.7.0 Too many connections, slow down", "4.7.0",
     "Too many connections, slow down", "espblock"),
    ("data", "452 4.3.1 Insufficient system storage", "4.3.1", "Insufficient system storage",
     "generic"),
])
def test_a_deferral_is_retried_after_the_backoff_and_then_delivered(
        api, services, domain, clock, stage, reply, enhanced, text, reason) -> None:
    send(api, domain)
    behaviour = (SinkBehaviour(rcpt=refuse_first(1, reply)) if stage == "rcpt"
                 else SinkBehaviour(data=refuse_first(1, reply)))
    with Sink(behaviour) as sink:
        deliver_due(services, sink)
        assert sink.received == []
        [failed] = outcomes(api, domain)
        assert failed["event"] == "failed"
        assert failed["severity"] == "temporary"
        assert failed["reason"] == reason
        assert failed["log-level"] == "warn"
        status = failed["delivery-status"]
        assert status["code"] == int(reply[:3])
        assert status["enhanced-code"] == enhanced
        assert status["message"] == text
        assert status["attempt-no"] == 1
        assert status["mx-host"] == "127.0.0.1"
        # The first retry comes in minutes: 5 minutes give or take the jitter.
        wait = status["retry-seconds"]
        assert isinstance(wait, int)
        assert FIRST_RETRY * 0.9 <= wait <= FIRST_RETRY * 1.1 + 1
        assert [r.status for r in queue_rows(services)] == [QUEUED]

        clock.advance(wait - 1)
        deliver_due(services, sink)
        assert sink.received == []
        assert len(sink.rcpt_attempts) == 1  # not even tried early

        clock.advance(1)
        deliver_due(services, sink)
        assert len(sink.received) == 1

    failed, delivered = outcomes(api, domain)
    assert delivered["event"] == "delivered"
    assert delivered["delivery-status"]["code"] == 250
    assert delivered["delivery-status"]["attempt-no"] == 2
    assert [r.status for r in queue_rows(services)] == [DELIVERED]


def test_a_server_asking_for_a_longer_wait_is_honoured(api, services, domain, clock) -> None:
    send(api, domain)
    greylist = "451 4.7.1 Greylisted, please try again in 20 minutes"
    with Sink(SinkBehaviour(rcpt=refuse_first(1, greylist))) as sink:
        deliver_due(services, sink)
        [failed] = outcomes(api, domain)
        assert failed["severity"] == "temporary"
        assert failed["delivery-status"]["retry-seconds"] == 20 * 60

        clock.advance(20 * 60 - 1)
        deliver_due(services, sink)
        assert sink.received == []

        clock.advance(1)
        deliver_due(services, sink)
        assert len(sink.received) == 1
    assert [e["event"] for e in outcomes(api, domain)] == ["failed", "delivered"]


@pytest.mark.parametrize("stage", ["rcpt", "data"])
def test_a_5xx_refusal_is_a_permanent_bounce_never_retried(
        api, services, domain, clock, stage) -> None:
    send(api, domain)
    refusal = "550 5.1.1 No such user"
    behaviour = (SinkBehaviour(rcpt=lambda _rcpt: refusal) if stage == "rcpt"
                 else SinkBehaviour(data=lambda _rcpts: refusal))
    with Sink(behaviour) as sink:
        deliver_due(services, sink)
        for _ in range(3):
            clock.advance(DAY)
            deliver_due(services, sink)

    assert sink.received == []
    assert len(sink.rcpt_attempts) == 1
    [failed] = outcomes(api, domain)
    assert failed["event"] == "failed"
    assert failed["severity"] == "permanent"
    assert failed["reason"] == "bounce"
    assert failed["log-level"] == "error"
    status = failed["delivery-status"]
    assert status["code"] == 550
    assert status["enhanced-code"] == "5.1.1"
    assert status["message"] == "No such user"
    assert status["attempt-no"] == 1
    assert "retry-seconds" not in status
    assert [r.status for r in queue_rows(services)] == [FAILED]


def test_one_refused_recipient_does_not_stop_the_others(api, services, domain) -> None:
    send(api, domain, {"to": ["ann@example.org", "bob@example.org", "cat@example.org"]})
    behaviour = SinkBehaviour(
        rcpt=lambda rcpt: "550 5.1.1 No such user" if rcpt.startswith("bob@") else None)
    with Sink(behaviour) as sink:
        deliver_due(services, sink)

    assert sorted(r.rcpt_tos[0] for r in sink.received) == ["ann@example.org", "cat@example.org"]
    by_recipient = {e["recipient"]: e for e in outcomes(api, domain)}
    assert by_recipient["ann@example.org"]["event"] == "delivered"
    assert by_recipient["cat@example.org"]["event"] == "delivered"
    assert by_recipient["bob@example.org"]["event"] == "failed"
    assert by_recipient["bob@example.org"]["severity"] == "permanent"


def test_a_connection_dropped_during_data_is_retried_and_delivered_once(
        api, services, domain, clock) -> None:
    send(api, domain)
    with Sink(SinkBehaviour(drop_during_data=1)) as sink:
        deliver_due(services, sink)
        assert sink.dropped == 1
        assert sink.received == []
        [failed] = outcomes(api, domain)
        assert failed["severity"] == "temporary"
        assert failed["delivery-status"]["code"] == 421
        assert failed["delivery-status"]["enhanced-code"] == "4.4.2"

        clock.advance(failed["delivery-status"]["retry-seconds"])
        deliver_due(services, sink)
        clock.advance(DAY)
        deliver_due(services, sink)

    assert sink.dropped == 1
    assert len(sink.received) == 1
    assert [e["event"] for e in outcomes(api, domain)] == ["failed", "delivered"]
    assert outcomes(api, domain)[1]["delivery-status"]["attempt-no"] == 2


def test_deferrals_past_the_maximum_age_give_up_as_old(api, services, domain, clock) -> None:
    send(api, domain)
    max_age = services.settings.max_message_age_seconds
    assert max_age == 5 * DAY
    with Sink(SinkBehaviour(rcpt=lambda _rcpt: "451 4.3.0 Temporary local problem")) as sink:
        deliver_due(services, sink)
        clock.advance(max_age - 1)  # still young enough to try again
        deliver_due(services, sink)
        second = outcomes(api, domain)[-1]
        assert second["severity"] == "temporary"
        assert second["delivery-status"]["attempt-no"] == 2

        clock.advance(second["delivery-status"]["retry-seconds"])
        deliver_due(services, sink)
        clock.advance(DAY)
        deliver_due(services, sink)

    assert len(sink.rcpt_attempts) == 3
    first, second, last = outcomes(api, domain)
    assert [first["severity"], second["severity"]] == ["temporary", "temporary"]
    assert last["event"] == "failed"
    assert last["severity"] == "permanent"
    assert last["reason"] == "old"
    assert last["delivery-status"]["attempt-no"] == 3
    assert last["delivery-status"]["code"] == 451
    assert "retry-seconds" not in last["delivery-status"]
    assert [r.status for r in queue_rows(services)] == [FAILED]


def test_a_server_that_is_down_is_retried_until_it_is_back(
        api, services, domain, clock) -> None:
    send(api, domain)
    sink = Sink()  # not started yet: nothing listens on its port
    deliver_due(services, sink)
    [failed] = outcomes(api, domain)
    assert failed["severity"] == "temporary"
    assert failed["delivery-status"]["code"] == 421
    assert failed["delivery-status"]["enhanced-code"] == "4.4.1"

    with sink:
        clock.advance(failed["delivery-status"]["retry-seconds"])
        deliver_due(services, sink)
    assert len(sink.received) == 1
    assert outcomes(api, domain)[-1]["delivery-status"]["attempt-no"] == 2


def test_test_mode_reports_delivery_without_sending(api, services, domain) -> None:
    send(api, domain, {"o:testmode": "yes"})
    with Sink() as sink:
        deliver_due(services, sink)
    assert sink.received == []
    assert sink.rcpt_attempts == []
    [delivered] = outcomes(api, domain)
    assert delivered["event"] == "delivered"
    assert delivered["delivery-status"]["code"] == 650
    assert delivered["flags"]["is-test-mode"] is True


def test_each_batch_copy_is_personalised_and_reported_with_its_own_variables(
        api, services, domain) -> None:
    send(api, domain, {
        "to": ["ann@example.org", "bob@example.org"],
        "subject": "Hello %recipient.name%", "text": "Your code is %recipient.code%",
        "v:code": "%recipient.code%",
        "recipient-variables": '{"ann@example.org": {"name": "Ann", "code": "A1"},'
                               ' "bob@example.org": {"name": "Bob", "code": "B2"}}',
    })
    with Sink() as sink:
        deliver_due(services, sink)

    got = {r.rcpt_tos[0]: r.message for r in sink.received}
    assert got["ann@example.org"]["Subject"] == "Hello Ann"
    assert got["ann@example.org"]["To"] == "ann@example.org"
    assert "A1" in got["ann@example.org"].get_body().get_content()
    assert got["bob@example.org"]["Subject"] == "Hello Bob"
    assert "B2" in got["bob@example.org"].get_body().get_content()
    variables = {e["recipient"]: e["user-variables"] for e in outcomes(api, domain)}
    assert variables == {"ann@example.org": {"code": "A1"}, "bob@example.org": {"code": "B2"}}
