"""Mailgun's official Python SDK (`mailgun==1.10.0`): its routes calls, made as its
examples make them (routes_examples.py), against Mailhaven on a live server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from mailgun.client import Client

from tests.support import LiveServer


@pytest.fixture
def client(live: LiveServer, account: tuple[str, str], domain: str) -> Iterator[Client]:
    with Client(auth=("api", account[1]), api_url=live.base_url) as sdk:
        yield sdk


def ok(response) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, (response.status_code, response.text)
    return response.json()


def test_routes_create_list_get_update_match_delete(client, domain) -> None:
    data = {"priority": 0, "description": "Sample route",
            "expression": f"match_recipient('.*@{domain}')",
            "action": ["forward('http://myhost.com/messages/')", "stop()"]}
    created = ok(client.routes.create(data=data))
    assert created["message"] == "Route has been created"
    route = created["route"]
    assert route["actions"] == data["action"]
    assert route["expression"] == data["expression"]

    listed = ok(client.routes.get(filters={"skip": 0, "limit": 1}))
    assert listed == {"total_count": 1, "items": [route]}
    assert ok(client.routes.get(route_id=route["id"])) == {"route": route}

    updated = ok(client.routes.put(route_id=route["id"], data={
        **data, "priority": 2, "action": ["forward('http://myhost.com/other/')", "stop()"]}))
    assert updated["message"] == "Route has been updated"
    assert updated["route"]["priority"] == 2
    assert updated["route"]["actions"] == ["forward('http://myhost.com/other/')", "stop()"]

    match = ok(client.routes_match.get(filters={"address": f"ann@{domain}"}))
    assert match["route"]["id"] == route["id"]
    missing = client.routes_match.get(filters={"address": "ann@elsewhere.test"})
    assert missing.status_code == 404 and missing.json() == {"message": "Route not found"}

    assert ok(client.routes.delete(route_id=route["id"])) == {
        "message": "Route has been deleted", "id": route["id"]}
    assert client.routes.get(route_id=route["id"]).status_code == 404


def test_a_bad_expression_reaches_the_sdk_as_a_400(client) -> None:
    reply = client.routes.create(data={"expression": "match_recipient('(a+)+b')",
                                       "action": ["stop()"]})
    assert reply.status_code == 400
    assert "can backtrack without end" in reply.json()["message"]
