"""Connection reuse: many copies to one mail server share a few SMTP sessions."""

from __future__ import annotations

from mailhaven.delivery.transport import CONNECTIONS_PER_HOST
from tests.delivery.sinks import CountingSink, deliver_in_rounds, outcomes, send
from tests.support import SinkBehaviour, deliver_due


def test_many_messages_to_one_server_share_connections(api, services, domain) -> None:
    recipients = [f"user{i}@example.org" for i in range(30)]
    send(api, domain, {"to": recipients})
    with CountingSink() as sink:
        deliver_due(services, sink)

    assert sorted(r.rcpt_tos[0] for r in sink.received) == sorted(recipients)
    assert 1 <= len(sink.connections) <= CONNECTIONS_PER_HOST < len(recipients)
    assert {e["event"] for e in outcomes(api, domain)} == {"delivered"}


def test_an_idle_connection_is_reused_even_after_a_refusal(api, services, domain) -> None:
    send(api, domain, {"to": "ann@example.org"})
    refuse_bob = SinkBehaviour(
        rcpt=lambda rcpt: "550 5.1.1 No such user" if rcpt.startswith("bob@") else None)
    with CountingSink(refuse_bob) as sink:
        deliver_in_rounds(services, sink,
                          lambda: send(api, domain, {"to": "bob@example.org"}),
                          lambda: send(api, domain, {"to": "cat@example.org"}))

    assert [r.rcpt_tos for r in sink.received] == [["ann@example.org"], ["cat@example.org"]]
    assert len(sink.connections) == 1
    assert [(e["recipient"], e["event"]) for e in outcomes(api, domain)] == [
        ("ann@example.org", "delivered"), ("bob@example.org", "failed"),
        ("cat@example.org", "delivered")]


def test_a_pooled_connection_the_server_dropped_is_replaced(api, services, domain) -> None:
    send(api, domain, {"to": "ann@example.org"})
    with CountingSink(drop_reused=1) as sink:
        deliver_in_rounds(services, sink, lambda: send(api, domain, {"to": "bob@example.org"}))

    assert [r.rcpt_tos for r in sink.received] == [["ann@example.org"], ["bob@example.org"]]
    assert len(sink.connections) == 2
    assert [e["event"] for e in outcomes(api, domain)] == ["delivered", "delivered"]
    assert outcomes(api, domain)[1]["delivery-status"]["attempt-no"] == 1


def test_a_refusal_on_the_replacement_connection_is_reported(api, services, domain) -> None:
    send(api, domain, {"to": "ann@example.org"})
    refuse_bob = SinkBehaviour(
        rcpt=lambda rcpt: "550 5.1.1 No such user" if rcpt.startswith("bob@") else None)
    with CountingSink(refuse_bob, drop_reused=1) as sink:
        deliver_in_rounds(services, sink, lambda: send(api, domain, {"to": "bob@example.org"}))

    assert [r.rcpt_tos for r in sink.received] == [["ann@example.org"]]
    delivered, failed = outcomes(api, domain)
    assert failed["recipient"] == "bob@example.org"
    assert failed["event"] == "failed"
    assert failed["severity"] == "permanent"
    assert failed["reason"] == "bounce"
    assert failed["delivery-status"]["code"] == 550
    assert failed["delivery-status"]["enhanced-code"] == "5.1.1"
