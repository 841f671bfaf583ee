"""`/v3/lists…` as Mailgun answers it, from raw urlencoded and multipart requests: lists,
their paging, members one by one and in bulk (JSON, CSV), and one account never seeing or
changing another's lists."""

from __future__ import annotations

import dataclasses
import json
from urllib.parse import quote, urlsplit

import pytest

from tests.support import LiveServer

LIST = "devs@mg.acme.test"


def _list(api, address: str = LIST, **fields: str) -> dict:  # type: ignore[no-untyped-def]
    reply = api.post("/v3/lists", data={"address": address, **fields})
    assert reply.status_code == 200, reply.text
    return reply.json()


def _member(api, address: str, list_address: str = LIST, **fields: str):  # type: ignore[no-untyped-def]
    return api.post(f"/v3/lists/{quote(list_address)}/members",
                    data={"address": address, **fields})


def test_a_list_is_created_read_updated_and_removed(api) -> None:
    created = _list(api, "Developers <Devs@mg.acme.test>", description="The developers",
                    access_level="members", reply_preference="sender")
    assert created["message"] == "Mailing list has been created"
    made = created["list"]
    assert {k: v for k, v in made.items() if k != "created_at"} == {
        "address": LIST, "name": "Developers", "description": "The developers",
        "access_level": "members", "reply_preference": "sender", "members_count": 0}
    assert made["created_at"].endswith(("-0000", "GMT", "UTC", "+0000"))

    assert api.get(f"/v3/lists/{quote(LIST)}").json() == {"list": made}
    assert api.get("/v3/lists/devs%40mg.acme.test").json() == {"list": made}
    updated = api.put(f"/v3/lists/{quote(LIST)}", data={"name": "Devs", "access_level":
                                                        "everyone"}).json()
    assert updated["message"] == "Mailing list has been updated"
    assert (updated["list"]["name"], updated["list"]["access_level"],
            updated["list"]["description"]) == ("Devs", "everyone", "The developers")
    assert api.delete(f"/v3/lists/{quote(LIST)}").json() == {
        "address": LIST, "message": "Mailing list has been removed"}
    gone = api.get(f"/v3/lists/{quote(LIST)}")
    assert (gone.status_code, gone.json()) == (404, {
        "message": f"Mailing list {LIST} not found"})


def test_mailguns_refusals(api) -> None:
    bad_level = api.post("/v3/lists", data={"address": LIST, "access_level": "fake"})
    assert (bad_level.status_code, bad_level.json()["message"]) == (
        400, "Invalid access level 'fake'. It can be any of: 'readonly', 'members', "
             "'everyone'.")
    bad_reply = api.post("/v3/lists", data={"address": LIST, "reply_preference": "nope"})
    assert bad_reply.json()["message"] == (
        "Invalid reply preference 'nope'. It can be any of: 'sender', 'list'")
    assert api.post("/v3/lists", data={"name": "x"}).status_code == 400
    assert api.post("/v3/lists", data={"address": "not an address"}).status_code == 400
    _list(api)
    twice = api.post("/v3/lists", data={"address": LIST})
    assert (twice.status_code, twice.json()) == (400, {"message": "Duplicate object"})
    # The list's mail arrives at its address: it must be on one of the account's domains.
    elsewhere = api.post("/v3/lists", data={"address": "devs@example.com"})
    assert (elsewhere.status_code, elsewhere.json()) == (404, {"message": "Domain not found"})


def test_lists_total_count_and_pages_follow_mailgun(api, live) -> None:
    for n in range(5):
        _list(api, f"list{n}@mg.acme.test")
    listed = api.get("/v3/lists", params={"limit": 2, "skip": 1}).json()
    assert listed["total_count"] == 5
    assert [i["address"] for i in listed["items"]] == ["list1@mg.acme.test",
                                                      "list2@mg.acme.test"]
    assert api.get("/v3/lists", params={"address": "list3@mg.acme.test"}).json()[
        "total_count"] == 1

    first = api.get("/v3/lists/pages", params={"limit": 2}).json()
    assert [i["address"] for i in first["items"]] == ["list0@mg.acme.test",
                                                     "list1@mg.acme.test"]
    assert set(first["paging"]) == {"first", "last", "next", "previous"}
    seen = [i["address"] for i in first["items"]]
    url = first["paging"]["next"]
    while True:  # the links, followed as a client does
        assert url.startswith(live.base_url)
        page = api.get(urlsplit(url).path + "?" + urlsplit(url).query).json()
        if not page["items"]:
            break
        seen += [i["address"] for i in page["items"]]
        url = page["paging"]["next"]
    assert seen == [f"list{n}@mg.acme.test" for n in range(5)]
    last = api.get("/v3/lists/pages", params={"limit": 2, "page": "last"}).json()
    assert [i["address"] for i in last["items"]] == ["list3@mg.acme.test",
                                                    "list4@mg.acme.test"]
    assert api.get("/v3/lists/pages", params={"page": "sideways"}).status_code == 400


