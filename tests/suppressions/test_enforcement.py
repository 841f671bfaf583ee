"""Suppressions are enforced where mail is sent, and hard bounces fill the bounce list."""

from __future__ import annotations

from tests.support import Sink, SinkBehaviour, deliver_due


def _send(api, domain: str, to: str, tag: str | None = None) -> None:  # type: ignore[no-untyped-def]
    data = {"from": f"news@{domain}", "to": to, "subject": "s", "text": "t"}
    if tag:
        data["o:tag"] = tag
    assert api.post(f"/v3/{domain}/messages", data=data).status_code == 200


def _failed(api, domain: str) -> list[dict]:  # type: ignore[no-untyped-def]
    return api.get(f"/v3/{domain}/events", params={"event": "failed",
                                                    "ascending": "yes"}).json()["items"]


def test_a_hard_bounce_is_listed_suppresses_the_next_send_until_deleted(
        api, services, domain) -> None:
    refuse = SinkBehaviour(rcpt=lambda r: "550 5.1.1 No such user" if r.startswith("gone")
                           else None)
    with Sink(refuse) as sink:
        _send(api, domain, "gone@example.org")
        _send(api, domain, "here@example.org")
        deliver_due(services, sink)
        assert [r.rcpt_tos for r in sink.received] == [["here@example.org"]]
        bounce = api.get(f"/v3/{domain}/bounces/gone%40example.org").json()
        assert bounce["code"] == "550" and "5.1.1" in bounce["error"]

        _send(api, domain, "gone@example.org")
        deliver_due(services, sink)
        assert len(sink.rcpt_attempts) == 2  # the suppressed copy never reached the server
        last = _failed(api, domain)[-1]
        assert last["reason"] == "suppress-bounce" and last["severity"] == "permanent"
        assert last["delivery-status"]["code"] == 605
        assert last["delivery-status"]["message"] == ("Not delivering to previously bounced "
                                                      "address")

        api.delete(f"/v3/{domain}/bounces/gone@example.org")
        sink.behaviour = SinkBehaviour()
        _send(api, domain, "gone@example.org")
        deliver_due(services, sink)
        assert ["gone@example.org"] in [r.rcpt_tos for r in sink.received]


def test_policy_refusals_and_allowlisted_addresses_are_not_listed(api, services,
                                                                  domain) -> None:
    api.post(f"/v3/{domain}/whitelists", data={"domain": "partner.example"})
    refuse = SinkBehaviour(rcpt=lambda r: "550 5.7.1 Rejected by policy" if r.startswith(
        "policy") else "550 5.1.1 No such user")
    with Sink(refuse) as sink:
        _send(api, domain, "policy@example.org")
        _send(api, domain, "ann@partner.example")
        deliver_due(services, sink)
    assert api.get(f"/v3/{domain}/bounces").json()["items"] == []
    assert [e["reason"] for e in _failed(api, domain)] == ["bounce", "bounce"]


def test_unsubscribes_stop_the_tags_they_name_and_complaints_stop_everything(
        api, services, domain) -> None:
    api.post(f"/v3/{domain}/unsubscribes", data={"address": "ann@example.org",
                                                   "tag": "promo"})
    api.post(f"/v3/{domain}/complaints", data={"address": "bob@example.org"})
    with Sink() as sink:
        _send(api, domain, "ann@example.org", tag="promo")
        _send(api, domain, "ann@example.org", tag="receipts")
        _send(api, domain, "bob@example.org", tag="receipts")
        deliver_due(services, sink)
    assert [r.rcpt_tos for r in sink.received] == [["ann@example.org"]]
    assert sorted(e["reason"] for e in _failed(api, domain)) == [
        "suppress-complaint", "suppress-unsubscribe"]
    assert all(e["delivery-status"]["code"] == 605 for e in _failed(api, domain))
