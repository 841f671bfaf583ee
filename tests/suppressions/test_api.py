"""Suppression lists over HTTP, shaped as Mailgun clients send them."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest


def test_add_get_list_and_delete_a_bounce(api, domain) -> None:
    added = api.post(f"/v3/{domain}/bounces", data={
        "address": "Ann@Example.org", "code": "550", "error": "No such mailbox"})
    assert added.json() == {"message": "Address has been added to the bounces table",
                            "address": "Ann@Example.org"}
    got = api.get(f"/v3/{domain}/bounces/ann%40example.org").json()
    assert got["address"] == "Ann@Example.org" and got["code"] == "550"
    assert got["error"] == "No such mailbox" and got["created_at"].endswith("GMT")
    listed = api.get(f"/v3/{domain}/bounces").json()
    assert [i["address"] for i in listed["items"]] == ["Ann@Example.org"]
    assert set(listed["paging"]) == {"first", "last", "next", "previous"}
    removed = api.delete(f"/v3/{domain}/bounces/ann@example.org").json()
    assert removed == {"message": "Bounced address has been removed",
                       "address": "ann@example.org"}
    missing = api.get(f"/v3/{domain}/bounces/ann@example.org")
    assert missing.status_code == 404
    assert missing.json() == {"message": "Address not found in bounces table"}


def test_unsubscribes_are_tag_scoped(api, domain) -> None:
    api.post(f"/v3/{domain}/unsubscribes", data={"address": "bob@example.org", "tag": "news"})
    api.post(f"/v3/{domain}/unsubscribes", data={"address": "bob@example.org",
                                                   "tag": "promo"})
    got = api.get(f"/v3/{domain}/unsubscribes/bob@example.org").json()
    assert got["tags"] == ["news", "promo"]
    api.delete(f"/v3/{domain}/unsubscribes/bob@example.org", params={"tag": "news"})
    assert api.get(f"/v3/{domain}/unsubscribes/bob@example.org").json()["tags"] == ["promo"]
    api.post(f"/v3/{domain}/unsubscribes", data={"address": "cy@example.org"})
    assert api.get(f"/v3/{domain}/unsubscribes/cy@example.org").json()["tags"] == ["*"]


def test_a_json_batch_and_its_limit(api, domain) -> None:
    batch = [{"address": f"u{i}@example.org", "created_at": "Thu, 13 Oct 2011 18:02:00 UTC"}
             for i in range(5)]
    added = api.post(f"/v3/{domain}/complaints", content=json.dumps(batch),
                     headers={"Content-Type": "application/json"})
    assert added.json() == {"message": "5 complaint addresses have been added to the "
                                       "complaints table"}
    too_many = [{"address": f"u{i}@example.org"} for i in range(1001)]
    refused = api.post(f"/v3/{domain}/bounces", content=json.dumps(too_many),
                       headers={"Content-Type": "application/json"})
    assert refused.status_code == 400
    assert refused.json() == {"message": "Batch size should be less than 1000"}


def test_csv_import_and_clear(api, domain) -> None:
    csv = b"address,code,error\nann@example.org,550,gone\nbob@example.org,551,moved\n"
    imported = api.post(f"/v3/{domain}/bounces/import",
                        files={"file": ("b.csv", csv, "text/csv")})
    assert imported.status_code == 202
    items = api.get(f"/v3/{domain}/bounces").json()["items"]
    assert {(i["address"], i["code"]) for i in items} == {("ann@example.org", "550"),
                                                          ("bob@example.org", "551")}
    cleared = api.delete(f"/v3/{domain}/bounces").json()
    assert cleared == {"message": "Bounced addresses for this domain have been removed"}
    assert api.get(f"/v3/{domain}/bounces").json()["items"] == []


@pytest.mark.parametrize("kind", ["bounces", "unsubscribes", "complaints", "whitelists"])
def test_a_csv_import_with_a_field_over_128_kib_is_400_and_adds_nothing(api, domain,
                                                                        kind) -> None:
    """Python's csv module refuses a field over 128 KiB: the file's fault, not ours."""
    csv = (b"address,error\nann@example.org,gone\nbob@example.org,"
           + b"x" * (128 * 1024 + 1) + b"\n")
    reply = api.post(f"/v3/{domain}/{kind}/import", files={"file": ("b.csv", csv, "text/csv")})
    assert reply.status_code == 400, reply.text
    assert reply.json() == {
        "message": "Invalid CSV file: field larger than field limit (131072)"}
    assert api.get(f"/v3/{domain}/{kind}").json()["items"] == []


def test_paging_follows_next_links_to_the_end(api, domain) -> None:
    batch = [{"address": f"p{i:02d}@example.org"} for i in range(23)]
    api.post(f"/v3/{domain}/bounces", content=json.dumps(batch),
             headers={"Content-Type": "application/json"})
    url, seen = f"/v3/{domain}/bounces?limit=10", []
    while True:
        body = api.get(url).json()
        if not body["items"]:
            break
        seen += [i["address"] for i in body["items"]]
        url = body["paging"]["next"]
    assert sorted(seen) == sorted(b["address"] for b in batch) and len(seen) == 23
    last = api.get(api.get(f"/v3/{domain}/bounces?limit=10").json()["paging"]["last"]).json()
    assert [i["address"] for i in last["items"]] == seen[-10:]


def test_allowlist_takes_addresses_and_domains(api, domain) -> None:
    one = api.post(f"/v3/{domain}/whitelists", data={"address": "vip@example.org"}).json()
    assert one == {"message": "Address/Domain has been added to the allowlists table",
                   "type": "address", "value": "vip@example.org"}
    two = api.post(f"/v3/{domain}/whitelists", data={"domain": "partner.example"}).json()
    assert two["type"] == "domain"
    items = api.get(f"/v3/{domain}/whitelists").json()["items"]
    assert {(i["type"], i["value"]) for i in items} == {("address", "vip@example.org"),
                                                        ("domain", "partner.example")}
    assert "createdAt" in items[0]


@pytest.mark.parametrize("fields", [{}, {"address": "not an address"}])
def test_bad_records_are_400(api, domain, fields) -> None:
    assert api.post(f"/v3/{domain}/bounces", data=fields).status_code == 400


def test_another_account_cannot_read_the_lists(api, live, services, domain) -> None:
    from mailhaven.accounts.service import create_account
    api.post(f"/v3/{domain}/bounces", data={"address": "ann@example.org"})
    with services.db.transaction() as session:
        other = create_account(session, services.vault, name="O", email="o@o.test")
    with live.client(other.api_key) as intruder:
        assert intruder.get(f"/v3/{domain}/bounces").status_code == 404
        assert intruder.delete(f"/v3/{domain}/bounces").status_code == 404


def test_concurrent_adds_of_one_address_all_succeed_and_keep_one_record(api, live, account,
                                                                        domain) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def add(i: int) -> int:
        with live.client(account[1]) as client:
            return client.post(f"/v3/{domain}/bounces", data={
                "address": "race@example.org", "code": str(550 + i % 2)}).status_code

    with ThreadPoolExecutor(6) as pool:
        assert set(pool.map(add, range(12))) == {200}
    items = api.get(f"/v3/{domain}/bounces").json()["items"]
    assert [i["address"] for i in items] == ["race@example.org"]


def test_malformed_batch_fields_are_400(api, domain) -> None:
    for kind, record in (("unsubscribes", {"address": "a@example.org", "tags": 5}),
                         ("bounces", {"address": "a@example.org", "code": 12345678901})):
        reply = api.post(f"/v3/{domain}/{kind}", content=json.dumps([record]),
                         headers={"Content-Type": "application/json"})
        assert reply.status_code == 400, reply.text
    gone = api.get(f"/v3/{domain}/bounces", params={"page": "next", "address": "x@y.org"})
    assert gone.status_code == 200 and gone.json()["items"] == []


def test_concurrent_tag_changes_to_one_unsubscribe_all_land(api, live, account,
                                                            domain) -> None:
    """Each request reads the record's tags and writes them back: without a row lock, two
    at once on PostgreSQL would keep only one of the two new tags."""
    from concurrent.futures import ThreadPoolExecutor

    api.post(f"/v3/{domain}/unsubscribes", data={"address": "race@example.org",
                                                   "tag": "first"})

    def add(i: int) -> int:
        with live.client(account[1]) as client:
            return client.post(f"/v3/{domain}/unsubscribes", content=urlencode(
                {"address": "Race@Example.org", "tag": f"t{i:02d}"}),
                headers={"Content-Type": "application/x-www-form-urlencoded"}).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(add, range(16))) == {200}
    got = api.get(f"/v3/{domain}/unsubscribes/race%40example.org").json()
    assert got["tags"] == sorted(["first", *(f"t{i:02d}" for i in range(16))])

    def untag(i: int) -> int:
        with live.client(account[1]) as client:
            return client.delete(f"/v3/{domain}/unsubscribes/race%40example.org",
                                 params={"tag": f"t{i:02d}"}).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(untag, range(16))) == {200}
    assert api.get(f"/v3/{domain}/unsubscribes/race%40example.org").json()["tags"] == [
        "first"]


def _batch(api, domain: str, kind: str, values: list[str], field: str = "address"):  # type: ignore[no-untyped-def]
    reply = api.post(f"/v3/{domain}/{kind}", content=json.dumps([{field: v} for v in values]),
                     headers={"Content-Type": "application/json"})
    assert reply.status_code == 200, reply.text


def _walk(api, url: str) -> list[list[str]]:  # type: ignore[no-untyped-def]
    pages = []
    while True:
        body = api.get(url).json()
        pages.append([i.get("address") or i.get("value") for i in body["items"]])
        if not body["items"]:
            return pages
        url = body["paging"]["next"]


def test_term_finds_addresses_by_prefix_and_pages_on_with_it(api, domain) -> None:
    _batch(api, domain, "bounces", ["ann@example.org", "bob@example.org", "Andy@Other.org",
                                    "anna@example.org", "carl@example.org"])
    found = api.get(f"/v3/{domain}/bounces", params={"term": "AN"}).json()
    assert [i["address"] for i in found["items"]] == [
        "ann@example.org", "Andy@Other.org", "anna@example.org"]
    assert "term=AN" in found["paging"]["next"] and "term=AN" in found["paging"]["last"]
    assert _walk(api, f"/v3/{domain}/bounces?term=an&limit=2") == [
        ["ann@example.org", "Andy@Other.org"], ["anna@example.org"], []]
    last = api.get(f"/v3/{domain}/bounces?term=an&limit=2&page=last").json()
    assert [i["address"] for i in last["items"]] == ["Andy@Other.org", "anna@example.org"]
    before = api.get(last["paging"]["previous"]).json()
    assert [i["address"] for i in before["items"]] == ["ann@example.org"]
    assert api.get(f"/v3/{domain}/bounces", params={"term": "zed"}).json()["items"] == []


def test_a_whole_address_as_term_is_found_through_its_index(api, domain) -> None:
    _batch(api, domain, "complaints", ["ann@example.org", "anna@example.org"])
    found = api.get(f"/v3/{domain}/complaints?term=Ann%40Example.org").json()
    assert [i["address"] for i in found["items"]] == ["ann@example.org"]
    assert api.get(found["paging"]["next"]).json()["items"] == []
    missing = api.get(f"/v3/{domain}/complaints", params={"term": "nobody@example.org"})
    assert missing.status_code == 200 and missing.json()["items"] == []


def test_term_matches_allowlisted_domains_too(api, domain) -> None:
    api.post(f"/v3/{domain}/whitelists", data={"domain": "partner.example"})
    api.post(f"/v3/{domain}/whitelists", data={"address": "pat@example.org"})
    api.post(f"/v3/{domain}/whitelists", data={"domain": "other.example"})
    found = api.get(f"/v3/{domain}/whitelists", params={"term": "pa"}).json()["items"]
    assert [(i["type"], i["value"]) for i in found] == [("domain", "partner.example"),
                                                         ("address", "pat@example.org")]


def test_a_term_search_opens_a_bounded_number_of_records_per_page(api, domain,
                                                                  monkeypatch) -> None:
    """Past the budget a page is short, even empty, and `next` goes on from where the scan
    stopped, so following it still finds every match."""
    from mailhaven.suppressions import service
    monkeypatch.setattr(service, "SCAN_LIMIT", 3)
    _batch(api, domain, "bounces", ["x1@example.org", "x2@example.org", "x3@example.org",
                                    "m1@example.org", "x4@example.org", "m2@example.org"])
    first = api.get(f"/v3/{domain}/bounces", params={"term": "m", "limit": 10}).json()
    assert first["items"] == [] and "address=x3%40example.org" in first["paging"]["next"]
    assert _walk(api, first["paging"]["next"]) == [["m1@example.org", "m2@example.org"], []]
