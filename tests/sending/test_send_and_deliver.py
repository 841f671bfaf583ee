"""The whole spine once: an HTTP send reaches a real SMTP sink, and events say so."""

from __future__ import annotations

from tests.support import Sink, deliver_due


def test_a_sent_message_is_delivered_and_reported(api, services, domain) -> None:
    reply = api.post(f"/v3/{domain}/messages", data={
        "from": "Acme <news@mg.acme.test>", "to": "Ann <ann@example.org>",
        "subject": "Hello", "text": "Hi Ann",
    })
    assert reply.status_code == 200, reply.text
    assert reply.json()["message"] == "Queued. Thank you."
    message_id = reply.json()["id"]
    assert message_id.startswith("<") and message_id.endswith(">")

    with Sink() as sink:
        deliver_due(services, sink)
    assert len(sink.received) == 1
    got = sink.received[0]
    assert got.rcpt_tos == ["ann@example.org"]
    assert got.message["Subject"] == "Hello"
    assert got.message["Message-ID"] == message_id
    assert got.mail_from.startswith("bounce+") and got.mail_from.endswith("@mg.acme.test")

    events = api.get(f"/v3/{domain}/events", params={"ascending": "yes"}).json()["items"]
    assert [e["event"] for e in events] == ["accepted", "delivered"]
    assert events[1]["recipient"] == "ann@example.org"
    assert events[1]["delivery-status"]["code"] == 250
    assert events[1]["message"]["headers"]["message-id"] == message_id.strip("<>")
