"""`stats/total` counts what happened, per period, from counters with no personal data."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx

from tests.support import Sink, SinkBehaviour, deliver_due


def test_totals_count_accepted_delivered_and_failed_by_reason(api, services, domain) -> None:
    api.post(f"/v3/{domain}/bounces", data={"address": "gone@example.org"})
    refuse = SinkBehaviour(rcpt=lambda r: "550 5.1.1 No such user" if r.startswith("nobody")
                           else None)
    for to in ("a@example.org", "b@example.org", "nobody@example.org", "gone@example.org"):
        assert api.post(f"/v3/{domain}/messages", data={
            "from": f"n@{domain}", "to": to, "text": "t", "o:tag": "news"}).status_code == 200
    with Sink(refuse) as sink:
        deliver_due(services, sink)
    reply = api.get(f"/v3/{domain}/stats/total",
                    params=[("event", "accepted"), ("event", "delivered"),
                            ("event", "failed"), ("duration", "1d"), ("resolution", "day")])
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["resolution"] == "day" and body["start"] and body["end"]
    totals = {"accepted": 0, "delivered": 0, "bounce": 0, "suppress-bounce": 0, "failed": 0}
    for period in body["stats"]:
        totals["accepted"] += period["accepted"]["outgoing"]
        totals["delivered"] += period["delivered"]["smtp"]
        totals["bounce"] += period["failed"]["permanent"]["bounce"]
        totals["suppress-bounce"] += period["failed"]["permanent"]["suppress-bounce"]
        totals["failed"] += period["failed"]["permanent"]["total"]
    assert totals == {"accepted": 4, "delivered": 2, "bounce": 1, "suppress-bounce": 1,
                      "failed": 2}


def test_hourly_resolution_lists_every_hour_of_the_range(api, domain) -> None:
    body = api.get(f"/v3/{domain}/stats/total", params={
        "event": "accepted", "duration": "24h", "resolution": "hour"}).json()
    assert len(body["stats"]) in (24, 25)
    assert all(p["accepted"]["total"] == 0 for p in body["stats"])


def test_bad_parameters_are_400(api, domain) -> None:
    for params in ({}, {"event": "exploded"}, {"event": "accepted", "resolution": "week"},
                   {"event": "accepted", "duration": "soon"},
                   {"event": "accepted", "start": "not a date"}):
        reply = api.get(f"/v3/{domain}/stats/total", params=params)
        assert reply.status_code == 400, (params, reply.text)


def test_impossible_times_and_ranges_are_400(api, domain) -> None:
    for params in ({"end": "inf"}, {"end": "nan"}, {"start": "-1e12"}, {"end": "1e15"},
                   {"duration": "99999999d"}, {"duration": "99999m"},
                   {"duration": "9" * 400 + "h"}):
        reply = api.get(f"/v3/{domain}/stats/total", params={"event": "accepted", **params})
        assert reply.status_code == 400, (params, reply.text)


def test_only_deferrals_that_block_the_sender_are_espblock(api, services, domain) -> None:
    replies = {"blocked": "421 4.7.0 [TSS04] Messages temporarily deferred due to user "
                          "complaints",
               "listed": "450 Service unavailable, client host blocked using Spamhaus",
               "full": "452 4.2.2 Mailbox full",
               "grey": "450 4.2.0 Recipient address rejected: Greylisted, try again later"}
    refuse = SinkBehaviour(rcpt=lambda r: replies[r.partition("@")[0]])
    for local in replies:
        api.post(f"/v3/{domain}/messages", data={
            "from": f"n@{domain}", "to": f"{local}@example.org", "text": "t"})
    with Sink(refuse) as sink:
        deliver_due(services, sink)
    failed = api.get(f"/v3/{domain}/events", params={"event": "failed"}).json()["items"]
    assert {e["recipient"]: e["reason"] for e in failed} == {
        "blocked@example.org": "espblock", "listed@example.org": "espblock",
        "full@example.org": "generic", "grey@example.org": "greylisted"}
    body = api.get(f"/v3/{domain}/stats/total",
                   params={"event": "failed", "duration": "1d"}).json()
    temporary = [p["failed"]["temporary"] for p in body["stats"]]
    assert {k: sum(t[k] for t in temporary) for k in ("espblock", "total")} == {
        "espblock": 2, "total": 4}
    assert all(set(t) == {"espblock", "total"} for t in temporary)


def test_a_duration_in_months_counts_calendar_months(api, clock, domain) -> None:
    clock.advance(datetime(2024, 3, 31, 12, tzinfo=UTC).timestamp() - clock.now())
    body = api.get(f"/v3/{domain}/stats/total",
                   params={"event": "accepted", "duration": "1m"}).json()
    assert body["start"] == "Thu, 29 Feb 2024 12:00:00 GMT"
    assert body["end"] == "Sun, 31 Mar 2024 12:00:00 GMT"
    assert body["resolution"] == "month"  # the duration's unit, unless one is asked for
    assert [p["time"] for p in body["stats"]] == ["Thu, 01 Feb 2024 00:00:00 GMT",
                                                  "Fri, 01 Mar 2024 00:00:00 GMT"]
    daily = api.get(f"/v3/{domain}/stats/total", params={
        "event": "accepted", "duration": "2m", "resolution": "day",
        "end": "Sat, 01 Jun 2024 00:00:00 +0000"}).json()
    assert daily["start"] == "Mon, 01 Apr 2024 00:00:00 GMT"
    assert len(daily["stats"]) == 30 + 31 + 1


# -- repeated parameters ------------------------------------------------------------------
def _another_tenant(services, live):  # type: ignore[no-untyped-def]
    from mailhaven.accounts.service import create_account
    from mailhaven.domains.service import create_domain

    with services.db.transaction() as session:
        issued = create_account(session, services.vault, name="Globex", email="o@globex.test",
                                clock=services.clock)
        create_domain(session, services.vault, issued.account_id,
                      {"name": "mg.globex.test", "dkim_key_size": "1024"}, services.clock)
    return live.client(issued.api_key)


def _while_attacked(live, api_key, attack, victim, call):  # type: ignore[no-untyped-def]
    """16 copies of `attack` at once and, meanwhile, the victim's `call`: its reply and the
    attack's replies."""
    def attacker(_: int) -> httpx.Response:
        with live.client(api_key) as client:
            return client.get("/v3/mg.acme.test/stats/total", params=attack)

    with ThreadPoolExecutor(16) as pool:
        replies = pool.map(attacker, range(16))
        time.sleep(0.2)
        return call(victim), list(replies)


