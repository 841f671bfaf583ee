"""A send to a mailing list's address: each subscribed member gets a copy of their own, To
the list, with their vars as `%recipient.*%`, and a `%mailing_list_unsubscribe_url%` that
unsubscribes them from the list (and from nothing else)."""

from __future__ import annotations

import json
import re
from urllib.parse import quote, urlsplit

from tests.support import Sink, deliver_due

LIST = "news@mg.acme.test"


def _setup(api) -> None:  # type: ignore[no-untyped-def]
    assert api.post("/v3/lists", data={"address": LIST, "name": "News"}).status_code == 200
    reply = api.post(f"/v3/lists/{quote(LIST)}/members.json", data={"members": json.dumps([
        {"address": "ann@example.org", "name": "Ann Lee", "vars": {"first": "Ann", "n": 1}},
        {"address": "bob@example.org", "name": "Bob", "vars": {"first": "Bob", "n": 2}},
        {"address": "cy@example.org", "vars": {"first": "Cy"}, "subscribed": False}])})
    assert reply.status_code == 200, reply.text


def _send(api, domain: str, **extra: str) -> None:  # type: ignore[no-untyped-def]
    reply = api.post(f"/v3/{domain}/messages", data={
        "from": f"Acme <news@{domain}>", "to": LIST,
        "subject": "Hello %recipient.first%",
        "text": "Dear %recipient_name% (#%recipient.n%), leave: %mailing_list_unsubscribe_url%",
        **extra})
    assert reply.status_code == 200, reply.text


def test_a_send_to_a_list_reaches_each_subscribed_member_with_their_vars(
        api, services, domain) -> None:
    _setup(api)
    _send(api, domain, html="<p>Hi %recipient.first%</p>")
    with Sink() as sink:
        deliver_due(services, sink)
    copies = {r.rcpt_tos[0]: r.message for r in sink.received}
    assert sorted(copies) == ["ann@example.org", "bob@example.org"]  # Cy unsubscribed
    ann, bob = copies["ann@example.org"], copies["bob@example.org"]
    assert ann["To"] == LIST and bob["To"] == LIST  # addressed as the list
    assert (ann["Subject"], bob["Subject"]) == ("Hello Ann", "Hello Bob")
    text = ann.get_body(preferencelist=("plain",)).get_content()
    assert "Dear Ann Lee (#1), leave: http" in text
    assert "Hi Bob" in bob.get_body(preferencelist=("html",)).get_content()
    assert "bob@example.org" not in ann.as_string()  # nobody sees the other members

    events = api.get(f"/v3/{domain}/events", params={"event": "delivered"}).json()["items"]
    assert sorted(e["recipient"] for e in events) == ["ann@example.org", "bob@example.org"]


def test_the_unsubscribe_link_unsubscribes_the_member_from_the_list(api, services,
                                                                     domain) -> None:
    _setup(api)
    _send(api, domain)
    with Sink() as sink:
        deliver_due(services, sink)
    [ann] = [r.message for r in sink.received if r.rcpt_tos == ["ann@example.org"]]
    link = re.search(r"leave: (\S+)", ann.get_body(preferencelist=("plain",)).get_content())
    assert link is not None
    path = urlsplit(link.group(1)).path
    page = api.get(path)  # a link scanner's GET changes nothing
    assert page.status_code == 200 and "<form" in page.text
    member = f"/v3/lists/{quote(LIST)}/members/ann%40example.org"
    assert api.get(member).json()["member"]["subscribed"] is True
    assert api.post(path).status_code == 200
    assert api.get(member).json()["member"]["subscribed"] is False
    assert api.post(path[:-3] + "000").status_code == 404  # a forged link does nothing

    _send(api, domain)
    with Sink() as sink:
        deliver_due(services, sink)
    assert [r.rcpt_tos for r in sink.received] == [["bob@example.org"]]
    # Not a domain-wide unsubscribe: Ann still gets the domain's other mail.
    assert api.get(f"/v3/{domain}/unsubscribes/ann%40example.org").status_code == 404


def test_list_members_and_other_recipients_together_and_an_empty_list(api, services,
                                                                      domain) -> None:
    _setup(api)
    reply = api.post(f"/v3/{domain}/messages", data={
        "from": f"news@{domain}", "to": [LIST, "dan@example.org", "ann@example.org"],
        "subject": "Hi", "text": "Hello"})
    assert reply.status_code == 200, reply.text
    assert api.post("/v3/lists", data={"address": "empty@mg.acme.test"}).status_code == 200
    empty = api.post(f"/v3/{domain}/messages", data={
        "from": f"news@{domain}", "to": "empty@mg.acme.test", "subject": "Hi",
        "text": "Hello"})
    assert empty.status_code == 200, empty.text
    with Sink() as sink:
        deliver_due(services, sink)
    # Each address once: Ann both named and a member gets one copy; the list itself none.
    assert sorted(r.rcpt_tos[0] for r in sink.received) == [
        "ann@example.org", "bob@example.org", "dan@example.org"]


def test_another_accounts_list_address_is_just_an_address(api, second_api, services,
                                                          domain) -> None:
    _setup(api)
    reply = second_api.post("/v3/mg.bee.test/messages", data={
        "from": "x@mg.bee.test", "to": LIST, "subject": "Hi", "text": "Hello"})
    assert reply.status_code == 200, reply.text
    with Sink() as sink:
        deliver_due(services, sink)
    assert [r.rcpt_tos for r in sink.received] == [[LIST]]