@pytest.mark.parametrize("empty", ["null", "[]", " [ ] ", ""])
def test_the_empty_vars_sdks_send_are_no_vars(api, empty) -> None:
    # mailgun-go sends vars=null, mailgun-php vars=[] when the caller gave none.
    _list(api)
    added = _member(api, "alice@example.com", vars=empty)
    assert added.status_code == 200, added.text
    assert added.json()["member"]["vars"] == {}
    bulk = api.post(f"/v3/lists/{quote(LIST)}/members.json", data={"members": json.dumps([
        {"address": "bob@example.com", "vars": None}, {"address": "cy@example.com",
                                                       "vars": []}])})
    assert bulk.status_code == 200, bulk.text
    listed = api.get(f"/v3/lists/{quote(LIST)}/members").json()["items"]
    assert [(m["address"], m["vars"]) for m in listed] == [
        ("alice@example.com", {}), ("bob@example.com", {}), ("cy@example.com", {})]
    assert _member(api, "dee@example.com", vars="[1]").status_code == 400
    assert _member(api, "dee@example.com", vars="nonsense").status_code == 400


def test_members_one_by_one(api) -> None:
    _list(api)
    added = _member(api, "Alice <alice@example.com>", vars=json.dumps({"age": 27}))
    assert added.status_code == 200, added.text
    assert added.json() == {"member": {"address": "alice@example.com", "name": "Alice",
                                       "subscribed": True, "vars": {"age": 27}},
                            "message": "Mailing list member has been created"}
    again = _member(api, "alice@example.com")
    assert (again.status_code, again.json()) == (
        400, {"message": "Address already exists 'alice@example.com'"})
    upserted = _member(api, "alice@example.com", subscribed="no", upsert="yes").json()
    assert upserted["member"] == {"address": "alice@example.com", "name": "Alice",
                                  "subscribed": False, "vars": {"age": 27}}
    one = api.get(f"/v3/lists/{quote(LIST)}/members/{quote('ALICE@example.com')}")
    assert one.json() == {"member": upserted["member"]}

    changed = api.put(f"/v3/lists/{quote(LIST)}/members/alice%40example.com",
                      files={"name": (None, "Alice A."), "subscribed": (None, "yes"),
                             "vars": (None, '{"age": 28}')}).json()  # multipart
    assert changed == {"member": {"address": "alice@example.com", "name": "Alice A.",
                                  "subscribed": True, "vars": {"age": 28}},
                       "message": "Mailing list member has been updated"}
    assert _member(api, "bob@example.com", vars="[1]").status_code == 400
    assert _member(api, "bob@example.com", subscribed="false").status_code == 200
    listed = api.get(f"/v3/lists/{quote(LIST)}/members").json()
    assert listed["total_count"] == 2
    assert [m["address"] for m in listed["items"]] == ["alice@example.com", "bob@example.com"]
    assert api.get(f"/v3/lists/{quote(LIST)}/members", params={"subscribed": "no"}).json()[
        "items"] == [{"address": "bob@example.com", "name": "", "subscribed": False,
                      "vars": {}}]
    assert api.get(f"/v3/lists/{quote(LIST)}").json()["list"]["members_count"] == 2
    assert api.delete(f"/v3/lists/{quote(LIST)}/members/bob%40example.com").json() == {
        "member": {"address": "bob@example.com"},
        "message": "Mailing list member has been deleted"}
    missing = api.get(f"/v3/lists/{quote(LIST)}/members/bob%40example.com")
    assert (missing.status_code, missing.json()) == (
        404, {"message": f"Member bob@example.com of mailing list {LIST} not found"})
    assert _member(api, "x@example.com", "nope@mg.acme.test").status_code == 404


