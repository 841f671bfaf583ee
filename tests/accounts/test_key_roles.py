"""Roles limit API keys as they limit users: analyst and billing keys only read, support
keys read and change suppressions, admin and developer keys do everything; refusals are
Mailgun-shaped 403s, for a key just looked up as for one the KeyCache holds."""

from __future__ import annotations

import pytest

from mailhaven.accounts.service import grantable, issue_key
from mailhaven.users.service import ROLES

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


@pytest.mark.parametrize("role", ["admin", "developer"])
def test_admin_and_developer_keys_do_everything(live, services, account, domain,
                                               role) -> None:  # type: ignore[no-untyped-def]
    with live.client(_key(services, account[0], role)) as api:
        assert api.post(f"/v3/{domain}/messages", data=SEND).status_code == 200
        assert api.put(f"/v3/domains/{domain}/tracking/open",
                       data={"active": "yes"}).status_code == 200


def test_a_role_grants_its_own_or_a_lesser_one() -> None:
    assert grantable("admin") == ROLES
    assert grantable("developer") == ("developer", "analyst", "billing", "support")
    assert grantable("support") == ("support",)
