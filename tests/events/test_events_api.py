"""The Events API: filters, and paging that walks every event once in either direction."""

from __future__ import annotations

import base64

import httpx
import pytest

from tests.support import Sink, deliver_due


def _send(api: httpx.Client, domain: str, to: str, tag: str = "news") -> str:
    reply = api.post(f"/v3/{domain}/messages", data={
        "from": f"ops@{domain}", "to": to, "subject": "s", "text": "t", "o:tag": tag})
    assert reply.status_code == 200, reply.text
    return reply.json()["id"].strip("<>")


def _walk(api: httpx.Client, url: str, link: str) -> list[dict]:
    """Follow `paging[link]` from `url` until an empty page; return every item seen."""
    seen: list[dict] = []
    for _ in range(200):
        page = api.get(url)
        assert page.status_code == 200, page.text
        body = page.json()
        if not body["items"]:
            return seen
        seen.extend(body["items"] if link == "next" else reversed(body["items"]))
        url = body["paging"][link]
    raise AssertionError("paging never reached an empty page")


@pytest.fixture
def many_events(api, services, clock, domain) -> list[str]:
    """23 messages, several sharing a timestamp, then delivered: 46 events."""
    for i in range(23):
        _send(api, domain, f"user{i}@example.org", tag="odd" if i % 2 else "even")
        if i % 3 == 0:
            clock.advance(1.5)
    with Sink() as sink:
        deliver_due(services, sink)
    return [f"user{i}@example.org" for i in range(23)]


def test_paging_walks_every_event_forward_and_backward_without_gap_or_repeat(
        api, domain, many_events) -> None:
    everything = api.get(f"/v3/{domain}/events", params={"ascending": "yes", "limit": 300})
    all_ids = [e["id"] for e in everything.json()["items"]]
    assert len(all_ids) == 46 and len(set(all_ids)) == 46
    stamps = [e["timestamp"] for e in everything.json()["items"]]
    assert stamps == sorted(stamps)

    forward = _walk(api, f"/v3/{domain}/events?ascending=yes&limit=7", "next")
    assert [e["id"] for e in forward] == all_ids

    first = api.get(f"/v3/{domain}/events", params={"ascending": "yes", "limit": 7}).json()
    backward = _walk(api, first["paging"]["last"], "previous")
    assert [e["id"] for e in backward] == list(reversed(all_ids))

    descending = _walk(api, f"/v3/{domain}/events?ascending=no&limit=5", "next")
    assert [e["id"] for e in descending] == list(reversed(all_ids))


def test_previous_from_the_end_walks_back_over_the_last_events(api, domain, many_events) -> None:
    url = f"/v3/{domain}/events?ascending=yes&limit=10"
    seen: list[str] = []
    while True:
        body = api.get(url).json()
        if not body["items"]:
            break
        seen.extend(e["id"] for e in body["items"])
        url = body["paging"]["next"]
    back = api.get(body["paging"]["previous"]).json()
    assert [e["id"] for e in back["items"]] == seen[-10:]
    back2 = api.get(back["paging"]["previous"]).json()
    assert [e["id"] for e in back2["items"]] == seen[-20:-10]


def test_the_next_link_of_an_exhausted_page_picks_up_new_events(
        api, clock, domain, many_events) -> None:
    url = f"/v3/{domain}/events?ascending=yes&limit=300"
    body = api.get(url).json()
    tail = api.get(body["paging"]["next"]).json()
    assert tail["items"] == []
    clock.advance(10)
    _send(api, domain, "late@example.org")
    fresh = api.get(tail["paging"]["next"]).json()
    assert [(e["event"], e["recipient"]) for e in fresh["items"]] == [
        ("accepted", "late@example.org")]


def test_filters_by_event_recipient_tag_and_message_id(api, domain, many_events) -> None:
    def items(**params: str) -> list[dict]:
        reply = api.get(f"/v3/{domain}/events", params={"limit": 300, **params})
        assert reply.status_code == 200, reply.text
        return reply.json()["items"]

    assert {e["event"] for e in items(event="delivered")} == {"delivered"}
    assert len(items(event="delivered")) == 23
    assert len(items(event="accepted OR delivered")) == 46
    assert len(items(event="NOT accepted")) == 23
    mine = items(recipient="USER7@example.org")
    assert [e["event"] for e in mine] == ["delivered", "accepted"]  # newest first by default
    assert {e["recipient"] for e in mine} == {"user7@example.org"}
    assert all("odd" in e["tags"] for e in items(tags="odd"))
    assert len(items(tags="odd")) == 22
    message_id = mine[0]["message"]["headers"]["message-id"]
    assert len(items(**{"message-id": f"<{message_id}>"})) == 2


