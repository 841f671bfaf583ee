"""Routes may name people (`match_recipient("bob@…")`, `forward("ann@…")`): what the
customer wrote is sealed at rest under a key of the route's own, gone with that key when
the route or the account is deleted, in the account holder's export, and never in a log
line."""

from __future__ import annotations

import logging

from sqlalchemy import func, select

from mailhaven.exports import export_account
from mailhaven.routes.models import Route
from mailhaven.vault.models import VaultKey
from tests.exports.archive import read, validate

SECRET = "k7w3q"  # in every field a customer writes
EXPRESSION = f'match_recipient("bob.{SECRET}@mg.acme.test")'
ACTIONS = [f'forward("ann.{SECRET}@example.org")',
           f'forward("https://hooks.acme.test/{SECRET}?to=carl.{SECRET}@example.org")',
           f'store(notify="https://hooks.acme.test/stored/{SECRET}")', "stop()"]


def _store(api, description: str = f"for dora.{SECRET}@acme.test") -> dict:  # type: ignore[no-untyped-def]
    reply = api.post("/v3/routes", data={"expression": EXPRESSION, "action": ACTIONS,
                                         "description": description, "priority": "4"})
    assert reply.status_code == 200, reply.text
    return reply.json()["route"]


def _count(services, model) -> int:  # type: ignore[no-untyped-def]
    with services.db.sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def _route_keys(services) -> list[str]:  # type: ignore[no-untyped-def]
    with services.db.sessions() as session:
        return list(session.scalars(select(Route.content_key_id)))


def _keys_left(services, ids: list[str]) -> int:  # type: ignore[no-untyped-def]
    with services.db.sessions() as session:
        return session.scalar(select(func.count()).where(VaultKey.id.in_(ids))) or 0


def test_nothing_a_customer_wrote_in_a_route_is_stored_or_logged_in_clear(
        api, raw_dump, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    route = _store(api)
    assert api.put(f"/v3/routes/{route['id']}", data={
        "description": f"now erin.{SECRET}@acme.test"}).status_code == 200
    assert api.get("/v3/routes/match", params={
        "address": f"bob.{SECRET}@mg.acme.test"}).status_code == 200
    assert SECRET in api.get("/v3/routes").text  # readable through the API
    dump = raw_dump()
    assert dump.holding(SECRET.encode()) == []
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("mailhaven")]
    assert ours and not [line for line in ours if SECRET in line]


def test_deleting_a_route_deletes_its_key(api, services) -> None:
    route = _store(api)
    keys = _route_keys(services)
    assert len(keys) == 1
    assert api.delete(f"/v3/routes/{route['id']}").status_code == 200
    assert _keys_left(services, keys) == 0
    assert _count(services, Route) == 0


def test_deleting_the_account_erases_its_routes(api, services, account, second_api,
                                                second_account) -> None:
    _store(api)
    _store(api, "another")
    theirs = _store(second_api)
    keys = _route_keys(services)
    done = api.delete("/v1/privacy/account", params={"confirm": account[0]})
    assert done.status_code == 200, done.text
    assert _keys_left(services, keys) == 1
    with services.db.sessions() as session:
        assert session.scalars(select(Route.account_id)).all() == [second_account.account_id]
    assert second_api.get(f"/v3/routes/{theirs['id']}").json()["route"] == theirs


def test_the_account_holder_s_export_holds_the_routes(api, services, account, tmp_path,
                                                      second_api) -> None:
    route = _store(api)
    _store(second_api, "not theirs to see")
    export = read(export_account(services.db, services.vault, account[0],
                                 tmp_path / "acme.zip").path)
    validate(export.document)
    [exported] = export.document["categories"]["routes"]
    assert {k: exported[k] for k in ("id", "priority", "description", "expression",
                                     "actions")} == {
        "id": route["id"], "priority": 4, "description": f"for dora.{SECRET}@acme.test",
        "expression": EXPRESSION, "actions": ACTIONS}
    assert exported["created_at"].endswith("Z")
    assert len(export.csv("routes")) == 1
