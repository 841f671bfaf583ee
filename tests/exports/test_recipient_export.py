"""`GET /v1/privacy/recipients/{address}`: everything an account holds about one recipient,
nothing about anyone else, and nothing for another account."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from mailhaven.accounts.service import create_account
from mailhaven.domains.service import create_domain
from tests.exports.archive import read, validate
from tests.support import Sink, deliver_due

ANN, BOB = "ann@example.org", "bob.other@example.org"


def _send(api, domain: str, to: str, subject: str) -> str:  # type: ignore[no-untyped-def]
    reply = api.post(f"/v3/{domain}/messages", data={
        "from": f"News <news@{domain}>", "to": to, "subject": subject, "text": "hello",
        "o:tag": "news"})
    assert reply.status_code == 200, reply.text
    return reply.json()["id"].strip("<>")


def _export_url(address: str) -> str:
    return f"/v1/privacy/recipients/{quote(address, safe='')}"


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


@pytest.fixture
def mailed(api, services, domain) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Ann and Bob on one message, Bob alone on another; delivered; Ann unsubscribed and
    Bob bounced."""
    both = _send(api, domain, f"Ann Example <{ANN}>, {BOB}", "For both")
    bob_only = _send(api, domain, BOB, "For Bob alone")
    with Sink() as sink:
        deliver_due(services, sink)
    assert len(sink.received) == 3  # one copy per recipient (VERP)
    assert api.post(f"/v3/{domain}/unsubscribes", data={"address": ANN, "tag": "news"}
                    ).status_code == 200
    assert api.post(f"/v3/{domain}/bounces", data={"address": BOB, "code": "550",
                                                   "error": "no such user"}).status_code == 200
    return {"both": both, "bob_only": bob_only}


def test_a_recipient_export_holds_their_events_copies_suppressions_and_messages(
        api, domain, mailed) -> None:
    reply = api.get(_export_url(ANN))
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "application/zip"
    export = read(reply.content)
    assert sorted(export.members) == sorted([
        "export.json", "README.txt", "events.csv", "messages.csv", "suppressions.csv",
        "deliveries.csv", "received_mail.csv", "smtp_credentials.csv", "list_members.csv",
        "consents.csv",
        "requests.csv", "disclosures.csv"])
    doc = export.document
    validate(doc)
    assert doc["subject"]["kind"] == "recipient" and doc["subject"]["address"] == ANN
    found = doc["categories"]

    assert sorted(e["event"] for e in found["events"]) == ["accepted", "delivered"]
    assert {e["recipient"] for e in found["events"]} == {ANN}
    assert {e["message"]["headers"]["message-id"] for e in found["events"]} == {mailed["both"]}
    assert [(s["domain"], s["list"], s["value"], s["tags"]) for s in found["suppressions"]] == [
        (domain, "unsubscribes", ANN, ["news"])]
    [copy] = found["deliveries"]
    assert (copy["address"], copy["status"], copy["domain"]) == (
        f"Ann Example <{ANN}>", "delivered", domain)
    [message] = found["messages"]
    assert (message["message_id"], message["recipients"], message["tags"]) == (
        mailed["both"], 2, ["news"])
    assert found["consents"] == found["requests"] == found["disclosures"] == []

    # The CSVs carry the same rows, nested values as JSON text.
    events_csv = export.csv("events")
    assert sorted(r["id"] for r in events_csv) == sorted(e["id"] for e in found["events"])
    assert export.csv("suppressions")[0]["tags"] == '["news"]'
    assert export.csv("consents") == []
    assert b"events.csv" in export.members["README.txt"]


def test_a_recipient_export_holds_nothing_of_the_other_recipients(api, mailed) -> None:
    """Ann's copy of a message sent to both names only Ann: Bob's address, his bounce and
    the message sent to him alone stay out."""
    export = read(api.get(_export_url(ANN)).content)
    assert not export.contains(BOB.encode())
    assert not export.contains(b"For Bob alone")
    assert not export.contains(mailed["bob_only"].encode())
    headers = [e["message"]["headers"] for e in export.document["categories"]["events"]]
    assert {h["to"] for h in headers} == {f"Ann Example <{ANN}>"}

    bob = read(api.get(_export_url(BOB)).content).document["categories"]
    assert len(bob["events"]) == 4 and len(bob["messages"]) == 2
    assert [s["list"] for s in bob["suppressions"]] == ["bounces"]
    assert ANN not in str(bob)


def test_the_address_is_matched_as_the_vault_indexes_it(api, mailed) -> None:
    reply = api.get(_export_url(" ANN@Example.ORG "))
    assert reply.status_code == 200
    assert len(read(reply.content).document["categories"]["events"]) == 2


def test_nothing_held_is_404_and_another_account_sees_nothing(api, other, mailed) -> None:
    missing = api.get(_export_url("nobody@example.org"))
    assert (missing.status_code, missing.json()) == (404, {"message": "Recipient not found"})
    slashed = api.get(_export_url("no/such@example.org"))  # "/" is legal in a local part
    assert (slashed.status_code, slashed.json()) == (404, {"message": "Recipient not found"})

    foreign = other.get(_export_url(ANN))
    assert (foreign.status_code, foreign.json()) == (404, {"message": "Recipient not found"})

    # Once the other account mails Ann too, its export holds its own message only.
    _send(other, "mg.globex.test", ANN, "From Globex")
    theirs = read(other.get(_export_url(ANN)).content)
    events = theirs.document["categories"]["events"]
    assert [e["event"] for e in events] == ["accepted"]
    assert {m["domain"] for m in theirs.document["categories"]["messages"]} == {
        "mg.globex.test"}
    assert theirs.document["categories"]["suppressions"] == []
    assert not theirs.contains(mailed["both"].encode())
    assert not theirs.contains(b"mg.acme.test")


def test_an_export_needs_the_accounts_key(live, mailed) -> None:
    with live.client() as anonymous:
        assert anonymous.get(_export_url(ANN)).status_code == 401
    with live.client("key-" + "0" * 40) as wrong:
        assert wrong.get(_export_url(ANN)).status_code == 401