def test_time_range_bounds_the_results(api, clock, domain) -> None:
    start = clock.now()
    _send(api, domain, "a@example.org")
    clock.advance(100)
    _send(api, domain, "b@example.org")
    clock.advance(100)
    _send(api, domain, "c@example.org")
    got = api.get(f"/v3/{domain}/events", params={
        "begin": str(start + 50), "end": str(start + 150)}).json()["items"]
    assert [e["recipient"] for e in got] == ["b@example.org"]
    reverse = api.get(f"/v3/{domain}/events", params={
        "begin": str(start + 250), "end": str(start - 1)}).json()["items"]
    assert [e["recipient"] for e in reverse] == ["c@example.org", "b@example.org",
                                                 "a@example.org"]


@pytest.mark.parametrize("params", [
    {"limit": "0"}, {"limit": "301"}, {"limit": "many"}, {"begin": "yesterday-ish"},
    {"ascending": "sideways"},
])
def test_bad_query_parameters_get_a_400(api, domain, params) -> None:
    reply = api.get(f"/v3/{domain}/events", params=params)
    assert reply.status_code == 400
    assert "message" in reply.json()


def test_a_forged_page_token_is_a_400_not_a_500(api, domain) -> None:
    real = api.get(f"/v3/{domain}/events", params={"limit": 5}).json()["paging"]["next"]
    body, mac = real.rsplit("/", 1)[1].split(".")
    widened = base64.urlsafe_b64encode(
        base64.urlsafe_b64decode(body + "==").replace(b'"limit":5', b'"limit":100000'))
    for token in ("not-base64!!", "eyJmb28iOjF9", "e30", f"{widened.decode()}.{mac}",
                  f"{body}.{'0' * len(mac)}", body):
        reply = api.get(f"/v3/{domain}/events/{token}")
        assert reply.status_code == 400, (token, reply.text)
        assert reply.json() == {"message": "Invalid page token"}


def test_page_links_carry_no_address(api, domain) -> None:
    _send(api, domain, "zelda@example.org")
    body = api.get(f"/v3/{domain}/events", params={"recipient": "zelda@example.org"}).json()
    assert len(body["items"]) == 1
    for link in body["paging"].values():
        token = link.rsplit("/", 1)[1].split(".")[0]
        decoded = base64.urlsafe_b64decode(token + "==")
        assert b"zelda" not in decoded and b"example.org" not in decoded
    assert api.get(body["paging"]["first"]).json()["items"] == body["items"]


@pytest.mark.parametrize("name", ["from", "to", "subject", "size"])
def test_filters_we_cannot_apply_are_refused_not_ignored(api, domain, name) -> None:
    reply = api.get(f"/v3/{domain}/events", params={name: "x"})
    assert reply.status_code == 400
    assert reply.json() == {"message": f"Filter '{name}' is not supported"}


def test_a_refused_send_is_reported_as_a_rejected_event(api, domain) -> None:
    refused = api.post(f"/v3/{domain}/messages", data={
        "to": "Ann <ann@example.org>", "subject": "no sender", "text": "t"})
    assert refused.status_code == 400
    nobody = api.post(f"/v3/{domain}/messages", data={
        "from": f"ops@{domain}", "subject": "nobody", "text": "t"})
    assert nobody.status_code == 400
    items = api.get(f"/v3/{domain}/events", params={"event": "rejected"}).json()["items"]
    assert [(e["recipient"], e["reject"]["reason"]) for e in items] == [
        ("", "to parameter is missing"), ("ann@example.org", "from parameter is missing")]
    assert items[1]["message"]["headers"]["subject"] == "no sender"
    assert "storage" not in items[1]
    mine = api.get(f"/v3/{domain}/events", params={"recipient": "ann@example.org"}).json()
    assert [e["event"] for e in mine["items"]] == ["rejected"]
