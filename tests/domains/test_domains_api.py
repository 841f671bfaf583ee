"""`/v3/domains` and `/v4/domains`: create, list, get and delete, in Mailgun's shapes."""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_der_public_key

from mailhaven.clock import format_rfc2822
from tests.support import Sink, deliver_due

HOSTNAME = "mx.mailhaven.test"  # Settings.hostname in conftest
DOMAIN_KEYS = {"id", "name", "state", "type", "created_at", "smtp_login", "spam_action",
               "require_tls", "skip_verification", "web_prefix", "web_scheme", "wildcard",
               "is_disabled", "use_automatic_sender_security", "message_ttl"}
RECORD_KEYS = {"record_type", "name", "value", "valid", "cached", "is_active"}


def create(api: httpx.Client, name: str, version: str = "v3", **fields: str) -> httpx.Response:
    # 1024-bit keys unless a test asks otherwise: the key size is not what most tests are about
    return api.post(f"/{version}/domains",
                    data={"name": name, "dkim_key_size": "1024", **fields})


def created(reply: httpx.Response) -> dict:
    assert reply.status_code == 200, reply.text
    return reply.json()


def public_key(record: dict) -> RSAPublicKey:
    tags = dict(part.strip().split("=", 1) for part in record["value"].split(";"))
    assert tags["k"] == "rsa"
    key = load_der_public_key(base64.b64decode(tags["p"]))
    assert isinstance(key, RSAPublicKey)
    return key


# -- create -------------------------------------------------------------------------------
@pytest.mark.parametrize("version", ["v3", "v4"])
def test_create_returns_the_domain_and_its_dns_records(api, version) -> None:
    body = created(create(api, "News.Example.COM", version, spam_action="tag",
                          web_prefix="track", wildcard="true"))
    assert body["message"] == "Domain DNS records have been created"
    domain = body["domain"]
    assert set(domain) >= DOMAIN_KEYS
    assert domain["name"] == "news.example.com"
    assert domain["state"] == "unverified"
    assert domain["smtp_login"] == "postmaster@news.example.com"
    assert (domain["spam_action"], domain["web_prefix"], domain["wildcard"]) == (
        "tag", "track", True)
    assert domain["created_at"].endswith("GMT")
    assert {r["record_type"] for r in body["sending_dns_records"]} == {"TXT", "CNAME"}
    assert any(r["name"] == "track.news.example.com" for r in body["sending_dns_records"])


def test_create_accepts_multipart_like_the_sdk_with_files(api) -> None:
    reply = api.post("/v4/domains", files=[("name", (None, "multi.example.com")),
                                           ("dkim_key_size", (None, "1024"))])
    assert created(reply)["domain"]["name"] == "multi.example.com"


def test_get_returns_mailguns_record_shapes(api) -> None:
    domain = "default.example.com"  # created with no key size (the `domain` fixture's is 1024)
    assert api.post("/v3/domains", data={"name": domain}).status_code == 200
    reply = api.get(f"/v3/domains/{domain}")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert set(body) == {"domain", "sending_dns_records", "receiving_dns_records"}
    assert body["domain"]["name"] == domain

    sending = body["sending_dns_records"]
    for record in sending + body["receiving_dns_records"]:
        assert set(record) - {"priority"} == RECORD_KEYS
        assert record["valid"] in ("valid", "unknown")
        assert isinstance(record["cached"], list)
    spf = [r for r in sending if r["record_type"] == "TXT" and r["value"].startswith("v=spf1 ")]
    assert len(spf) == 1 and spf[0]["name"] == domain and spf[0]["value"].endswith("~all")
    assert HOSTNAME in spf[0]["value"]

    (dkim,) = [r for r in sending if "._domainkey." in r["name"]]
    assert dkim["record_type"] == "TXT"
    selector, _, rest = dkim["name"].partition("._domainkey.")
    assert rest == domain and selector
    assert public_key(dkim).key_size == 2048  # RSA-2048 by default

    (cname,) = [r for r in sending if r["record_type"] == "CNAME"]
    assert (cname["name"], cname["value"]) == (f"email.{domain}", HOSTNAME)
    assert all("priority" not in r for r in sending)

    (mx,) = body["receiving_dns_records"]
    assert (mx["record_type"], mx["name"], mx["value"]) == ("MX", domain, HOSTNAME)
    assert mx["priority"] == "10"


def test_the_published_key_is_the_key_mail_is_signed_with(api, services, domain) -> None:
    """What GET says to publish must verify what the worker signs (see test_send_api for a
    full verification); here: the selector in the signature is the published one."""
    sending = api.get(f"/v4/domains/{domain}").json()["sending_dns_records"]
    (dkim,) = [r for r in sending if "._domainkey." in r["name"]]
    reply = api.post(f"/v3/{domain}/messages", data={
        "from": f"a@{domain}", "to": "ann@example.org", "text": "x"})
    assert reply.status_code == 200
    with Sink() as sink:
        deliver_due(services, sink)
    signature = sink.received[0].message["DKIM-Signature"].replace(" ", "").replace("\r\n", "")
    assert f"s={dkim['name'].partition('._domainkey.')[0]};" in signature


