"""`POST /v1/analytics/logs`: the account's sealed events, opened through the vault, in
Mailgun's log item shape; filters, keyset pages behind signed tokens, erasure, tenants."""

from __future__ import annotations

import json

import pytest

from mailhaven.privacy.erasure import erase_recipient
from tests.analytics.conftest import OTHER

URL = "/v1/analytics/logs"
WEEK = {"start": "", "end": ""}  # as mailgun.js sends dates left out: empty strings


def _logs(api, **body) -> dict:  # type: ignore[no-untyped-def]
    reply = api.post(URL, json={"start": _week_ago(api), **body})
    assert reply.status_code == 200, reply.text
    return reply.json()


def _week_ago(api) -> str:  # type: ignore[no-untyped-def]
    return "Mon, 01 Jan 2024 00:00:00 +0000"  # long before the frozen clock's now


def _where(attribute: str, comparator: str, *values: str) -> dict:
    return {"AND": [{"attribute": attribute, "comparator": comparator,
                     "values": [{"label": v, "value": v} for v in values]}]}


def test_items_have_mailguns_log_shape(api, account, two_days, domain) -> None:
    answer = _logs(api, filter=_where("event", "=", "delivered"),
                   pagination={"sort": "timestamp:asc", "limit": 50})
    assert set(answer) == {"start", "end", "items", "pagination", "aggregates"}
    assert answer["start"] == "Mon, 01 Jan 2024 00:00:00 +0000"
    assert answer["pagination"] == {} and answer["aggregates"] == {}  # one page: no links
    # carol and dan are delivered in the same second by two concurrent domain queues: a tie
    # that keeps the order in which the worker wrote them, so only ann's place is fixed
    delivered = [(i["recipient"], i["domain"]["name"]) for i in answer["items"]]
    assert delivered[0] == ("ann@example.org", domain)
    assert set(delivered[1:]) == {("carol@example.org", domain), ("dan@example.org", OTHER)}
    assert [i["@timestamp"] for i in answer["items"]] == sorted(
        i["@timestamp"] for i in answer["items"])
    ann = answer["items"][0]
    assert "timestamp" not in ann
    assert ann["@timestamp"].endswith("Z") and len(ann["@timestamp"]) == 24  # …T17:19:51.166Z
    assert ann["account"] == {"id": account[0]}
    assert ann["event"] == "delivered" and ann["recipient-domain"] == "example.org"
    assert ann["message"]["headers"]["message-id"] == two_days.ids["news"]
    assert ann["tags"] == ["news"]
    assert json.loads(ann["user-variables"]) == {}  # a JSON string, as in Mailgun's logs
    assert ann["method"] == "HTTP"
    assert ann["flags"]["is-callback"] is False and ann["flags"]["is-test-mode"] is False
    assert ann["storage"]["url"] == [
        f"{str(api.base_url).rstrip('/')}/v3/domains/{domain}/messages/"
        f"{ann['storage']['key']}"]
    assert ann["delivery-status"]["code"] == 250


@pytest.mark.parametrize(("where", "expected"), [
    (_where("domain", "=", OTHER), {("accepted", "dan"), ("delivered", "dan")}),
    (_where("domain", "not contains", "acme.test"), set()),
    (_where("recipient", "=", "BOB@example.org"), {("accepted", "bob"), ("failed", "bob")}),
    (_where("severity", "=", "permanent"), {("failed", "bob")}),
    (_where("tag", "=", "news"), {("accepted", "ann"), ("accepted", "bob"),
                                  ("delivered", "ann"), ("failed", "bob")}),
])
def test_filters(api, two_days, where: dict, expected: set) -> None:
    answer = _logs(api, filter=where)
    found = {(i["event"], i["recipient"].split("@")[0]) for i in answer["items"]}
    if where["AND"][0]["attribute"] == "recipient":
        assert [i["event"] for i in answer["items"]].count("failed") == 2  # bounce, suppressed
    assert found == expected


def test_events_message_id_and_negations(api, two_days) -> None:
    failed = _logs(api, events=["failed"])["items"]
    assert {i["reason"] for i in failed} == {"bounce", "suppress-bounce"}
    by_id = _logs(api, filter=_where("message_id", "=", f"<{two_days.ids['dan']}>"))["items"]
    assert {(i["event"], i["recipient"]) for i in by_id} == {("accepted", "dan@example.org"),
                                                            ("delivered", "dan@example.org")}
    not_accepted = _logs(api, filter={"AND": [
        {"attribute": "event", "comparator": "!=", "values": [{"value": "accepted"}]},
        {"attribute": "tag", "comparator": "!=", "values": [{"value": "news"}]}]})["items"]
    assert sorted((i["event"], i["recipient"]) for i in not_accepted) == [
        ("delivered", "carol@example.org"), ("delivered", "dan@example.org"),
        ("failed", "bob@example.org")]
    one = _logs(api, filter=_where("id", "=", by_id[0]["id"]))["items"]
    assert [i["id"] for i in one] == [by_id[0]["id"]]


