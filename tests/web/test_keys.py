"""/app/keys: who may see and make keys, of which roles; a key shown once; another
account's key out of reach."""

from __future__ import annotations

import re

from sqlalchemy import select

from mailhaven.accounts.models import ApiKey
from mailhaven.accounts.service import issue_key
from tests.web.helpers import add_user, csrf_of, http_log_in


def _roles_offered(html: str) -> list[str]:
    return re.findall(r'<option value="([a-z]+)">', html)


def test_an_analyst_has_no_keys_page(live, services, account) -> None:
    add_user(services, account[0], email="ann@acme.test", role="analyst")
    with live.client() as client:
        http_log_in(client, "ann@acme.test")
        panel = client.get("/app")
        assert 'href="/app/keys"' not in panel.text
        assert client.get("/app/keys").status_code == 403
        answer = client.post("/app/keys", data={"role": "analyst",
                                                "csrf_token": csrf_of(panel.text)})
        assert answer.status_code == 403 and "key-" not in answer.text


def test_a_developer_makes_keys_of_their_role_or_less_never_admin(live, services,
                                                                  account) -> None:
    add_user(services, account[0], email="dev@acme.test", role="developer")
    with live.client() as client:
        http_log_in(client, "dev@acme.test")
        listed = client.get("/app/keys")
        assert _roles_offered(listed.text) == ["developer", "analyst", "billing", "support"]
        token = csrf_of(listed.text)
        refused = client.post("/app/keys", data={"role": "admin", "description": "root",
                                                 "csrf_token": token})
        assert refused.status_code == 400
        assert "your own role or a lesser one" in refused.text
        made = client.post("/app/keys", data={"role": "support", "description": "helpdesk",
                                              "csrf_token": token})
        assert made.status_code == 200
        shown = re.search(r'id="new-key-value" class="copyable">(key-[0-9a-f]+)<', made.text)
        assert shown is not None
        # The admin key the account was made with is listed, but not theirs to revoke.
        again = client.get("/app/keys").text
        assert shown.group(1) not in again
        assert again.count("/revoke") == 1
    with services.db.sessions() as session:
        roles = {d: r for d, r in session.execute(select(ApiKey.description, ApiKey.role))}
    assert roles == {"": "admin", "helpdesk": "support"}


def test_a_description_may_not_hold_an_address(live, services, account) -> None:
    add_user(services, account[0], email="ann@acme.test")
    with live.client() as client:
        http_log_in(client, "ann@acme.test")
        token = csrf_of(client.get("/app/keys").text)
        answer = client.post("/app/keys", data={"role": "admin", "csrf_token": token,
                                                "description": "for bob@example.org"})
        assert answer.status_code == 400 and "can&#39;t hold an email address" in answer.text


def test_another_account_s_key_cannot_be_revoked_and_csrf_is_checked(
        live, services, account, second_account) -> None:  # type: ignore[no-untyped-def]
    add_user(services, account[0], email="ann@acme.test")
    with services.db.sessions() as session:
        theirs = session.scalar(select(ApiKey.id).where(
            ApiKey.account_id == second_account.account_id))
    with live.client() as client:
        http_log_in(client, "ann@acme.test")
        token = csrf_of(client.get("/app/keys").text)
        assert client.post(f"/app/keys/{theirs}/revoke",
                           data={"csrf_token": token}).status_code == 404
        assert client.post("/app/keys", data={"role": "admin"}).status_code == 403
    with live.client(second_account.api_key) as api:
        assert api.get("/v3/domains").status_code == 200


def test_keys_made_without_the_panel_are_admin_keys(services, account) -> None:
    with services.db.transaction() as session:
        issue_key(session, account[0], description="cli")
    with services.db.sessions() as session:
        assert set(session.scalars(select(ApiKey.role))) == {"admin"}
        assert set(session.scalars(select(ApiKey.created_by))) == {None}
