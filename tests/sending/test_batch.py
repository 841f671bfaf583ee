"""Batch sending: `recipient-variables` turns one request into one personal copy per `to`."""

from __future__ import annotations

import json
from email.utils import getaddresses

import httpx

from tests.support import Received, Sink, deliver_due

FROM = "Acme <news@mg.acme.test>"


def delivered(services) -> dict[str, Received]:  # type: ignore[no-untyped-def]
    with Sink() as sink:
        deliver_due(services, sink)
    copies: dict[str, Received] = {}
    for got in sink.received:
        assert len(got.rcpt_tos) == 1
        assert got.rcpt_tos[0] not in copies, f"two copies for {got.rcpt_tos[0]}"
        copies[got.rcpt_tos[0]] = got
    return copies


def events(api: httpx.Client, domain: str, **filters: str) -> list[dict]:
    reply = api.get(f"/v3/{domain}/events", params={"ascending": "yes", "limit": 300, **filters})
    assert reply.status_code == 200, reply.text
    return reply.json()["items"]


def queued(reply: httpx.Response) -> str:
    assert reply.status_code == 200, reply.text
    assert reply.json()["message"] == "Queued. Thank you."
    return reply.json()["id"]


def test_a_1000_recipient_batch_gives_each_recipient_only_their_own_copy(
        api, services, domain) -> None:
    people = {f"user{i:04d}@example.org": {"name": f"Name {i}", "id": f"ID-{i:04d}"}
              for i in range(1000)}
    message_id = queued(api.post(f"/v3/{domain}/messages", data={
        "from": FROM,
        "to": [f"{v['name']} <{addr}>" for addr, v in people.items()],
        "subject": "Hello %recipient.name%",
        "text": "Dear %recipient.name%, your id is %recipient.id%.",
        "html": "<p>Dear <b>%recipient.name%</b> (%recipient.id%)</p>",
        "recipient-variables": json.dumps(people),
        "o:tag": "batch",
    }))
    copies = delivered(services)
    assert sorted(copies) == sorted(people)
    for n, (address, got) in enumerate(sorted(copies.items())):
        own = people[address]
        head, _, body = got.data.partition(b"\r\n\r\n")
        assert f"\r\nTo: {own['name']} <{address}>\r\n".encode() in head
        assert f"\r\nSubject: Hello {own['name']}\r\n".encode() in head
        assert f"Dear {own['name']}, your id is {own['id']}.".encode() in body
        assert f"<p>Dear <b>{own['name']}</b> ({own['id']})</p>".encode() in body
        assert b"%recipient" not in got.data
        assert got.data.count(b"@example.org") == 1  # no one else's address, anywhere
        if n % 100 == 0:  # the same, read as a mail client would, for a sample
            msg = got.message
            assert getaddresses([msg["To"]]) == [(own["name"], address)]
            assert msg["Cc"] is None
            assert msg["Message-ID"] == message_id
            assert msg["Subject"] == f"Hello {own['name']}"
            assert msg.get_body(("plain",)).get_content().strip() == (
                f"Dear {own['name']}, your id is {own['id']}.")

    accepted = events(api, domain, event="accepted", limit="300")
    assert len(accepted) == 300 and all(e["tags"] == ["batch"] for e in accepted)


def test_anymail_indirection_gives_per_recipient_user_variables(api, services,
                                                                domain) -> None:
    """django-anymail sends `v:k=%recipient.v:k%` for per-recipient metadata (merge_metadata),
    and `h:X=%recipient.h:X%` for per-recipient headers."""
    rv = {
        "ann@example.org": {"v:order": "A-1", "v:segment": "gold", "h:X-Campaign": "ann-c"},
        "bob@example.org": {"v:order": "B-2", "v:segment": "silver", "h:X-Campaign": "bob-c"},
    }
    queued(api.post(f"/v3/{domain}/messages", data={
        "from": FROM, "to": ["Ann <ann@example.org>", "bob@example.org"],
        "subject": "Your order", "text": "Order %recipient.v:order%",
        "v:order": "%recipient.v:order%", "v:segment": "%recipient.v:segment%",
        "v:shared": "same-for-all",
        "h:X-Campaign": "%recipient.h:X-Campaign%",
        "recipient-variables": json.dumps(rv),
    }))
    copies = delivered(services)
    assert sorted(copies) == ["ann@example.org", "bob@example.org"]
    for address, got in copies.items():
        own = rv[address]
        expected = {"order": own["v:order"], "segment": own["v:segment"],
                    "shared": "same-for-all"}
        assert json.loads(got.message["X-Mailgun-Variables"]) == expected
        assert got.message["X-Campaign"] == own["h:X-Campaign"]
        assert got.message.get_content().strip() == f"Order {own['v:order']}"

    found = events(api, domain)
    assert sorted(e["event"] for e in found) == ["accepted"] * 2 + ["delivered"] * 2
    for event in found:
        own = rv[event["recipient"]]
        assert event["user-variables"] == {"order": own["v:order"],
                                           "segment": own["v:segment"],
                                           "shared": "same-for-all"}, event["event"]


