"""A list member's address, name and vars are personal data: sealed at rest, in the member's
access export, and gone with their erasure — the membership removed, nothing of it left
readable in any column or file, the other members untouched."""

from __future__ import annotations

import json
from urllib.parse import quote

from tests.exports.archive import read, validate
from tests.support import Sink, deliver_due

LIST = "club@mg.acme.test"
ADDRESS = "vera.kx4member@kx4-member.test"
OTHER = "otto@example.org"
PERSONAL = (ADDRESS, "kx4member", "Vera Kx4Name", "kx4-vars-secret")


def _member_of_a_list(api) -> None:  # type: ignore[no-untyped-def]
    assert api.post("/v3/lists", data={"address": LIST, "description": "Book club"}
                    ).status_code == 200
    for address, name, extra in ((ADDRESS, "Vera Kx4Name", "kx4-vars-secret"),
                                 (OTHER, "Otto", "otto-vars")):
        reply = api.post(f"/v3/lists/{quote(LIST)}/members", data={
            "address": address, "name": name, "vars": json.dumps({"note": extra})})
        assert reply.status_code == 200, reply.text


def _found(dump, value: str) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted({where for form in {value, value.lower(), value.upper()}
                   for where in dump.holding(form.encode())})


def test_a_members_data_is_sealed_and_gone_with_their_erasure(api, services, domain,
                                                              raw_dump) -> None:
    _member_of_a_list(api)
    sent = api.post(f"/v3/{domain}/messages", data={
        "from": f"club@{domain}", "to": LIST, "subject": "Meeting",
        "text": "Note: %recipient.note%"})
    assert sent.status_code == 200, sent.text
    with Sink() as sink:
        deliver_due(services, sink)
    assert sorted(r.rcpt_tos[0] for r in sink.received) == [OTHER, ADDRESS]
    findings = [f"before: {v} in {w}" for v in PERSONAL for w in _found(raw_dump(), v)]

    erased = api.delete(f"/v1/privacy/recipients/{quote(ADDRESS)}")
    assert erased.status_code == 200, erased.text
    gone = api.get(f"/v3/lists/{quote(LIST)}/members/{quote(ADDRESS)}")
    assert gone.status_code == 404
    members = api.get(f"/v3/lists/{quote(LIST)}/members").json()
    assert [m["address"] for m in members["items"]] == [OTHER]
    assert members["total_count"] == 1
    findings += [f"after: {v} in {w}" for v in PERSONAL for w in _found(raw_dump(), v)]
    assert not findings, findings

    # Nothing of theirs can be read, and a new send to the list reaches the others only.
    assert api.post(f"/v3/{domain}/messages", data={
        "from": f"club@{domain}", "to": LIST, "subject": "Again", "text": "x"}
    ).status_code == 200
    with Sink() as sink:
        deliver_due(services, sink)
    assert [r.rcpt_tos for r in sink.received] == [[OTHER]]


def test_the_members_access_export_holds_their_memberships_only(api, services,
                                                                domain) -> None:
    _member_of_a_list(api)
    reply = api.get(f"/v1/privacy/recipients/{quote(ADDRESS, safe='')}")
    assert reply.status_code == 200, reply.text
    export = read(reply.content)
    validate(export.document)
    [membership] = export.document["categories"]["list_members"]
    assert {k: v for k, v in membership.items() if k != "created_at"} == {
        "list": LIST, "address": ADDRESS, "name": "Vera Kx4Name", "subscribed": True,
        "vars": {"note": "kx4-vars-secret"}}
    assert "list_members.csv" in export.members
