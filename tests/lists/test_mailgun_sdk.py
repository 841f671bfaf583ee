"""Mailing lists through Mailgun's official Python SDK (`mailgun==1.10.0`), each call made
as its mailing_lists_examples.py makes it, against the live server (the `client` fixture)."""

from __future__ import annotations

from tests.test_mailgun_sdk import ok

LIST = "devs@mg.acme.test"
BOB = "bob@example.com"


def test_the_sdks_lists_and_members_calls(client, domain) -> None:
    created = ok(client.lists.create(domain=domain, data={
        "address": LIST, "description": "Mailgun developers list"}))
    assert created["message"] == "Mailing list has been created"
    assert ok(client.lists.get(domain=domain, address=LIST))["list"]["description"] == \
        "Mailgun developers list"
    assert ok(client.lists.put(domain=domain, address=LIST, data={
        "description": "Mailgun developers list 121212"}))["list"]["description"] == \
        "Mailgun developers list 121212"
    assert [i["address"] for i in ok(client.lists_pages.get(domain=domain))["items"]] == [LIST]

    member = ok(client.lists_members.create(domain=domain, address=LIST, data={
        "subscribed": True, "address": BOB, "name": "Bob Bar", "description": "Developer",
        "vars": '{"age": 26}'}))
    assert member["member"] == {"address": BOB, "name": "Bob Bar", "subscribed": True,
                                "vars": {"age": 26}}
    bulk = ok(client.lists_members.create(domain=domain, address=LIST, multiple=True, data={
        "upsert": True,
        "members": '[{"address": "Alice <alice@example.com>", "vars": {"age": 26}},'
                   '{"name": "Bob1", "address": "bob2@example.com", "vars": {"age": 34}}]'}))
    assert bulk["list"]["members_count"] == 3
    listed = ok(client.lists_members.get(domain=domain, address=LIST))
    assert [m["address"] for m in listed["items"]] == [BOB, "alice@example.com",
                                                      "bob2@example.com"]
    paged = ok(client.lists_members_pages.get(domain=domain, address=LIST))
    assert len(paged["items"]) == 3 and set(paged["paging"]) == {
        "first", "last", "next", "previous"}
    one = ok(client.lists_members.get(domain=domain, address=LIST, member_address=BOB))
    assert one["member"]["name"] == "Bob Bar"
    changed = ok(client.lists_members.put(domain=domain, address=LIST, member_address=BOB,
                                          data={"subscribed": True, "address": BOB,
                                                "name": "Bob Bar 2", "vars": '{"age": 28}'}))
    assert changed["member"]["vars"] == {"age": 28}
    assert ok(client.lists_members.delete(domain=domain, address=LIST,
                                          member_address=BOB))["message"] == \
        "Mailing list member has been deleted"
    assert ok(client.lists.delete(domain=domain, address=LIST))["message"] == \
        "Mailing list has been removed"
    assert client.lists.get(domain=domain, address=LIST).status_code == 404
