"""Mailgun's credentials API over real HTTP, shaped as clients send it (urlencoded and
multipart, repeated fields, percent-encoded logins), and through the official SDK."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from mailgun.client import Client

from mailhaven.credentials import service
from mailhaven.services import Services
from tests.support import LiveServer

RFC2822_NUMERIC = re.compile(
    r"^[A-Z][a-z]{2}, [0-9]{2} [A-Z][a-z]{2} [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} [+-][0-9]{4}$")
CREDENTIALS = "/v3/domains/mg.acme.test/credentials"


def ok(reply) -> dict:  # type: ignore[no-untyped-def]
    assert reply.status_code == 200, (reply.status_code, reply.text)
    return reply.json()


def refused(reply, status: int) -> str:  # type: ignore[no-untyped-def]
    assert reply.status_code == status, (reply.status_code, reply.text)
    return reply.json()["message"]


def logs_in(services: Services, login: str, password: str) -> bool:
    with services.db.sessions() as session:
        return service.authenticate(session, services.vault, login, password) is not None


def logins(api) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(item["login"] for item in ok(api.get(CREDENTIALS))["items"])


def test_create_urlencoded_then_list_in_mailguns_shape(api, services, domain) -> None:
    body = ok(api.post(CREDENTIALS, data={"login": f"alice@{domain}",
                                          "password": "alice-secret"}))
    assert body == {"message": "Created 1 credentials pair(s)"}
    listed = ok(api.get(CREDENTIALS))
    assert listed["total_count"] == 1
    [item] = listed["items"]
    assert set(item) == {"mailbox", "login", "created_at", "size_bytes"}
    assert item["login"] == item["mailbox"] == f"alice@{domain}"
    assert item["size_bytes"] is None
    assert RFC2822_NUMERIC.match(item["created_at"]), item["created_at"]
    assert logs_in(services, f"alice@{domain}", "alice-secret")


def test_create_multipart_with_repeated_logins_bare_and_by_mailbox(api, services,
                                                                   domain) -> None:
    reply = api.post(CREDENTIALS, files=[
        ("login", (None, "alice")), ("password", (None, "alice-secret")),
        ("mailbox", (None, f"Bob@{domain}")), ("password", (None, "bob-secret")),
        ("system", (None, "false"))])
    assert ok(reply) == {"message": "Created 2 credentials pair(s)"}
    assert logins(api) == [f"alice@{domain}", f"bob@{domain}"]
    assert logs_in(services, f"alice@{domain}", "alice-secret")
    assert logs_in(services, f"bob@{domain}", "bob-secret")


def test_passwords_left_out_are_generated_and_shown_once(api, services, domain) -> None:
    body = ok(api.post(CREDENTIALS, data={"login": ["carol", "dave"]}))
    assert body["message"] == "Created 2 credentials pair(s)"
    assert body["note"]
    generated = body["credentials"]
    assert set(generated) == {f"carol@{domain}", f"dave@{domain}"}
    for login, password in generated.items():
        assert len(password) == 32
        assert logs_in(services, login, password)
    assert "credentials" not in ok(api.get(CREDENTIALS))["items"][0]

    changed = ok(api.put(f"{CREDENTIALS}/carol"))
    assert changed["message"] == "Password changed"
    [(login, password)] = changed["credentials"].items()
    assert login == f"carol@{domain}" and password != generated[login]
    assert logs_in(services, login, password)
    assert not logs_in(services, login, generated[login])


def test_change_password_by_full_or_bare_login_percent_encoded(api, services, domain) -> None:
    odd = "o'neil+news"
    ok(api.post(CREDENTIALS, data={"login": odd, "password": "first-one"}))
    path = f"{CREDENTIALS}/{quote(f'{odd}@{domain}', safe='')}"
    assert ok(api.put(path, data={"password": "second-one"})) == {"message": "Password changed"}
    assert logs_in(services, f"{odd}@{domain}", "second-one")
    assert not logs_in(services, f"{odd}@{domain}", "first-one")
    reply = api.put(f"{CREDENTIALS}/{quote(odd, safe='')}", files=[
        ("password", (None, "third-one"))])
    assert ok(reply) == {"message": "Password changed"}
    assert logs_in(services, f"{odd}@{domain}", "third-one")


def test_delete_one_by_either_spelling_then_all(api, services, domain) -> None:
    ok(api.post(CREDENTIALS, data={"login": ["alice", "bob", "carol"],
                                   "password": ["secret-a", "secret-b", "secret-c"]}))
    assert ok(api.delete(f"{CREDENTIALS}/alice%40{domain}")) == {
        "message": "Credentials have been deleted", "spec": f"alice@{domain}"}
    assert ok(api.delete(f"{CREDENTIALS}/bob")) == {
        "message": "Credentials have been deleted", "spec": f"bob@{domain}"}
    assert refused(api.delete(f"{CREDENTIALS}/bob"), 404) == "Credentials not found"
    assert logins(api) == [f"carol@{domain}"]
    assert ok(api.delete(CREDENTIALS)) == {"message": "All domain credentials have been deleted",
                                           "count": 1}
    assert ok(api.get(CREDENTIALS)) == {"items": [], "total_count": 0}
    assert not logs_in(services, f"carol@{domain}", "secret-c")


def test_paging_with_skip_and_limit(api, domain, clock) -> None:
    for n in range(4):
        ok(api.post(CREDENTIALS, data={"login": f"user{n}", "password": "password"}))
        clock.advance(1)
    page = ok(api.get(CREDENTIALS, params={"skip": 1, "limit": 2}))
    assert page["total_count"] == 4
    assert [i["login"] for i in page["items"]] == [f"user1@{domain}", f"user2@{domain}"]
    assert refused(api.get(CREDENTIALS, params={"limit": 1001}), 400) == (
        "Limit parameter can't be larger than 1000")
    for params in ({"limit": "many"}, {"limit": 0}, {"skip": -1}):
        assert "Invalid parameter" in refused(api.get(CREDENTIALS, params=params), 400)


@pytest.mark.parametrize(("form", "message"), [
    ({"password": "secret-one"}, "Parameter 'login' is missing"),
    ({"login": "", "password": "secret-one"}, "Parameter 'login' is missing"),
    ({"login": "alice", "password": "1234"}, "password should be in range 5-32 characters"),
    ({"login": "alice", "password": "x" * 33}, "password should be in range 5-32 characters"),
    ({"login": ["alice", "bob"], "password": "secret-one"}, "one password per login"),
    ({"login": "alice@mg.bee.test", "password": "secret-one"},
     "must be an address of the domain mg.acme.test"),
    ({"login": "al ice", "password": "secret-one"}, "is not a valid login"),
    ({"login": ["alice", "alice"], "password": ["secret-one", "secret-two"]},
     "already exists"),
])
def test_bad_input_is_a_400_with_a_message(api, services, domain, form, message) -> None:
    assert message in refused(api.post(CREDENTIALS, data=form), 400)
    assert logins(api) == []  # nothing of a refused request stays


def test_bad_passwords_on_change_and_unknown_logins(api, domain) -> None:
    ok(api.post(CREDENTIALS, data={"login": "alice", "password": "secret-one"}))
    assert refused(api.put(f"{CREDENTIALS}/alice", data={"password": "1234"}), 400) == (
        "password should be in range 5-32 characters")
    for spec in ("nobody", "alice%40mg.bee.test", "a..b", "a%20b", "%40"):
        assert refused(api.put(f"{CREDENTIALS}/{spec}", data={"password": "secret-two"}),
                       404) == "Credentials not found", spec


def test_another_accounts_domain_is_not_found(api, second_api, services, domain) -> None:
    ok(api.post(CREDENTIALS, data={"login": "alice", "password": "secret-one"}))
    for reply in (second_api.get(CREDENTIALS),
                  second_api.post(CREDENTIALS, data={"login": "eve", "password": "secret-eve"}),
                  second_api.put(f"{CREDENTIALS}/alice", data={"password": "secret-eve"}),
                  second_api.delete(f"{CREDENTIALS}/alice"),
                  second_api.delete(CREDENTIALS),
                  api.get("/v3/domains/mg.nowhere.test/credentials")):
        assert refused(reply, 404) == "Domain not found"
    assert logins(api) == [f"alice@{domain}"]
    assert logs_in(services, f"alice@{domain}", "secret-one")
    assert not logs_in(services, f"alice@{domain}", "secret-eve")


def test_openapi_declares_the_forms_and_answers(api) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    listing = paths["/v3/domains/{domain_name}/credentials"]
    one = paths["/v3/domains/{domain_name}/credentials/{spec}"]
    assert set(listing) == {"get", "post", "delete"} and set(one) == {"put", "delete"}
    for operation in (listing["post"], one["put"]):
        content = operation["requestBody"]["content"]
        assert set(content) == {"multipart/form-data", "application/x-www-form-urlencoded"}
        assert "password" in content["multipart/form-data"]["schema"]["properties"]
    assert listing["post"]["requestBody"]["content"]["multipart/form-data"]["schema"][
        "required"] == ["login"]
    assert "total_count" in listing["get"]["responses"]["200"]["content"][
        "application/json"]["example"]
    assert one["put"]["responses"]["404"]["content"]["application/json"]["example"] == {
        "message": "Credentials not found"}


def test_the_official_sdk_manages_credentials(live: LiveServer, account, services,
                                              domain) -> None:
    """The SDK sends a login of the domain as its bare local part in the path."""
    with Client(auth=("api", account[1]), api_url=live.base_url) as client:
        created = client.domains_credentials.create(
            domain=domain, data={"login": f"alice_bob@{domain}", "password": "sdk-secret1"})
        assert ok(created) == {"message": "Created 1 credentials pair(s)"}
        listed = ok(client.domains_credentials.get(domain=domain))
        assert [i["login"] for i in listed["items"]] == [f"alice_bob@{domain}"]
        changed = client.domains_credentials.put(domain=domain, login=f"alice_bob@{domain}",
                                                 data={"password": "sdk-secret2"})
        assert ok(changed)["message"] == "Password changed"
        assert logs_in(services, f"alice_bob@{domain}", "sdk-secret2")
        deleted = client.domains_credentials.delete(domain=domain, login=f"alice_bob@{domain}")
        assert ok(deleted)["spec"] == f"alice_bob@{domain}"
        ok(client.domains_credentials.create(
            domain=domain, data={"login": "carol", "password": "sdk-secret3"}))
        assert ok(client.domains_credentials.delete(domain=domain))["count"] == 1


def test_a_new_domains_smtp_password_sets_its_postmaster_login(api, services) -> None:
    reply = api.post("/v4/domains", files=[("name", (None, "news.example.com")),
                                           ("smtp_password", (None, "postmaster-pw"))])
    assert ok(reply)["domain"]["smtp_login"] == "postmaster@news.example.com"
    assert logs_in(services, "postmaster@news.example.com", "postmaster-pw")
    listed = ok(api.get("/v3/domains/news.example.com/credentials"))
    assert [i["login"] for i in listed["items"]] == ["postmaster@news.example.com"]
    assert ok(api.get("/v4/domains/news.example.com"))["domain"]["smtp_login"] == (
        "postmaster@news.example.com")

    # Without a password the login is shown as Mailgun shows it, and has no credential yet.
    ok(api.post("/v4/domains", data={"name": "plain.example.com", "smtp_password": ""}))
    assert ok(api.get("/v3/domains/plain.example.com/credentials"))["total_count"] == 0
    assert ok(api.get("/v4/domains/plain.example.com"))["domain"]["smtp_login"] == (
        "postmaster@plain.example.com")

    assert refused(api.post("/v4/domains", data={"name": "short.example.com",
                                                 "smtp_password": "1234"}), 400) == (
        "password should be in range 5-32 characters")
    assert refused(api.get("/v4/domains/short.example.com"), 404) == "Domain not found"


def test_a_domain_update_s_smtp_password_sets_or_makes_its_postmaster_login(
        api, services, domain) -> None:
    """Mailgun's `PUT /v4/domains/{d}` with `smtp_password`: the postmaster's password,
    the login made when the domain has none yet; a password too short changes nothing."""
    ok(api.put(f"/v4/domains/{domain}", data={"smtp_password": "first-pw"}))
    assert logs_in(services, f"postmaster@{domain}", "first-pw")
    ok(api.put(f"/v4/domains/{domain}", files=[("smtp_password", (None, "second-pw"))]))
    assert logs_in(services, f"postmaster@{domain}", "second-pw")
    assert not logs_in(services, f"postmaster@{domain}", "first-pw")
    assert refused(api.put(f"/v4/domains/{domain}", data={"smtp_password": "1234"}), 400) == (
        "password should be in range 5-32 characters")
    assert logs_in(services, f"postmaster@{domain}", "second-pw")
    listed = ok(api.get(f"/v3/domains/{domain}/credentials"))
    assert [i["login"] for i in listed["items"]] == [f"postmaster@{domain}"]