def test_a_repeated_event_is_counted_once(api, live, services, account, domain) -> None:
    """99 copies of `event=accepted` over 10,000 hourly periods, 16 requests at once: each is
    answered, and another tenant's request meanwhile too. (How long it waits is the bench's
    business: no timing assertions here.)"""
    attack = [("event", "accepted")] * 98 + [("event", "delivered"), ("duration", "10000h")]
    with _another_tenant(services, live) as victim:
        reply, replies = _while_attacked(
            live, account[1], attack, victim,
            lambda c: c.get("/v3/mg.globex.test/stats/total", params={"event": "accepted"}))
    assert reply.status_code == 200, reply.text
    for attacked in replies:
        assert attacked.status_code == 200, attacked.text
        periods = attacked.json()["stats"]
        assert len(periods) in (10_000, 10_001)
        assert set(periods[0]) == {"time", "accepted", "delivered"}


def test_more_than_100_query_parameters_are_400(api, live, services, account, domain) -> None:
    """The attack as found: 1,050 copies of `event`, 16 requests at once (another tenant's
    call took 21.5 s)."""
    attack = [("event", "accepted")] * 1050 + [("duration", "10000h")]
    with _another_tenant(services, live) as victim:
        reply, replies = _while_attacked(
            live, account[1], attack, victim,
            lambda c: c.get("/v3/mg.globex.test/stats/total", params={"event": "accepted"}))
    assert reply.status_code == 200, reply.text
    assert {(r.status_code, r.json()["message"]) for r in replies} == {
        (400, "Too many query parameters: at most 100")}
