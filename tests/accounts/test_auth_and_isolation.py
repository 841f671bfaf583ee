"""HTTP Basic `api:KEY` authentication, Mailgun's 401 bodies, and one account never
seeing, touching or sending from another's domains."""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import update

from mailhaven.accounts.service import create_account, issue_key, revoke_keys
from mailhaven.accounts.throttle import FailedLogins
from mailhaven.clock import FrozenClock
from mailhaven.deps import TOO_MANY_FAILURES
from mailhaven.domains.models import Domain
from mailhaven.domains.service import create_domain
from tests.support import Sink, deliver_due

SEND = {"from": "a@mg.acme.test", "to": "ann@example.org", "subject": "s", "text": "t"}
MIME = [("message", ("m.eml", b"From: a@mg.acme.test\r\nSubject: s\r\n\r\nx\r\n",
                     "message/rfc822")), ("to", (None, "ann@example.org"))]


@pytest.fixture
def other(services, live):  # type: ignore[no-untyped-def]
    """A second account, with a domain of its own, and a client holding its key."""
    with services.db.transaction() as session:
        issued = create_account(session, services.vault, name="Globex",
                                email="ops@globex.test", clock=services.clock)
        create_domain(session, services.vault, issued.account_id,
                      {"name": "mg.globex.test", "dkim_key_size": "1024"}, services.clock)
    with live.client(issued.api_key) as client:
        yield client


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def bad_credentials(api_key: str) -> dict[str, dict[str, str]]:
    return {
        "none": {},
        "wrong key": basic("api", "key-" + "0" * 40),
        "wrong user": basic("admin", api_key),
        "no user": basic("", api_key),
        "empty key": basic("api", ""),
        "key as user": basic(api_key, ""),
        "bearer": {"Authorization": f"Bearer {api_key}"},
        "not base64": {"Authorization": "Basic %%%"},
    }


# -- 401 ----------------------------------------------------------------------------------
def test_messages_answers_401_forbidden_in_plain_text(live, account, domain) -> None:
    with httpx.Client(base_url=live.base_url) as client:
        for case, headers in bad_credentials(account[1]).items():
            for path, kwargs in ((f"/v3/{domain}/messages", {"data": SEND}),
                                 (f"/v3/{domain}/messages.mime", {"files": MIME})):
                reply = client.post(path, headers=headers, **kwargs)
                assert (reply.status_code, reply.text) == (401, "Forbidden"), (case, path)
                assert reply.headers["content-type"].startswith("text/plain")


def test_other_endpoints_answer_401_invalid_private_key(live, account, domain) -> None:
    requests = [("GET", "/v3/domains"), ("GET", "/v4/domains"), ("POST", "/v3/domains"),
                ("GET", f"/v3/domains/{domain}"), ("DELETE", f"/v3/domains/{domain}"),
                ("GET", f"/v3/{domain}/events")]
    with httpx.Client(base_url=live.base_url) as client:
        for case, headers in bad_credentials(account[1]).items():
            for method, path in requests:
                reply = client.request(method, path, headers=headers)
                assert reply.status_code == 401, (case, method, path)
                assert reply.json() == {"message": "Invalid private key"}, (case, method, path)
        # nothing happened on the way
        with httpx.Client(base_url=live.base_url, auth=("api", account[1])) as owner:
            assert owner.get(f"/v3/domains/{domain}").status_code == 200


def test_an_unauthenticated_send_queues_nothing(live, services, account, domain) -> None:
    with httpx.Client(base_url=live.base_url, auth=("api", "key-wrong")) as client:
        assert client.post(f"/v3/{domain}/messages", data=SEND).status_code == 401
    with Sink() as sink:
        deliver_due(services, sink)
    assert sink.received == []


def test_a_revoked_key_stops_working_and_another_key_still_works(live, services, account,
                                                                 domain) -> None:
    with services.db.transaction() as session:
        second = issue_key(session, account[0], description="ci", clock=services.clock)
    with live.client(second) as client:
        assert client.get("/v3/domains").status_code == 200
    with services.db.transaction() as session:
        revoke_keys(session, account[0], description="ci", clock=services.clock)
    # The revocation is announced with its commit (storage.revocations): the cached key is
    # refused at once, not after KeyCache.TTL
    with live.client(second) as client:
        assert client.get("/v3/domains").json() == {"message": "Invalid private key"}
        assert client.post(f"/v3/{domain}/messages", data=SEND).text == "Forbidden"
    with live.client(account[1]) as client:
        assert client.get("/v3/domains").status_code == 200


# -- isolation ----------------------------------------------------------------------------
def test_another_account_cannot_see_or_touch_the_domain(api, other, domain) -> None:
    listed = other.get("/v3/domains").json()
    assert [d["name"] for d in listed["items"]] == ["mg.globex.test"]
    assert listed["total_count"] == 1
    assert [d["name"] for d in other.get("/v4/domains", params={"search": "acme"})
            .json()["items"]] == []

    for path in (f"/v3/domains/{domain}", f"/v4/domains/{domain}",
                 "/v3/domains/mg%2Eacme%2Etest", f"/v3/domains/{domain.upper()}"):
        reply = other.get(path)
        assert (reply.status_code, reply.json()) == (404, {"message": "Domain not found"})
        reply = other.delete(path)
        assert (reply.status_code, reply.json()) == (404, {"message": "Domain not found"})

    # The owner still has it, whole.
    assert api.get(f"/v3/domains/{domain}").status_code == 200
    assert api.get("/v3/domains").json()["total_count"] == 1


