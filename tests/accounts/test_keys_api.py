"""Mailgun's Keys API (`/v1/keys`): an account's keys listed without their secrets, made
(the secret shown once) with a role no greater than the calling key's, and deleted through
the one revocation that every API process hears at commit; another account's key is as
absent as none. Bodies as Mailgun's clients send them: multipart and urlencoded."""

from __future__ import annotations

import re
from typing import Any

import httpx

from mailhaven.accounts.service import issue_key

TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")
BAD_KIND = {"message": "expected `kind` param to be one of [domain user web] or absent"}
GONE = {"message": "no key matching id"}
INVALID = {"message": "Invalid private key"}


def _multipart(**fields: str) -> dict[str, Any]:
    """httpx's `files=` with no file: a multipart/form-data body of plain fields, as
    mailgun.js and the Go client send."""
    return {"files": [(name, (None, value)) for name, value in fields.items()]}


def _key(services, account_id: str, role: str) -> str:  # type: ignore[no-untyped-def]
    with services.db.transaction() as session:
        return issue_key(session, account_id, role=role, description=role)


def test_a_key_made_in_multipart_is_shown_once_listed_without_it_and_works(
        live, api, account) -> None:  # type: ignore[no-untyped-def]
    made = api.post("/v1/keys", **_multipart(role="basic", description="dashboards"))
    assert made.status_code == 200, made.text
    assert made.request.headers["content-type"].startswith("multipart/form-data")
    body = made.json()
    assert body["message"] == "great success"
    key = body["key"]
    assert key["secret"].startswith("key-") and len(key["secret"]) == 44
    assert {k: key[k] for k in ("description", "kind", "role", "domain_name", "is_disabled",
                                "requestor", "user_name")} == {
        "description": "dashboards", "kind": "user", "role": "basic", "domain_name": None,
        "is_disabled": False, "requestor": None, "user_name": None}
    assert TIME.match(key["created_at"]) and TIME.match(key["updated_at"])

    listed = api.get("/v1/keys")
    assert listed.status_code == 200
    assert key["secret"] not in listed.text and "secret" not in listed.text
    items = listed.json()["items"]
    assert listed.json()["total_count"] == len(items) == 2  # with the account's first key
    assert {k["id"]: k["role"] for k in items} == {
        key["id"]: "basic", next(k["id"] for k in items if k["id"] != key["id"]): "admin"}
    assert next(k for k in items if k["id"] == key["id"]) == \
        {k: v for k, v in key.items() if k != "secret"}

    with live.client(key["secret"]) as analyst:  # an analyst's key: reads, no keys
        assert analyst.get("/v3/domains").status_code == 200
        refused = analyst.get("/v1/keys")
        assert refused.status_code == 403
        assert refused.json() == {
            "message": "This API key's role (analyst) does not allow this request"}


def test_a_key_made_urlencoded_then_deleted_is_refused_at_once(live, api, account) -> None:  # type: ignore[no-untyped-def]
    made = api.post("/v1/keys", data={"role": "developer", "description": "ci"})
    assert made.request.headers["content-type"] == "application/x-www-form-urlencoded"
    key = made.json()["key"]
    with live.client(key["secret"]) as ci:
        assert ci.get("/v3/domains").status_code == 200  # looked up, now cached
        deleted = api.delete(f"/v1/keys/{key['id']}")
        assert (deleted.status_code, deleted.json()) == (200, {"message": "key deleted"})
        # revoked through accounts.service.revoke_key: announced at commit, not kept for
        # KeyCache.TTL (the clock is frozen: a cached key would live on)
        assert (ci.get("/v3/domains").status_code, ci.get("/v3/domains").json()) == \
            (401, INVALID)
    again = api.delete(f"/v1/keys/{key['id']}")
    assert (again.status_code, again.json()) == (404, GONE)
    assert [k["id"] for k in api.get("/v1/keys").json()["items"]] != [key["id"]]
    assert key["id"] not in api.get("/v1/keys").text


