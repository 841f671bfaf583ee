"""Events reach a real webhook endpoint on loopback, signed, retried as Mailgun retries."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from mailhaven.webhooks.sender import RETRY_DELAYS
from mailhaven.webhooks.service import sign
from tests.support import Sink, SinkBehaviour, WebhookReceiver, deliver_due, send_webhooks


def _verifies(key: str, payload: dict) -> bool:
    """The receiver's check, written from Mailgun's documentation, not from our code."""
    sig = payload["signature"]
    expected = hmac.new(key.encode(), (sig["timestamp"] + sig["token"]).encode(),
                        hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, sig["signature"]) and len(sig["token"]) == 50


def _send(api, domain: str, to: str = "ann@example.org") -> None:  # type: ignore[no-untyped-def]
    response = api.post(f"/v3/{domain}/messages", data={
        "from": f"news@{domain}", "to": to, "subject": "Hello", "text": "Hi", "o:tag": "t1"})
    assert response.status_code == 200


def test_the_documented_test_vector() -> None:
    assert sign("key-test", "1529006854", "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0") \
        == "2df0e54f503d31abdc1519117a730ae38748e41e86f9ae25431dbd26059468af"


def test_payloads_are_signed_and_carry_the_event(api, services, domain) -> None:
    with WebhookReceiver() as receiver, Sink() as sink:
        api.post(f"/v4/domains/{domain}/webhooks",
                 data={"url": receiver.url, "event_types": ["accepted", "delivered"]})
        _send(api, domain)
        deliver_due(services, sink)
        assert send_webhooks(services) == 2
    key = api.get("/v5/accounts/http_signing_key").json()["http_signing_key"]
    payloads = [hook.json for hook in receiver.received]
    assert all(_verifies(key, p) for p in payloads)
    assert all(h.headers["Content-Type"] == "application/json" for h in receiver.received)
    assert sorted(p["event-data"]["event"] for p in payloads) == ["accepted", "delivered"]
    events = api.get(f"/v3/{domain}/events", params={"ascending": "yes"}).json()["items"]
    for document in [*events, *(p["event-data"] for p in payloads)]:
        url = document["storage"].pop("url")  # the API's address differs by who asks
        assert url.endswith(f"/v3/domains/{domain}/messages/{document['storage']['key']}")
    assert {p["event-data"]["id"]: p["event-data"] for p in payloads} \
        == {e["id"]: e for e in events}  # the same document as the Events API's
    delivered = next(p["event-data"] for p in payloads if p["event-data"]["event"] ==
                     "delivered")
    assert delivered["recipient"] == "ann@example.org" and delivered["tags"] == ["t1"]


def test_a_failing_endpoint_is_retried_on_mailgun_schedule(api, services, clock,
                                                          domain) -> None:
    replies = {1: 500, 2: 503}
    with WebhookReceiver(lambda n: replies.get(n, 200)) as receiver, Sink() as sink:
        api.post(f"/v3/domains/{domain}/webhooks", data={"id": "delivered",
                                                          "url": receiver.url})
        _send(api, domain)
        deliver_due(services, sink)
        assert send_webhooks(services) == 1
        assert send_webhooks(services) == 0  # not before its time
        clock.advance(RETRY_DELAYS[0])
        assert send_webhooks(services) == 1
        clock.advance(RETRY_DELAYS[1] - 1)
        assert send_webhooks(services) == 0
        clock.advance(1)
        assert send_webhooks(services) == 1
        clock.advance(24 * 3600)
        assert send_webhooks(services) == 0  # delivered: never again
    assert len(receiver.received) == 3
    tokens = {hook.json["signature"]["token"] for hook in receiver.received}
    assert len(tokens) == 3  # each attempt signed afresh
    [record] = api.get(f"/v1/admin/domains/{domain}/webhook_deliveries").json()["items"]
    assert record["status"] == "sent" and record["webhook"] == "delivered"
    assert [a["status"] for a in record["attempts"]] == [500, 503, 200]


def test_a_406_stops_retries(api, services, clock, domain) -> None:
    with WebhookReceiver(lambda _n: 406) as receiver, Sink() as sink:
        api.post(f"/v3/domains/{domain}/webhooks", data={"id": "delivered",
                                                          "url": receiver.url})
        _send(api, domain)
        deliver_due(services, sink)
        send_webhooks(services)
        for delay in RETRY_DELAYS:
            clock.advance(delay)
            assert send_webhooks(services) == 0
    assert len(receiver.received) == 1
    [record] = api.get(f"/v1/admin/domains/{domain}/webhook_deliveries").json()["items"]
    assert record["status"] == "refused" and [a["status"] for a in record["attempts"]] == [406]


def test_an_endpoint_that_never_answers_200_is_given_up_after_8_hours(api, services, clock,
                                                                      domain) -> None:
    with WebhookReceiver(lambda _n: 500) as receiver:
        api.post(f"/v3/domains/{domain}/webhooks", data={"id": "accepted",
                                                          "url": receiver.url})
        _send(api, domain)
        send_webhooks(services)
        for delay in RETRY_DELAYS:
            clock.advance(delay)
            assert send_webhooks(services) == 1
        clock.advance(24 * 3600)
        assert send_webhooks(services) == 0
    assert len(receiver.received) == 1 + len(RETRY_DELAYS)
    assert sum(RETRY_DELAYS) >= 8 * 3600
    [record] = api.get(f"/v1/admin/domains/{domain}/webhook_deliveries",
                       params={"status": "gave-up"}).json()["items"]
    assert len(record["attempts"]) == 8


def test_account_webhooks_fire_for_every_domain_once_per_url(api, services, domain) -> None:
    with WebhookReceiver() as receiver, WebhookReceiver() as account_wide:
        api.post(f"/v3/domains/{domain}/webhooks", data={"id": "accepted",
                                                          "url": receiver.url})
        api.post("/v1/webhooks", data={"url": receiver.url, "event_types": "accepted"})
        api.post("/v1/webhooks", data={"url": account_wide.url, "event_types": "accepted"})
        api.post("/v3/domains", data={"name": "second.acme.test"})
        _send(api, domain)
        _send(api, "second.acme.test")
        send_webhooks(services)
    assert len(receiver.received) == 2  # set at both levels, posted once per event
    assert sorted(h.json["event-data"]["envelope"]["sender"] for h in account_wide.received) \
        == ["news@mg.acme.test", "news@second.acme.test"]


def test_permanent_and_temporary_failures_fire_their_own_webhooks(api, services,
                                                                  domain) -> None:
    refuse = SinkBehaviour(rcpt=lambda r: "550 5.1.1 No such user" if r.startswith("gone")
                           else "451 4.3.0 Try later")
    with WebhookReceiver() as permanent, WebhookReceiver() as temporary, Sink(refuse) as sink:
        api.post(f"/v3/domains/{domain}/webhooks", data={"id": "permanent_fail",
                                                          "url": permanent.url})
        api.post(f"/v3/domains/{domain}/webhooks", data={"id": "temporary_fail",
                                                          "url": temporary.url})
        _send(api, domain, "gone@example.org")
        _send(api, domain, "later@example.org")
        deliver_due(services, sink)
        send_webhooks(services)
    assert [h.json["event-data"]["recipient"] for h in permanent.received] == [
        "gone@example.org"]
    assert [h.json["event-data"]["severity"] for h in temporary.received] == ["temporary"]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_private_addresses_are_refused_unless_allowed(api, services, domain) -> None:
    import dataclasses

    strict = dataclasses.replace(
        services, settings=services.settings.with_(webhook_allow_private=False))
    with WebhookReceiver() as receiver:
        api.post(f"/v3/domains/{domain}/webhooks", data={"id": "accepted",
                                                          "url": receiver.url})
        _send(api, domain)
        send_webhooks(strict)
    assert receiver.received == []
    [record] = api.get(f"/v1/admin/domains/{domain}/webhook_deliveries").json()["items"]
    assert record["status"] == "gave-up"
    assert "non-public address" in record["attempts"][0]["error"]
    assert json.dumps(record).count(receiver.url) == 1  # shown to its owner, as configured


def test_an_erased_recipient_s_pending_webhooks_are_cancelled_not_sent(api, services, account,
                                                                        domain) -> None:
    from sqlalchemy import delete

    from mailhaven.vault import VaultKey

    with WebhookReceiver() as receiver:
        api.post(f"/v3/domains/{domain}/webhooks", data={"id": "accepted",
                                                          "url": receiver.url})
        _send(api, domain, "gone@example.org")
        _send(api, domain, "kept@example.org")
        with services.db.transaction() as session:
            gone = services.vault.find_subject(session, account[0], "gone@example.org")
            session.execute(delete(VaultKey).where(VaultKey.id == gone.id))
        services.vault.forget(gone.id)
        send_webhooks(services)
    assert [h.json["event-data"]["recipient"] for h in receiver.received] == [
        "kept@example.org"]
    records = api.get(f"/v1/admin/domains/{domain}/webhook_deliveries").json()["items"]
    assert sorted(r["status"] for r in records) == ["cancelled", "sent"]