def test_another_account_cannot_send_from_the_domain(api, other, services, domain) -> None:
    reply = other.post(f"/v3/{domain}/messages", data=SEND)
    assert (reply.status_code, reply.json()) == (404, {"message": f"Domain not found: {domain}"})
    reply = other.post(f"/v3/{domain}/messages.mime", files=MIME)
    assert (reply.status_code, reply.json()) == (404, {"message": f"Domain not found: {domain}"})
    with Sink() as sink:
        deliver_due(services, sink)
    assert sink.received == []
    assert api.get(f"/v3/{domain}/events").json()["items"] == []


def test_another_account_cannot_read_the_events(api, other, services, domain) -> None:
    assert api.post(f"/v3/{domain}/messages", data=SEND).status_code == 200
    mine = other.post("/v3/mg.globex.test/messages", data={
        **SEND, "from": "b@mg.globex.test", "to": "zed@example.org"})
    assert mine.status_code == 200
    with Sink() as sink:
        deliver_due(services, sink)
    assert len(sink.received) == 2

    reply = other.get(f"/v3/{domain}/events", params={"ascending": "yes"})
    assert (reply.status_code, reply.json()) == (404, {"message": "Domain not found"})
    # A page token minted for the owner's domain does not open it for someone else.
    page = api.get(f"/v3/{domain}/events", params={"ascending": "yes", "limit": 1}).json()
    reply = other.get(page["paging"]["next"])
    assert reply.status_code == 404

    own = other.get("/v3/mg.globex.test/events", params={"ascending": "yes"}).json()["items"]
    assert {e["recipient"] for e in own} == {"zed@example.org"}
    theirs = api.get(f"/v3/{domain}/events", params={"ascending": "yes"}).json()["items"]
    assert {e["recipient"] for e in theirs} == {"ann@example.org"}


def test_a_name_verified_by_another_account_cannot_be_created(api, other, services,
                                                             domain) -> None:
    """Until verified, a name is nobody's (tests/domains/test_claims.py); once it is,
    other accounts can't add it."""
    with services.db.transaction() as session:  # as PUT …/verify leaves it
        session.execute(update(Domain).where(Domain.name == domain).values(state="active"))
    reply = other.post("/v3/domains", data={"name": domain, "dkim_key_size": "1024"})
    assert (reply.status_code, reply.json()) == (
        400, {"message": f"The domain name {domain} is already taken"})
    reply = other.post("/v4/domains", data={"name": domain.upper() + ".",
                                            "dkim_key_size": "1024"})
    assert reply.status_code == 400
    assert [d["name"] for d in other.get("/v3/domains").json()["items"]] == ["mg.globex.test"]
    owned = api.get(f"/v3/domains/{domain}").json()["domain"]
    assert owned["name"] == domain and owned["state"] == "active"


def test_each_account_deletes_only_its_own(api, other, domain) -> None:
    assert other.delete(f"/v3/domains/{domain}").status_code == 404
    assert api.delete("/v3/domains/mg.globex.test").status_code == 404
    assert other.delete("/v3/domains/mg.globex.test").status_code == 200
    assert api.get(f"/v3/domains/{domain}").status_code == 200
    assert other.get("/v3/domains").json() == {"total_count": 0, "items": []}


# -- wrong keys, many of them ------------------------------------------------------------
WRONG = ("api", "key-" + "0" * 40)


def test_wrong_keys_past_20_a_minute_are_429_and_right_keys_still_work(
        live, clock, api, other, domain) -> None:
    with httpx.Client(base_url=live.base_url, auth=WRONG) as wrong:
        for _ in range(20):
            assert wrong.get("/v3/domains").status_code == 401
        for reply in (wrong.get("/v3/domains"), wrong.post(f"/v3/{domain}/messages", data=SEND)):
            assert (reply.status_code, reply.json()) == (429, {"message": TOO_MANY_FAILURES})
        with ThreadPoolExecutor(8) as pool:  # at once: looked up one by one, all refused
            assert set(pool.map(lambda _: wrong.get("/v3/domains").status_code,
                                range(32))) == {429}

        # From the same address, the right keys still work: one this process has just seen,
        # and one it has never seen (the attacker fails on nobody's behalf).
        assert api.get(f"/v3/domains/{domain}").status_code == 200
        assert other.get("/v3/domains/mg.globex.test").status_code == 200
        # Another address has its own count.
        with httpx.Client(base_url=live.base_url, auth=WRONG,
                          transport=httpx.HTTPTransport(local_address="127.0.0.2")) as elsewhere:
            assert elsewhere.get("/v3/domains").status_code == 401
        # A minute on, the address may be wrong again.
        clock.advance(60)
        assert wrong.get("/v3/domains").status_code == 401
        assert api.get(f"/v3/domains/{domain}").status_code == 200


def test_a_malformed_authorization_header_costs_no_lookup_and_is_not_counted(
        live, account, domain) -> None:
    with httpx.Client(base_url=live.base_url) as client:
        for _ in range(30):
            assert client.get("/v3/domains", headers=basic("admin", "x")).status_code == 401
        assert client.get("/v3/domains", auth=WRONG).status_code == 401


def test_failed_logins_are_remembered_for_a_bounded_number_of_networks() -> None:
    clock = FrozenClock()
    failures = FailedLogins(clock, limit=2, size=3)
    failures.fail("192.0.2.1")
    failures.fail("192.0.2.1")
    assert failures.blocked("192.0.2.1")
    for network in ("192.0.2.2", "192.0.2.3", "192.0.2.4"):
        failures.fail(network)
    assert not failures.blocked("192.0.2.1")  # the least recently failing, forgotten
    assert len(failures._networks) == 3