def test_dkim_key_size_and_selector_are_honoured(api) -> None:
    body = created(create(api, "small.example.com", dkim_key_size="1024",
                          dkim_selector="s2024"))
    (dkim,) = [r for r in body["sending_dns_records"] if "._domainkey." in r["name"]]
    assert dkim["name"] == "s2024._domainkey.small.example.com"
    assert public_key(dkim).key_size == 1024
    fetched = api.get("/v3/domains/small.example.com").json()
    assert fetched["sending_dns_records"] == body["sending_dns_records"]


INVALID_NAMES = ["", "   ", "nodot", "-lead.example.com", "trail-.example.com",
                 "a..b.com", "has space.com", "under_score.com", "x" * 64 + ".com",
                 ("a" * 60 + ".") * 5 + "com", "exämple.com", "mg.acme.test/evil",
                 ".example.com", "example.com..", "1.2.3.4.", "a\x00b.com"]


def test_invalid_names_are_400(api) -> None:
    wrong = []
    for name in INVALID_NAMES:
        reply = create(api, name)
        if reply.status_code != 400 or not reply.json().get("message"):
            wrong.append((name, reply.status_code, reply.text))
    assert wrong == []
    reply = api.post("/v3/domains", data={})
    assert (reply.status_code, reply.json()) == (
        400, {"message": "Missing mandatory parameter: name"})
    assert api.get("/v3/domains").json()["total_count"] == 1  # only the fixture's


@pytest.mark.parametrize("fields", [
    {"dkim_key_size": "512"}, {"dkim_key_size": "big"}, {"spam_action": "delete"},
    {"dkim_selector": "x" * 64}, {"dkim_selector": "bad selector"}, {"dkim_selector": "a_b"},
    {"web_scheme": "ftp"}, {"web_scheme": "https://evil"}, {"web_prefix": "a.b c"},
    {"web_prefix": "x" * 64}, {"dkim_algorithm": "dsa"},
    {"dkim_algorithm": "ed25519", "dkim_selector": "x" * 61},  # no room for "-ed"
], ids=lambda f: next(iter(f.items()))[0] + "=" + next(iter(f.values()))[:10])
def test_invalid_options_are_400_not_500(api, fields) -> None:
    reply = create(api, "opts.example.com", **fields)
    assert reply.status_code == 400, reply.text
    assert reply.json()["message"]
    assert api.get("/v3/domains/opts.example.com").status_code == 404


def test_a_taken_name_is_400_in_any_spelling(api, domain) -> None:
    for name in (domain, domain.upper(), f"{domain}.", f" {domain} "):
        reply = create(api, name)
        assert reply.status_code == 400, (name, reply.text)
        assert reply.json() == {"message": f"The domain name {domain} is already taken"}
    assert api.get("/v3/domains").json()["total_count"] == 1


def test_concurrent_creates_of_one_name_make_one_domain(live, account) -> None:
    def attempt(_: int) -> int:
        with live.client(account[1]) as client:
            return create(client, "race.example.com", dkim_key_size="2048").status_code

    with ThreadPoolExecutor(6) as pool:
        statuses = sorted(pool.map(attempt, range(6)))
    assert statuses == [200] + [400] * 5
    with live.client(account[1]) as client:
        listed = client.get("/v3/domains", params={"search": "race"}).json()
    assert listed["total_count"] == 1


# -- list ---------------------------------------------------------------------------------
@pytest.mark.parametrize("version", ["v3", "v4"])
def test_list_pages_with_limit_and_skip(api, clock, domain, version) -> None:
    names = [domain]
    for i in range(4):
        clock.advance(1)
        names.append(created(create(api, f"d{i}.example.com"))["domain"]["name"])
    everything = api.get(f"/{version}/domains").json()
    assert set(everything) == {"total_count", "items"}
    assert everything["total_count"] == 5
    assert [d["name"] for d in everything["items"]] == names
    assert all(set(d) >= DOMAIN_KEYS for d in everything["items"])

    page = api.get(f"/{version}/domains", params={"limit": 2, "skip": 1}).json()
    assert page["total_count"] == 5
    assert [d["name"] for d in page["items"]] == names[1:3]
    past_end = api.get(f"/{version}/domains", params={"skip": 10}).json()
    assert past_end == {"total_count": 5, "items": []}
    one = api.get(f"/{version}/domains", params={"limit": 1}).json()  # the SDK's ping()
    assert [d["name"] for d in one["items"]] == [domain]


