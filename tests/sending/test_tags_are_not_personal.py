"""Tags are kept in clear (events, stats, suppressions) where the vault can't erase them: a
tag that carries an address is refused (issue 11: the vault is the only door)."""

from __future__ import annotations

from mailhaven.sending.request import TAG_HOLDS_ADDRESS
from mailhaven.suppressions.service import TAG_HOLDS_ADDRESS as UNSUBSCRIBE_TAG_HOLDS_ADDRESS


def test_a_tag_with_an_address_is_refused_and_not_kept(api, domain) -> None:
    reply = api.post(f"/v3/{domain}/messages", data={
        "from": f"news@{domain}", "to": "zelda@example.com", "subject": "Hi", "text": "t",
        "o:tag": ["weekly", "customer:zelda@example.com"]})
    assert (reply.status_code, reply.json()) == (400, {"message": TAG_HOLDS_ADDRESS})
    events = api.get(f"/v3/{domain}/events").json()["items"]
    assert "zelda@example.com" not in str([e.get("tags") for e in events])
    assert api.get(f"/v3/{domain}/tags").json()["items"] == []
    # A tag without one goes as before.
    reply = api.post(f"/v3/{domain}/messages", data={
        "from": f"news@{domain}", "to": "zelda@example.com", "subject": "Hi", "text": "t",
        "o:tag": ["weekly", "customer:42"]})
    assert reply.status_code == 200, reply.text


def test_an_unsubscribe_tag_with_an_address_is_refused(api, domain) -> None:
    reply = api.post(f"/v3/{domain}/unsubscribes",
                     data={"address": "ann@example.org", "tag": "list-of:ann@example.org"})
    assert (reply.status_code, reply.json()) == (400,
                                                  {"message": UNSUBSCRIBE_TAG_HOLDS_ADDRESS})
    assert api.get(f"/v3/{domain}/unsubscribes").json()["items"] == []


def test_a_variable_named_with_an_address_is_kept_sealed_not_refused(api, services,
                                                                      domain) -> None:
    """`v:` variables, names as well as values, are stored only sealed (in the message's
    document and its events), so one named after a person is no leak: it is accepted."""
    from tests.support import Sink, deliver_due
    from tests.vault.raw import holds

    with Sink() as sink:
        reply = api.post(f"/v3/{domain}/messages", data={
            "from": f"news@{domain}", "to": "ann@example.org", "subject": "Hi", "text": "t",
            "v:owner-zelda@example.com": "yes"})
        assert reply.status_code == 200, reply.text
        deliver_due(services, sink)
    [event, _] = api.get(f"/v3/{domain}/events").json()["items"]
    assert event["user-variables"] == {"owner-zelda@example.com": "yes"}
    assert "owner-zelda@example.com" in sink.received[0].message["X-Mailgun-Variables"]
    assert not holds(services, "zelda@example")
    assert holds(services, domain)  # the check sees what is stored in clear