def test_pages_walk_every_event_once_both_ways(api, two_days) -> None:
    everything = _logs(api, pagination={"sort": "timestamp:asc", "limit": 100},
                       include_totals=True)
    assert everything["pagination"] == {"total": 10} and everything["aggregates"] == {"all": 10}
    ids = [i["id"] for i in everything["items"]]
    assert len(ids) == len(set(ids)) == 10
    stamps = [i["@timestamp"] for i in everything["items"]]
    assert stamps == sorted(stamps)

    body = {"start": _week_ago(api), "pagination": {"sort": "timestamp:asc", "limit": 3}}
    page = api.post(URL, json=body).json()
    assert set(page["pagination"]) == {"next", "first"}
    walked, pages = [i["id"] for i in page["items"]], [page]
    while "next" in page["pagination"]:
        page = api.post(URL, json={**body, "pagination": {
            "token": page["pagination"]["next"]}}).json()
        walked += [i["id"] for i in page["items"]]
        pages.append(page)
    assert walked == ids and len(pages) == 4
    back = api.post(URL, json={"pagination": {"token": pages[-1]["pagination"]["previous"]}})
    assert [i["id"] for i in back.json()["items"]] == ids[6:9]
    first = api.post(URL, json={"pagination": {"token": pages[2]["pagination"]["first"]}})
    assert [i["id"] for i in first.json()["items"]] == ids[:3]

    newest_first = _logs(api, pagination={"limit": 100})  # timestamp:desc by default
    assert [i["id"] for i in newest_first["items"]] == list(reversed(ids))


def test_tokens_cant_be_forged_or_shared(api, second_api, two_days) -> None:
    page = _logs(api, pagination={"limit": 2})
    token = page["pagination"]["next"]
    body, _, mac = token.partition(".")
    forged = api.post(URL, json={"pagination": {"token": f"{body}x.{mac}"}})
    assert forged.status_code == 400 and forged.json() == {"message": "Invalid page token"}
    theirs = second_api.post(URL, json={"pagination": {"token": token}})
    assert theirs.status_code == 400 and theirs.json() == {"message": "Invalid page token"}


def test_an_erased_recipient_is_gone_from_the_logs(api, services, account, two_days) -> None:
    assert any(i["recipient"] == "ann@example.org" for i in _logs(api)["items"])
    with services.db.transaction() as session:
        erase_recipient(session, services.vault, account[0], "ann@example.org",
                        now=services.clock.now(), data_dir=services.settings.data_dir)
    items = _logs(api, include_totals=True)
    assert "ann@example.org" not in json.dumps(items)
    assert items["pagination"]["total"] == len(items["items"]) == 8


def test_another_account_sees_none_of_it(api, second_api, two_days, domain) -> None:
    assert _logs(second_api)["items"] == []
    assert _logs(second_api, filter=_where("domain", "=", domain))["items"] == []
    assert _logs(second_api, filter=_where("recipient", "=", "ann@example.org"))["items"] == []


@pytest.mark.parametrize(("body", "message"), [
    ({"events": ["sent"]}, "Invalid event 'sent'"),
    ({"filter": _where("subject", "contains", "Hello")},
     "Filtering by 'subject' is not supported: that text is sealed with the event, so it "
     "can't be searched"),
    ({"filter": _where("recipient", "contains", "ann")},
     "'recipient' takes the comparators =, !="),
    ({"filter": _where("planet", "=", "mars")}, "Invalid filter attribute 'planet'"),
    ({"metric_events": ["delivered_count"]},
     "metric_events is not supported: name the events in `events`"),
    ({"pagination": {"sort": "id:asc"}},
     "pagination.sort must be timestamp:asc or timestamp:desc"),
    ({"pagination": {"limit": 101}}, "pagination.limit must be from 1 to 100"),
    ({"start": "Tue, 02 Jan 2024 00:00:00 +0000", "end": "Mon, 01 Jan 2024 00:00:00 +0000"},
     "'start' must be before 'end'"),
    ({"end": "soon"}, "Invalid 'end' parameter: soon"),
    *(({"filter": _where(attribute, "=", "\x00x")},
       f"Invalid value for '{attribute}': it may not contain a NUL character")
      for attribute in ("tag", "id", "domain", "message_id", "event")),
])
def test_bad_queries_are_400s(api, body: dict, message: str) -> None:
    reply = api.post(URL, json=body)
    assert reply.status_code == 400
    assert reply.json() == {"message": message}


def test_defaults_cover_the_last_day(api, two_days, clock) -> None:
    clock.advance(60)  # the first day's mail is now a day and a minute old
    answer = api.post(URL, json=WEEK).json()  # start: a day before end; end: now
    assert {i["recipient"] for i in answer["items"]} == {"bob@example.org", "carol@example.org",
                                                         "dan@example.org"}
    assert api.post(URL, json={"include_totals": "yes"}).status_code == 400
    assert api.post(URL, json={"pagination": {"limit": 10}, "colour": 1}).status_code == 400
