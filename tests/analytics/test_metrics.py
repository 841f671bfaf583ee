"""`POST /v1/analytics/metrics` from the hourly counters: Mailgun's shape, its counts and
rates, by time, domain and tag; what can't be told honestly is a 400; tenants see only theirs."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from tests.analytics.conftest import DAY, OTHER

URL = "/v1/analytics/metrics"
COUNTS = ["accepted_count", "delivered_count", "permanent_failed_count",
          "suppressed_bounces_count", "hard_bounces_count", "sent_count"]
RATES = ["delivered_rate", "bounce_rate"]


def _day(epoch: float) -> str:
    start = datetime.fromtimestamp(epoch, UTC).replace(hour=0, minute=0, second=0,
                                                       microsecond=0)
    return format_datetime(start)


def _metrics(api, **body) -> dict:  # type: ignore[no-untyped-def]
    reply = api.post(URL, json={"metrics": COUNTS + RATES, **body})
    assert reply.status_code == 200, reply.text
    return reply.json()


def _by(answer: dict) -> dict[tuple[str, ...], dict]:
    return {tuple(d["value"] for d in item["dimensions"]): item["metrics"]
            for item in answer["items"]}


def test_counts_and_rates_by_day_in_mailguns_shape(api, two_days) -> None:
    start = format_datetime(datetime.fromtimestamp(two_days.first_day - DAY, UTC))
    answer = _metrics(api, start=start, end=format_datetime(
        datetime.fromtimestamp(two_days.second_day, UTC)), resolution="day",
        dimensions=["time"], include_aggregates=True, include_subaccounts=True)
    assert set(answer) == {"start", "end", "resolution", "duration", "dimensions",
                           "pagination", "items", "aggregates"}
    assert answer["start"] == _day(two_days.first_day - DAY)  # whole periods, as Mailgun
    assert answer["end"] == _day(two_days.second_day)
    assert (answer["resolution"], answer["duration"], answer["dimensions"]) == (
        "day", "", ["time"])
    assert answer["pagination"] == {"sort": "", "skip": 0, "limit": 1500, "total": 2}
    first, second = _day(two_days.first_day), _day(two_days.second_day)
    [one] = [i for i in answer["items"] if i["dimensions"][0]["value"] == first]
    assert one["dimensions"] == [{"dimension": "time", "value": first, "display_value": first}]
    assert _by(answer) == {  # the empty day before is left out, as Mailgun does
        (first,): {"accepted_count": 2, "delivered_count": 1, "permanent_failed_count": 1,
                   "suppressed_bounces_count": 0, "hard_bounces_count": 1, "sent_count": 2,
                   "delivered_rate": "0.5000", "bounce_rate": "0.5000"},
        (second,): {"accepted_count": 3, "delivered_count": 2, "permanent_failed_count": 1,
                    "suppressed_bounces_count": 1, "hard_bounces_count": 0, "sent_count": 2,
                    "delivered_rate": "1.0000", "bounce_rate": "0.0000"}}
    assert answer["aggregates"] == {"metrics": {
        "accepted_count": 5, "delivered_count": 3, "permanent_failed_count": 2,
        "suppressed_bounces_count": 1, "hard_bounces_count": 1, "sent_count": 4,
        "delivered_rate": "0.7500", "bounce_rate": "0.2000"}}


def test_by_domain_and_tag_with_filters(api, two_days, domain) -> None:
    window = {"duration": "7d"}
    by_domain = _metrics(api, dimensions=["domain"], **window)
    assert {k: v["accepted_count"] for k, v in _by(by_domain).items()} == {
        (domain,): 4, (OTHER,): 1}
    assert [i["dimensions"][0]["value"] for i in by_domain["items"]] == sorted(
        [domain, OTHER])

    by_tag = _by(_metrics(api, dimensions=["tag"], **window))
    assert list(by_tag) == [("news",)]
    assert (by_tag[("news",)]["accepted_count"], by_tag[("news",)]["delivered_count"]) == (2, 1)

    only_other = _metrics(api, dimensions=["time", "domain"], filter={"AND": [
        {"attribute": "domain", "comparator": "=", "values": [{"label": OTHER,
                                                                "value": OTHER}]}]}, **window)
    assert _by(only_other) == {(_day(two_days.second_day), OTHER): {
        "accepted_count": 1, "delivered_count": 1, "permanent_failed_count": 0,
        "suppressed_bounces_count": 0, "hard_bounces_count": 0, "sent_count": 1,
        "delivered_rate": "1.0000", "bounce_rate": "0.0000"}}
    not_other = _metrics(api, dimensions=["domain"], filter={"AND": [
        {"attribute": "domain", "comparator": "not contains", "values": [{"value": "other"}]}]},
        **window)
    assert list(_by(not_other)) == [(domain,)]

    one_tag = _metrics(api, dimensions=["time"], filter={"AND": [
        {"attribute": "tag", "comparator": "=", "values": [{"label": "news",
                                                             "value": "news"}]}]}, **window)
    assert {k: v["accepted_count"] for k, v in _by(one_tag).items()} == {
        (_day(two_days.first_day),): 2}


def test_sorting_and_paging(api, two_days, domain) -> None:
    body = {"dimensions": ["domain"], "duration": "7d"}
    desc = _metrics(api, pagination={"sort": "accepted_count:desc", "skip": 0, "limit": 1,
                                     "total": 0}, **body)  # as the Go SDK sends it
    assert desc["pagination"] == {"sort": "accepted_count:desc", "skip": 0, "limit": 1,
                                  "total": 2}
    assert list(_by(desc)) == [(domain,)]
    asc = _metrics(api, pagination={"sort": "accepted_count:asc", "skip": 1, "limit": 1},
                   **body)
    assert list(_by(asc)) == [(domain,)] and asc["pagination"]["total"] == 2
    by_name = _metrics(api, pagination={"sort": "domain:desc"}, **body)
    assert list(_by(by_name)) == [(OTHER,), (domain,)]


def test_timestamp_sorts_by_time_as_mailguns_examples_say(api, two_days) -> None:
    start = format_datetime(datetime.fromtimestamp(two_days.first_day - DAY, UTC))
    end = format_datetime(datetime.fromtimestamp(two_days.second_day, UTC))
    days = [_day(two_days.first_day), _day(two_days.second_day)]
    for sort, expected in (("timestamp:asc", days), ("timestamp:desc", days[::-1])):
        answer = _metrics(api, start=start, end=end, resolution="day", dimensions=["time"],
                          pagination={"sort": sort})
        assert answer["pagination"]["sort"] == sort
        assert [i["dimensions"][0]["value"] for i in answer["items"]] == expected


def test_hour_resolution_and_duration_count_back_from_end(api, two_days) -> None:
    end = format_datetime(datetime.fromtimestamp(two_days.second_day, UTC))
    answer = _metrics(api, end=end, duration="2h", resolution="hour", dimensions=["time"])
    hour = int(two_days.second_day // 3600 * 3600)
    assert answer["start"] == format_datetime(datetime.fromtimestamp(hour - 7200, UTC))
    assert answer["end"] == format_datetime(datetime.fromtimestamp(hour, UTC))
    assert answer["duration"] == "2h"
    assert [k for k in _by(answer)] == [(format_datetime(datetime.fromtimestamp(hour, UTC)),)]


def test_no_dimension_is_one_item(api, two_days) -> None:
    answer = _metrics(api, duration="7d", metrics=["accepted_count", "failed_count"])
    assert answer["items"] == [{"dimensions": [], "metrics": {"accepted_count": 5,
                                                              "failed_count": 2}}]


@pytest.mark.parametrize(("body", "message"), [
    ({"metrics": ["sent_rate"]}, "Invalid metric 'sent_rate'"),
    ({"metrics": ["delivered_two_plus_attempts_count"]},
     "Metric 'delivered_two_plus_attempts_count' is not supported: Mailhaven's counters "
     "don't record delivery attempts"),
    ({"metrics": []}, "metrics: name at least one metric"),
    ({"metrics": ["accepted_count"], "dimensions": ["ip"]},
     "'ip' is not supported: Mailhaven keeps no counters by sending IPs"),
    ({"metrics": ["accepted_count"], "dimensions": ["planet"]}, "Invalid dimension 'planet'"),
    ({"metrics": ["accepted_count"], "resolution": "week"},
     "resolution must be one of hour, day, month"),
    ({"metrics": ["accepted_count"], "duration": "3w"},
     "Invalid 'duration' parameter: use e.g. 24h, 7d or 1m"),
    ({"metrics": ["accepted_count"], "start": "yesterday"}, "Invalid 'start' parameter: "
                                                            "yesterday"),
    ({"metrics": ["accepted_count"], "pagination": {"limit": 5000}},
     "pagination: limit must be from 1 to 1500, skip at least 0"),
    ({"metrics": ["accepted_count"], "pagination": {"sort": "opened_count:asc"}},
     "Invalid sort 'opened_count:asc': use a dimension or a metric asked for, then :asc or "
     ":desc"),
    ({"metrics": ["accepted_count"], "filter": {"AND": [
        {"attribute": "country", "comparator": "=", "values": [{"value": "US"}]}]}},
     "'country' is not supported: Mailhaven keeps no counters by recipients' countries"),
    ({"metrics": ["accepted_count"], "filter": {"AND": [
        {"attribute": "domain", "comparator": "~", "values": [{"value": "x"}]}]}},
     "Invalid comparator '~' for 'domain': use one of =, !=, contains, not contains"),
    ({"metrics": ["accepted_count"], "filter": {"AND": [
        {"attribute": "tag", "comparator": "=", "values": [{"value": "a"}, {"value": "b"}]}]}},
     "Without the tag dimension a tag filter must name one tag with '=': an event with "
     "several of the tags would be counted once for each"),
    ({"metrics": ["accepted_count"], "filter": {"AND": [
        {"attribute": "domain", "comparator": "=", "values": []}]}},
     "The filter on 'domain' needs at least one value"),
    *(({"metrics": ["accepted_count"], "filter": {"AND": [
        {"attribute": attribute, "comparator": "=", "values": [{"value": "\x00"}]}]}},
       f"Invalid value for '{attribute}': it may not contain a NUL character")
      for attribute in ("tag", "domain")),
])
def test_what_cant_be_told_is_a_400(api, body: dict, message: str) -> None:
    reply = api.post(URL, json=body)
    assert reply.status_code == 400
    assert reply.json() == {"message": message}


def test_malformed_bodies_are_400s(api) -> None:
    assert api.post(URL, content=b"{", headers={"Content-Type": "application/json"}) \
        .status_code == 400
    for body in ({"metrics": ["accepted_count"], "colour": "red"},  # unknown: not ignored
                 {"metrics": ["accepted_count"], "include_aggregates": "maybe"},
                 {"metrics": "accepted_count"}, [], {"dimensions": ["time"]}):
        reply = api.post(URL, json=body)
        assert reply.status_code == 400, body
        assert reply.json()["message"].startswith("Invalid parameter"), reply.json()


def test_another_account_sees_none_of_it(api, second_api, two_days, domain) -> None:
    theirs = second_api.post(URL, json={"metrics": ["accepted_count"], "duration": "7d",
                                        "dimensions": ["domain"], "include_aggregates": True})
    assert theirs.status_code == 200
    assert theirs.json()["items"] == []
    assert theirs.json()["aggregates"] == {"metrics": {"accepted_count": 0}}
    aimed = second_api.post(URL, json={"metrics": ["accepted_count"], "duration": "7d",
                                       "filter": {"AND": [{"attribute": "domain",
                                                           "comparator": "=",
                                                           "values": [{"value": domain}]}]}})
    assert aimed.json()["items"] == []
    assert api.post(URL, json={"metrics": ["accepted_count"]},
                    auth=("api", "key-wrong")).status_code == 401


def test_both_endpoints_are_in_the_openapi_document(api) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    for path, fields in (("/v1/analytics/metrics", {"metrics", "dimensions", "filter"}),
                         ("/v1/analytics/logs", {"events", "filter", "pagination"})):
        post = paths[path]["post"]
        body = post["requestBody"]["content"]["application/json"]
        assert fields <= set(body["schema"]["properties"]), path
        assert "$ref" not in json.dumps(body["schema"])  # written in place: it resolves
        assert {"200", "400", "401"} <= set(post["responses"]), path
        assert post["responses"]["400"]["content"]["application/json"]["example"]["message"]