def test_the_key_accounts_create_made_can_be_deleted_with_another(live, api, account) -> None:  # type: ignore[no-untyped-def]
    """The operator's case: the CLI's first key, leaked, revoked without any panel user."""
    replacement = api.post("/v1/keys", data={"role": "admin"}).json()["key"]
    first = next(k["id"] for k in api.get("/v1/keys").json()["items"]
                 if k["id"] != replacement["id"])
    with live.client(replacement["secret"]) as admin:
        assert admin.delete(f"/v1/keys/{first}").json() == {"message": "key deleted"}
        assert [k["id"] for k in admin.get("/v1/keys").json()["items"]] == [replacement["id"]]
    assert api.get("/v3/domains").status_code == 401


def test_a_key_makes_and_deletes_keys_of_its_role_or_a_lesser_one_only(
        live, services, api, account) -> None:  # type: ignore[no-untyped-def]
    with live.client(_key(services, account[0], "developer")) as developer:
        above = developer.post("/v1/keys", data={"role": "admin"})
        assert above.status_code == 403
        assert above.json() == {"message": "could not create key, a key can't be given a "
                                           "role above its maker's (developer)"}
        for role in ("developer", "basic", "support"):
            assert developer.post("/v1/keys", data={"role": role}).status_code == 200, role
        admin_key = next(k["id"] for k in developer.get("/v1/keys").json()["items"]
                         if k["role"] == "admin")
        refused = developer.delete(f"/v1/keys/{admin_key}")
        assert refused.status_code == 403 and "above" in refused.json()["message"]
    assert api.get("/v3/domains").status_code == 200  # the admin key still works
    roles = sorted(k["role"] for k in api.get("/v1/keys").json()["items"])
    assert roles == ["admin", "basic", "developer", "developer", "support"]


def test_kinds_roles_and_expirations_mailhaven_has_not_are_refused(api) -> None:  # type: ignore[no-untyped-def]
    bad = api.get("/v1/keys", params={"kind": "account"})
    assert (bad.status_code, bad.json()) == (400, BAD_KIND)
    assert api.get("/v1/keys", params={"kind": "user"}).json()["total_count"] == 1
    for query in ({"kind": "domain"}, {"kind": "web"}, {"domain_name": "mg.acme.test"}):
        assert api.get("/v1/keys", params=query).json() == {"total_count": 0, "items": []}

    def refused(**fields: str) -> str:
        reply = api.post("/v1/keys", **_multipart(**fields))
        assert reply.status_code == 400, (fields, reply.text)
        return str(reply.json()["message"])

    assert refused(description="no role") == "role is required: admin, basic or developer"
    assert "no `domain` or `web` keys" in refused(role="sending", kind="domain",
                                                  domain_name="mg.acme.test")
    assert "kind `domain`" in refused(role="sending")
    assert "role must be one of" in refused(role="owner")
    assert refused(role="basic", kind="mailbox") == BAD_KIND["message"]
    assert "kind must be `user`" in refused(role="basic", kind="web")
    assert "expiration is not supported" in refused(role="basic", expiration="3600")
    assert "can't hold an email address" in refused(role="basic", description="ann@x.test")
    assert "at most 200" in refused(role="basic", description="x" * 201)
    assert api.get("/v1/keys").json()["total_count"] == 1  # none was made


def test_another_accounts_key_is_neither_listed_nor_deleted(
        live, api, account, second_account) -> None:  # type: ignore[no-untyped-def]
    with live.client(second_account.api_key) as bee:
        theirs = bee.get("/v1/keys").json()["items"]
        assert len(theirs) == 1
        ours = {k["id"] for k in api.get("/v1/keys").json()["items"]}
        assert theirs[0]["id"] not in ours
        for other_id in ours:
            reply = bee.delete(f"/v1/keys/{other_id}")
            assert (reply.status_code, reply.json()) == (404, GONE)
        reply = api.delete(f"/v1/keys/{theirs[0]['id']}")
        assert (reply.status_code, reply.json()) == (404, GONE)
        assert bee.get("/v3/domains").status_code == 200
    assert api.get("/v3/domains").status_code == 200


def test_unauthenticated_calls_are_refused(live) -> None:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=live.base_url) as anonymous:
        assert anonymous.get("/v1/keys").status_code == 401
        assert anonymous.post("/v1/keys", data={"role": "admin"}).status_code == 401
        assert anonymous.delete("/v1/keys/x").status_code == 401
