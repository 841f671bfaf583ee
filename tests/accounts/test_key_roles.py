"""Roles limit API keys as they limit users in the panel: a key may call a route when a user
of its role has the panel permission the route needs (deps.ROUTE_PERMISSIONS,
TAG_PERMISSIONS). Analyst and billing keys only read, support keys read and change
suppressions, developer keys do what a Developer does (not the account's retention or its
deletion), admin keys everything; refusals are Mailgun-shaped 403s, for a key just looked
up as for one the KeyCache holds."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.routing import APIRoute

from mailhaven.accounts.service import grantable, issue_key
from mailhaven.app import create_app
from mailhaven.deps import current_account, required_permission
from mailhaven.users.service import PERMISSIONS, ROLES
from tests.delivery.sinks import events

SEND = {"from": "a@mg.acme.test", "to": "ann@example.org", "subject": "s", "text": "t"}


def _key(services, account_id: str, role: str) -> str:  # type: ignore[no-untyped-def]
    with services.db.transaction() as session:
        return issue_key(session, account_id, role=role, description=role)


@pytest.mark.parametrize("role", ["analyst", "billing"])
def test_read_only_keys_read_and_change_nothing(live, services, account, domain,
                                               role) -> None:  # type: ignore[no-untyped-def]
    with live.client(_key(services, account[0], role)) as api:
        for _ in range(2):  # looked up, then from the cache
            assert api.get("/v3/domains").status_code == 200
            assert api.head(f"/v3/domains/{domain}").status_code in (200, 405)
            refused = api.post(f"/v3/{domain}/messages", data=SEND)
            assert refused.status_code == 403
            assert refused.json() == {
                "message": f"This API key's role ({role}) does not allow this request"}
        assert api.post(f"/v3/{domain}/bounces",
                        data={"address": "b@example.org"}).status_code == 403
        assert api.delete(f"/v3/domains/{domain}").status_code == 403
        assert api.put(f"/v3/domains/{domain}/tracking/open",
                       data={"active": "yes"}).status_code == 403
        assert api.post("/v1/analytics/metrics", json={
            "metrics": ["delivered_count"], "duration": "1d"}).status_code == 200
    with live.client(account[1]) as admin:
        assert admin.get(f"/v3/domains/{domain}").status_code == 200  # not deleted


def test_support_keys_read_and_change_suppressions_only(live, services, account,
                                                       domain) -> None:
    with live.client(_key(services, account[0], "support")) as api:
        added = api.post(f"/v3/{domain}/bounces", data={"address": "b@example.org"})
        assert added.status_code == 200, added.text
        assert api.get(f"/v3/{domain}/bounces/b@example.org").status_code == 200
        assert api.delete(f"/v3/{domain}/bounces/b@example.org").status_code == 200
        assert api.post(f"/v3/{domain}/unsubscribes",
                        data={"address": "u@example.org"}).status_code == 200
        assert api.post(f"/v3/{domain}/messages", data=SEND).status_code == 403
        assert api.post(f"/v3/domains/{domain}/credentials",
                        data={"login": "x"}).status_code == 403
        assert api.post("/v3/routes", data={"expression": "catch_all()",
                                            "action": "stop()"}).status_code == 403


def _refused(reply, role: str) -> bool:  # type: ignore[no-untyped-def]
    return (reply.status_code, reply.json()) == (
        403, {"message": f"This API key's role ({role}) does not allow this request"})


def _stored_message(live, account, domain: str) -> str:  # type: ignore[no-untyped-def]
    """The storage URL of a message the account's admin key sent."""
    with live.client(account[1]) as admin:
        assert admin.post(f"/v3/{domain}/messages", data=SEND).status_code == 200
        return str(events(admin, domain, "accepted")[-1]["storage"]["url"])


def test_developer_keys_send_but_keep_off_the_accounts_retention_and_deletion(
        live, services, account, domain) -> None:  # type: ignore[no-untyped-def]
    with live.client(_key(services, account[0], "developer")) as api:
        for _ in range(2):  # looked up, then from the cache
            assert _refused(api.put("/v1/privacy/retention", json={"events": 5}), "developer")
            assert _refused(api.delete("/v1/privacy/account", params={"confirm": account[0]}),
                            "developer")
        assert api.post(f"/v3/{domain}/messages", data=SEND).status_code == 200
        assert api.put(f"/v3/domains/{domain}/tracking/open",
                       data={"active": "yes"}).status_code == 200
        assert api.get("/v1/privacy/retention").status_code == 200
        assert api.get("/v5/accounts/http_signing_key").status_code == 200
    with live.client(account[1]) as admin:
        assert admin.get(f"/v3/domains/{domain}").status_code == 200  # not deleted
        days = {p["category"]: p for p in admin.get("/v1/privacy/retention").json()["policies"]}
        assert days["events"]["days"] != 5