def test_members_json_takes_up_to_a_thousand_and_upserts(api) -> None:
    _list(api)
    url = f"/v3/lists/{quote(LIST)}/members.json"
    body = api.post(url, data={"members": json.dumps(
        ["a0@example.com", "Bee <b0@example.com>",
         {"address": "c0@example.com", "name": "Cee", "vars": {"n": 1},
          "subscribed": False}])})
    assert body.status_code == 200, body.text
    assert body.json()["message"] == "Mailing list has been updated"
    assert body.json()["list"]["members_count"] == 3
    # Without upsert an existing member stays as it is; with it, it is updated.
    api.post(url, data={"members": json.dumps([{"address": "c0@example.com", "name": "X"}])})
    assert api.get(f"{url[:-5]}/c0%40example.com").json()["member"]["name"] == "Cee"
    api.post(url, data={"members": json.dumps([{"address": "c0@example.com", "name": "X"}]),
                        "upsert": "true"})
    assert api.get(f"{url[:-5]}/c0%40example.com").json()["member"]["name"] == "X"

    thousand = [f"m{n}@example.com" for n in range(1000)]
    assert api.post(url, data={"members": json.dumps(thousand)}).json()["list"][
        "members_count"] == 1003
    over = api.post(url, data={"members": json.dumps(thousand + ["one.more@example.com"])})
    assert over.status_code == 400
    assert api.post(url, data={"members": "{not json"}).status_code == 400
    assert api.post(url, data={"members": json.dumps([{"name": "no address"}])}
                    ).status_code == 400
    missing = api.post("/v3/lists/nope%40mg.acme.test/members.json",
                       data={"members": "[]"})
    assert (missing.status_code, missing.json()) == (
        404, {"message": "Mailing list 'nope@mg.acme.test' not found"})


def test_members_csv_import(api) -> None:
    _list(api)
    csv = (b"address,name,vars\nann@example.com,Ann,\"{\"\"city\"\": \"\"Oslo\"\"}\"\n"
           b"bo@example.com,Bo,\n")
    reply = api.post(f"/v3/lists/{quote(LIST)}/members.csv",
                     files={"members": ("members.csv", csv, "text/csv")},
                     data={"subscribed": "yes"})
    assert reply.status_code == 200, reply.text
    assert reply.json()["list"]["members_count"] == 2
    ann = api.get(f"/v3/lists/{quote(LIST)}/members/ann%40example.com").json()["member"]
    assert ann == {"address": "ann@example.com", "name": "Ann", "subscribed": True,
                   "vars": {"city": "Oslo"}}
    plain = api.post(f"/v3/lists/{quote(LIST)}/members.csv",
                     files={"file": ("m.csv", b"cy@example.com\ndee@example.com\n",
                                     "text/csv")})
    assert plain.json()["list"]["members_count"] == 4
    too_many = "".join(f"x{n}@example.com\n" for n in range(1001)).encode()
    assert api.post(f"/v3/lists/{quote(LIST)}/members.csv",
                    files={"members": ("m.csv", too_many, "text/csv")}).status_code == 400


def test_member_pages_follow_the_links(api) -> None:
    _list(api)
    api.post(f"/v3/lists/{quote(LIST)}/members.json",
             data={"members": json.dumps([f"p{n}@example.com" for n in range(5)])})
    url = f"/v3/lists/{quote(LIST)}/members/pages?limit=2"
    seen: list[str] = []
    for _ in range(5):
        page = api.get(url).json()
        if not page["items"]:
            break
        seen += [m["address"] for m in page["items"]]
        parts = urlsplit(page["paging"]["next"])
        url = f"{parts.path}?{parts.query}"
    assert seen == [f"p{n}@example.com" for n in range(5)]
    last = api.get(f"/v3/lists/{quote(LIST)}/members/pages",
                   params={"page": "last", "limit": 2}).json()
    assert [m["address"] for m in last["items"]] == ["p3@example.com", "p4@example.com"]
    parts = urlsplit(last["paging"]["previous"])
    before = api.get(f"{parts.path}?{parts.query}").json()
    assert [m["address"] for m in before["items"]] == ["p1@example.com", "p2@example.com"]