def test_list_filters_by_search_and_state(api, domain) -> None:
    created(create(api, "shop.example.com"))
    found = api.get("/v4/domains", params={"search": "shop"}).json()
    assert [d["name"] for d in found["items"]] == ["shop.example.com"]
    assert api.get("/v4/domains", params={"search": "%"}).json()["total_count"] == 0
    assert api.get("/v4/domains", params={"state": "active"}).json()["total_count"] == 0
    assert api.get("/v4/domains", params={"state": "unverified"}).json()["total_count"] == 2


def test_bad_list_parameters_are_400_not_500(api) -> None:
    for params in ({"limit": 0}, {"limit": 1001}, {"limit": "ten"}, {"skip": -1},
                   {"skip": "x"}, {"skip": 10**30}, {"limit": 10**30}):
        reply = api.get("/v3/domains", params=params)
        assert reply.status_code == 400, (params, reply.text)
        assert reply.json()["message"]


# -- get and delete -----------------------------------------------------------------------
def test_unknown_domain_is_404(api) -> None:
    for path in ("/v3/domains/nope.example.com", "/v4/domains/nope.example.com"):
        reply = api.get(path)
        assert (reply.status_code, reply.json()) == (404, {"message": "Domain not found"})
    reply = api.delete("/v3/domains/nope.example.com")
    assert (reply.status_code, reply.json()) == (404, {"message": "Domain not found"})


def test_percent_encoded_and_differently_cased_names_in_paths(api, domain) -> None:
    for path in ("/v3/domains/mg%2Eacme%2Etest", "/v4/domains/MG.ACME.TEST",
                 "/v3/domains/mg.acme.test%20"):
        reply = api.get(path)
        assert reply.status_code == 200, (path, reply.text)
        assert reply.json()["domain"]["name"] == domain
    reply = api.delete("/v3/domains/Mg%2Eacme%2ETest")
    assert reply.json() == {"message": "Domain will be deleted in the background"}
    assert api.get(f"/v3/domains/{domain}").status_code == 404


@pytest.mark.parametrize("version", ["v3", "v4"])
def test_delete_then_get_is_404_and_sends_are_refused(api, domain, version) -> None:
    reply = api.delete(f"/{version}/domains/{domain}")
    assert (reply.status_code, reply.json()) == (
        200, {"message": "Domain will be deleted in the background"})
    reply = api.get(f"/v3/domains/{domain}")
    assert (reply.status_code, reply.json()) == (404, {"message": "Domain not found"})
    assert api.get("/v3/domains").json() == {"total_count": 0, "items": []}
    reply = api.post(f"/v3/{domain}/messages", data={
        "from": f"a@{domain}", "to": "ann@example.org", "text": "x"})
    assert (reply.status_code, reply.json()) == (
        404, {"message": f"Domain not found: {domain}"})
    assert api.get(f"/v3/{domain}/events").status_code == 404
    assert api.delete(f"/v3/domains/{domain}").status_code == 404


def test_deleting_a_domain_with_mail_in_flight_and_taking_the_name_again(
        api, services, clock, domain) -> None:
    tomorrow = format_rfc2822(clock.now() + 86400)
    for to in ("ann@example.org", "bob@example.org"):
        reply = api.post(f"/v3/{domain}/messages", data={
            "from": f"a@{domain}", "to": to, "text": "x", "o:deliverytime":
            tomorrow if to.startswith("bob") else ""})
        assert reply.status_code == 200, reply.text
    with Sink() as sink:
        deliver_due(services, sink)
    assert len(sink.received) == 1  # bob's copy is still queued for tomorrow

    assert api.delete(f"/v3/domains/{domain}").status_code == 200
    services.clock.advance(10 * 365 * 86400)
    with Sink() as sink:
        deliver_due(services, sink)
    assert sink.received == []  # a deleted domain sends nothing more

    again = created(create(api, domain))
    assert again["domain"]["name"] == domain
    assert api.get(f"/v3/{domain}/events").json()["items"] == []  # a fresh start


def test_put_updates_only_what_is_given(api, live, services, domain) -> None:
    updated = api.put(f"/v3/domains/{domain}", data={"spam_action": "tag",
                                                     "web_scheme": "https"})
    assert updated.status_code == 200 and updated.json()["message"] == "Domain has been updated"
    got = api.get(f"/v4/domains/{domain}").json()["domain"]
    assert (got["spam_action"], got["web_scheme"], got["web_prefix"]) == ("tag", "https",
                                                                         "email")
    assert api.put(f"/v4/domains/{domain}", data={"spam_action": "delete"}).status_code == 400
    from mailhaven.accounts.service import create_account
    with services.db.transaction() as session:
        other = create_account(session, services.vault, name="O", email="o@o.test")
    with live.client(other.api_key) as intruder:
        assert intruder.put(f"/v3/domains/{domain}", data={"spam_action": "block"}
                            ).status_code == 404