def test_recipient_variable_keys_match_addresses_whatever_their_case(api, services,
                                                                     domain) -> None:
    rv = {"Ann@Example.ORG": {"name": "Ann"}, "bob@example.org": {"name": "Bob"}}
    queued(api.post(f"/v3/{domain}/messages", data={
        "from": FROM, "to": "ann@example.org, BOB@EXAMPLE.ORG, carl@example.org",
        "subject": "Hi %recipient.name%!", "text": "x", "recipient-variables": json.dumps(rv),
    }))
    subjects = {addr.lower(): got.message["Subject"]
                for addr, got in delivered(services).items()}
    # A recipient missing from recipient-variables gets the placeholder emptied.
    assert subjects == {"ann@example.org": "Hi Ann!", "bob@example.org": "Hi Bob!",
                        "carl@example.org": "Hi !"}


def test_values_that_are_not_strings_and_values_with_line_breaks(api, services,
                                                                 domain) -> None:
    rv = {"ann@example.org": {"n": 7, "flag": True, "evil": "x\r\nBcc: evil@attacker.test"}}
    queued(api.post(f"/v3/{domain}/messages", data={
        "from": FROM, "to": "ann@example.org", "subject": "%recipient.evil%",
        "text": "n=%recipient.n%", "h:X-N": "%recipient.n%",
        "recipient-variables": json.dumps(rv),
    }))
    got = delivered(services)["ann@example.org"]
    assert got.rcpt_tos == ["ann@example.org"]
    assert got.message["Bcc"] is None
    assert got.message["Subject"] == "x Bcc: evil@attacker.test"
    assert got.message["X-N"] == "7"
    assert got.message.get_content().strip() == "n=7"


def test_without_recipient_variables_everyone_shares_one_to_and_nothing_is_substituted(
        api, services, domain) -> None:
    queued(api.post(f"/v3/{domain}/messages", data={
        "from": FROM, "to": ["ann@example.org", "bob@example.org"],
        "subject": "Hi %recipient.name%", "text": "x",
    }))
    copies = delivered(services)
    assert sorted(copies) == ["ann@example.org", "bob@example.org"]
    for got in copies.values():
        assert sorted(a for _, a in getaddresses([got.message["To"]])) == sorted(copies)
        assert got.message["Subject"] == "Hi %recipient.name%"


def test_batch_cc_and_bcc_each_get_a_copy_that_hides_the_bcc(api, services, domain) -> None:
    queued(api.post(f"/v3/{domain}/messages", data={
        "from": FROM, "to": ["ann@example.org", "bob@example.org"],
        "cc": "carl@example.org", "bcc": "sam@hidden.example",
        "subject": "Hi %recipient.name%", "text": "x",
        "recipient-variables": json.dumps({"ann@example.org": {"name": "Ann"},
                                           "bob@example.org": {"name": "Bob"}}),
    }))
    copies = delivered(services)
    assert sorted(copies) == ["ann@example.org", "bob@example.org", "carl@example.org",
                              "sam@hidden.example"]
    assert copies["ann@example.org"].message["Subject"] == "Hi Ann"
    for got in copies.values():
        assert b"hidden.example" not in got.data


def test_a_batch_copy_s_events_name_only_its_own_recipient(api, services, domain) -> None:
    to = ["ann@example.org", "bob@example.org", "cy@example.org"]
    queued(api.post(f"/v3/{domain}/messages", data={
        "from": f"news@{domain}", "to": to, "text": "hi %recipient.n%",
        "recipient-variables": json.dumps({a: {"n": a[:3]} for a in to})}))
    with Sink() as sink:
        deliver_due(services, sink)
    seen = events(api, domain)
    assert len(seen) == 6
    for event in seen:
        assert event["message"]["headers"]["to"] == event["recipient"]