def test_an_upsert_with_an_empty_name_and_vars_keeps_them(api) -> None:
    # mailgun-go's CreateMember(merge=true) sends name="" and vars=null whatever it was given.
    _list(api)
    _member(api, "Alice <alice@example.com>", vars=json.dumps({"age": 27}))
    upserted = _member(api, "alice@example.com", name="", vars="null", subscribed="no",
                       upsert="yes")
    assert upserted.status_code == 200, upserted.text
    expected = {"address": "alice@example.com", "name": "Alice", "subscribed": False,
                "vars": {"age": 27}}
    assert upserted.json()["member"] == expected
    one = api.get(f"/v3/lists/{quote(LIST)}/members/{quote('alice@example.com')}")
    assert one.json() == {"member": expected}
    renamed = _member(api, "alice@example.com", name="Alice B.", vars="{}", upsert="yes")
    assert renamed.json()["member"]["name"] == "Alice B."
    assert renamed.json()["member"]["vars"] == {}  # {} given: the vars are cleared


def test_a_members_limit_above_the_most_is_the_most(api) -> None:
    _list(api)
    api.post(f"/v3/lists/{quote(LIST)}/members.json",
             data={"members": json.dumps([f"m{n}@example.com" for n in range(101)])})
    listed = api.get(f"/v3/lists/{quote(LIST)}/members", params={"limit": 1000})
    assert listed.status_code == 200, listed.text
    assert (listed.json()["total_count"], len(listed.json()["items"])) == (101, 100)
    assert api.get(f"/v3/lists/{quote(LIST)}/members",
                   params={"limit": 0}).status_code == 400


def test_a_pivot_deleted_meanwhile_does_not_restart_the_pages(api) -> None:
    _list(api)
    api.post(f"/v3/lists/{quote(LIST)}/members.json",
             data={"members": json.dumps([f"p{n}@example.com" for n in range(5)])})
    first = api.get(f"/v3/lists/{quote(LIST)}/members/pages", params={"limit": 2}).json()
    assert [m["address"] for m in first["items"]] == ["p0@example.com", "p1@example.com"]
    # The caller deletes a member as it goes: the pivot of the next link.
    api.delete(f"/v3/lists/{quote(LIST)}/members/{quote('p1@example.com')}")
    seen: list[str] = []
    url = first["paging"]["next"]
    for _ in range(5):  # mailgun-go's iterator: until a page is empty
        parts = urlsplit(url)
        page = api.get(f"{parts.path}?{parts.query}").json()
        if not page["items"]:
            break
        seen += [m["address"] for m in page["items"]]
        url = page["paging"]["next"]
    assert seen == ["p2@example.com", "p3@example.com", "p4@example.com"]
    # A pivot that was never a member (no position): an empty page, not the first again.
    gone = api.get(f"/v3/lists/{quote(LIST)}/members/pages",
                   params={"page": "next", "address": "nobody@example.com"}).json()
    assert gone["items"] == []


def test_paging_links_point_at_the_public_url_when_the_operator_set_one(
        api, services, account) -> None:
    _list(api)
    _member(api, "alice@example.com")
    proxied = dataclasses.replace(services, settings=services.settings.with_(
        public_url="https://api.mailhaven.example/"))
    with LiveServer(proxied) as behind_proxy, behind_proxy.client(account[1]) as client:
        for path in ("/v3/lists/pages", f"/v3/lists/{quote(LIST)}/members/pages"):
            paging = client.get(path).json()["paging"]
            assert {urlsplit(link)[:2] for link in paging.values()} == {
                ("https", "api.mailhaven.example")}, paging
    here = api.get("/v3/lists/pages").json()["paging"]  # none set: where the request came
    assert {urlsplit(link).netloc for link in here.values()} == {
        urlsplit(str(api.base_url)).netloc}


@pytest.mark.parametrize("method,path", [
    ("GET", ""), ("PUT", ""), ("DELETE", ""), ("GET", "/members"),
    ("POST", "/members"), ("GET", "/members/alice%40example.com"),
    ("DELETE", "/members/alice%40example.com"), ("POST", "/members.json")])
def test_another_account_can_neither_see_nor_change_a_list(api, second_api, method,
                                                           path) -> None:
    _list(api)
    assert _member(api, "alice@example.com").status_code == 200
    reply = second_api.request(method, f"/v3/lists/{quote(LIST)}{path}",
                               data={"address": "eve@example.com", "members": "[]"})
    assert reply.status_code == 404
    assert second_api.get("/v3/lists").json() == {"total_count": 0, "items": []}
    assert second_api.post("/v3/lists", data={"address": "x@mg.acme.test"}).status_code == 404
    assert api.get(f"/v3/lists/{quote(LIST)}/members").json()["total_count"] == 1
    assert api.get(f"/v3/lists/{quote(LIST)}").status_code == 200
