"""`GET/PUT /v1/privacy/retention`: an account's own periods, within limits, all or nothing."""

from __future__ import annotations

import httpx

DEFAULTS = {"events": 30, "message_bodies": 3, "webhook_deliveries": 30, "requests": 7,
            "inbound_messages": 3, "route_posts": 30}


def _days(reply: httpx.Response) -> dict[str, int]:
    assert reply.status_code == 200, reply.text
    return {p["category"]: p["days"] for p in reply.json()["policies"]}


def test_an_account_reads_its_defaults_sets_its_own_and_returns_to_the_defaults(
        api, live, services) -> None:
    [events, *_] = api.get("/v1/privacy/retention").json()["policies"]
    assert events == {"category": "events", "description": events["description"], "days": 30,
                      "default_days": 30, "min_days": 1, "max_days": 3650, "custom": False}
    assert _days(api.get("/v1/privacy/retention")) == DEFAULTS

    changed = api.put("/v1/privacy/retention", json={"events": 7, "message_bodies": 1})
    assert _days(changed) == {**DEFAULTS, "events": 7, "message_bodies": 1}
    assert [p["custom"] for p in changed.json()["policies"]] == [True, True] + [False] * 4
    assert _days(api.put("/v1/privacy/retention", json={"events": 3650})) == {
        **DEFAULTS, "events": 3650, "message_bodies": 1}
    assert _days(api.put("/v1/privacy/retention", json={"events": None})) == {
        **DEFAULTS, "message_bodies": 1}


def test_bad_periods_and_unknown_categories_change_nothing(api) -> None:
    api.put("/v1/privacy/retention", json={"events": 10})
    for body, words in [({"events": 0}, "between 1 and 3650"),
                        ({"events": 3651}, "between 1 and 3650"),
                        ({"message_bodies": 2, "events": -1}, "between 1 and 3650"),
                        ({"events": 5, "suppressions": 5}, "Unknown retention category"),
                        ({"events": "soon"}, "Invalid parameter"),
                        ({"events": True}, "Invalid parameter"),
                        ({"events": "7"}, "Invalid parameter"),
                        ([10], "Invalid parameter")]:
        reply = api.put("/v1/privacy/retention", json=body)
        assert reply.status_code == 400 and words in reply.json()["message"], (body, reply.text)
    assert _days(api.get("/v1/privacy/retention")) == {**DEFAULTS, "events": 10}


def test_periods_belong_to_one_account_and_need_its_key(api, live, services) -> None:
    from mailhaven.accounts.service import create_account

    with services.db.transaction() as session:
        other = create_account(session, services.vault, name="Globex", email="o@globex.test")
    api.put("/v1/privacy/retention", json={"events": 2})
    with live.client(other.api_key) as client:
        assert _days(client.get("/v1/privacy/retention")) == DEFAULTS
    with live.client() as anonymous:
        assert anonymous.get("/v1/privacy/retention").status_code == 401
        assert anonymous.put("/v1/privacy/retention", json={"events": 2}).status_code == 401
    assert "/v1/privacy/retention" in api.get("/openapi.json").json()["paths"]