@pytest.mark.parametrize("role", ["analyst", "billing", "support"])
def test_limited_keys_cannot_read_the_signing_key_or_stored_messages(
        live, services, account, domain, role) -> None:  # type: ignore[no-untyped-def]
    stored = _stored_message(live, account, domain)
    with live.client(_key(services, account[0], role)) as api:
        for _ in range(2):
            assert _refused(api.get("/v5/accounts/http_signing_key"), role)
            assert _refused(api.post("/v5/accounts/http_signing_key"), role)
            assert _refused(api.get(stored), role)
            assert _refused(api.post(stored, data={"to": "bob@example.org"}), role)
            assert _refused(api.put("/v1/privacy/retention", json={"events": 5}), role)
            assert _refused(api.delete("/v1/privacy/account", params={"confirm": account[0]}),
                            role)
    with live.client(account[1]) as admin:
        assert admin.get(stored).status_code == 200


def test_event_logs_are_for_roles_that_see_logs(live, services, account,
                                                domain) -> None:  # type: ignore[no-untyped-def]
    _stored_message(live, account, domain)  # to ann@example.org
    with live.client(_key(services, account[0], "billing")) as billing:
        assert _refused(billing.get(f"/v3/{domain}/events"), "billing")
        assert _refused(billing.post("/v1/analytics/logs", json={"duration": "1d"}), "billing")
        assert billing.get(f"/v3/{domain}/stats/total",
                           params={"event": "accepted"}).status_code == 200
    with live.client(_key(services, account[0], "analyst")) as analyst:
        assert analyst.get(f"/v3/{domain}/events").status_code == 200
        assert _refused(analyst.get("/v1/privacy/recipients/ann@example.org"), "analyst")
    with live.client(_key(services, account[0], "support")) as support:  # "privacy"
        assert support.get("/v1/privacy/recipients/ann@example.org").status_code == 200


def test_admin_keys_do_everything(live, services, account, domain) -> None:  # type: ignore[no-untyped-def]
    stored = _stored_message(live, account, domain)
    with live.client(_key(services, account[0], "admin")) as api:
        assert api.post(f"/v3/{domain}/messages", data=SEND).status_code == 200
        assert api.get(stored).status_code == 200
        assert api.get("/v5/accounts/http_signing_key").status_code == 200
        assert api.put(f"/v3/domains/{domain}/tracking/open",
                       data={"active": "yes"}).status_code == 200
        assert api.put("/v1/privacy/retention", json={"events": 5}).status_code == 200
        assert api.delete("/v1/privacy/account",
                          params={"confirm": account[0]}).status_code == 200


def test_every_api_route_needs_a_panel_permission(services) -> None:  # type: ignore[no-untyped-def]
    """A route the tables forget is the admin's only: name each one a key may call."""
    known = set().union(*PERMISSIONS.values())
    checked = 0
    for route in _api_routes(create_app(services).routes):
        if not _authenticated(route):
            continue
        for method in route.methods:
            assert required_permission(method, route) in known, (method, route.path)
            checked += 1
    assert checked > 120  # the API's routes, not none


def _api_routes(routes: list[Any]) -> list[APIRoute]:
    """Into included routers, which this FastAPI keeps nested (`original_router`)."""
    found: list[APIRoute] = []
    for route in routes:
        if hasattr(route, "original_router"):
            found += _api_routes(route.original_router.routes)
        elif isinstance(route, APIRoute):
            found.append(route)
    return found


def _authenticated(route: APIRoute) -> bool:
    pending = list(route.dependant.dependencies)
    while pending:
        dependency = pending.pop()
        if dependency.call is current_account:
            return True
        pending += dependency.dependencies
    return False


def test_a_role_grants_its_own_or_a_lesser_one() -> None:
    assert grantable("admin") == ROLES
    assert grantable("developer") == ("developer", "analyst", "billing", "support")
    assert grantable("support") == ("support",)
