"""`stats/total` counts what happened, per period, from counters with no personal data."""

from __future__ import annotations

from datetime import UTC, datetime

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
