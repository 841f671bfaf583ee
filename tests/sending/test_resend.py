"""Resending a stored message: `POST /v3/domains/{domain}/messages/{storage_key}` with `to`
sends it again, accepted as a message of its own, to its owner's domain only."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
from sqlalchemy import func, select, update

from mailhaven.delivery.models import Delivery
from mailhaven.domains.models import Domain
from mailhaven.domains.service import create_domain
from mailhaven.events.models import Event
from mailhaven.messages.models import Message
from mailhaven.vault import VaultKey
from tests.delivery.sinks import events
from tests.sending.test_send_api import queued
from tests.support import LiveServer, Sink, deliver_due


def _send(api: httpx.Client, domain: str, **extra: str) -> str:
    """A message to Ann; the storage URL its accepted event gives."""
    reply = api.post(f"/v3/{domain}/messages", data={
        "from": f"Shop <shop@{domain}>", "to": "Ann <ann@example.org>",
        "cc": "cat@example.org", "subject": "Your receipt", "text": "Thanks for your order",
        "o:tag": "receipts", "v:order": "42", **extra})
    assert reply.status_code == 200, reply.text
    accepted = events(api, domain, "accepted")
    return accepted[-1]["storage"]["url"]


def _queued(reply: httpx.Response) -> str:
    """The new message's id, without <>, once the body is checked to be exactly Mailgun's."""
    return queued(reply).strip("<>")


def _counts(services) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    with services.db.sessions() as session:
        return tuple(session.scalar(select(func.count()).select_from(model))
                     for model in (Message, Delivery, Event))  # type: ignore[return-value]


def test_a_resend_goes_to_the_new_recipients_as_a_message_of_its_own(api, services,
                                                                     domain) -> None:
    url = _send(api, domain)
    with Sink() as sink:
        deliver_due(services, sink)
        first = sink.received[0].message
        sink.received.clear()
        # urlencoded, `to` repeated and comma-separated, as Mailgun's docs and SDKs send it
        resent = _queued(api.post(url, data={"to": ["Bob <bob@example.org>",
                                                     "dan@example.org, BOB@example.org"]}))
        deliver_due(services, sink)

    assert sorted(r for got in sink.received for r in got.rcpt_tos) == [
        "bob@example.org", "dan@example.org"]  # duplicates count once
    for got in sink.received:
        mail = got.message
        # The message as it was stored: its own From, To, Cc and subject; the new
        # recipients are its envelope.
        assert mail["Subject"] == "Your receipt"
        assert mail["From"] == first["From"] and mail["To"] == first["To"]
        assert mail["Cc"] == first["Cc"]
        assert mail.get_body(("plain",)).get_content().strip() == "Thanks for your order"
        assert json.loads(mail["X-Mailgun-Variables"]) == {"order": "42"}
        assert mail["Message-ID"] == f"<{resent}>" != first["Message-ID"]

    accepted = [e for e in events(api, domain, "accepted")
                if e["message"]["headers"]["message-id"] == resent]
    assert sorted(e["recipient"] for e in accepted) == ["bob@example.org", "dan@example.org"]
    keys = {e["storage"]["key"] for e in accepted}
    assert len(keys) == 1 and keys != {url.rsplit("/", 1)[1]}  # stored again, its own key
    assert all(e["tags"] == ["receipts"] and e["user-variables"] == {"order": "42"}
               for e in accepted)
    delivered = [e for e in events(api, domain, "delivered")
                 if e["message"]["headers"]["message-id"] == resent]
    assert len(delivered) == 2
    # The resent message is stored too: its own URL gives it back.
    assert api.get(accepted[0]["storage"]["url"]).json()["subject"] == "Your receipt"


def test_to_may_come_multipart_or_in_the_query_string(api, services, domain) -> None:
    url = _send(api, domain)
    multipart = api.post(url, data={"to": "bob@example.org"},
                         files={"unused": ("x.txt", b"x", "text/plain")})
    _queued(multipart)
    _queued(api.post(url, params={"to": "dan@example.org"}))  # as Mailgun's Go handlers read
    with Sink() as sink:
        deliver_due(services, sink)
    assert sorted(r for got in sink.received for r in got.rcpt_tos) == [
        "ann@example.org", "bob@example.org", "cat@example.org", "dan@example.org"]


def test_a_resend_without_a_good_to_is_a_400_and_keeps_nothing(api, services,
                                                               domain) -> None:
    url = _send(api, domain)
    before = _counts(services)
    for data, message in (
            ({}, "to parameter is missing"),
            ({"to": " "}, "to parameter is missing"),
            ({"to": "not an address"},
             "to parameter is not a valid address. please check documentation"),
            ({"to": ",".join(f"r{n}@example.org" for n in range(1001))},
             "Too many recipients, max is 1000")):
        reply = api.post(url, data=data)
        assert reply.status_code == 400, reply.text
        assert reply.json() == {"message": message}
    assert _counts(services) == before


def test_a_resend_is_404_for_unknown_keys_and_purged_or_erased_bodies(api, services,
                                                                      domain) -> None:
    url = _send(api, domain)
    key = url.rsplit("/", 1)[1]
    base = url.rsplit("/", 1)[0]
    for target in (f"{base}/nope", f"{base}/{key}x"):
        reply = api.post(target, data={"to": "bob@example.org"})
        assert reply.status_code == 404
        assert reply.json() == {"message": "Message not found"}
    wrong_domain = api.post(url.replace(f"/domains/{domain}/", "/domains/mg.nope.test/"),
                            data={"to": "bob@example.org"})
    assert wrong_domain.status_code == 404
    assert wrong_domain.json() == {"message": "Domain not found"}

    with services.db.transaction() as session:  # retention purged the body
        session.execute(update(Message).where(Message.id == key).values(content_sealed=None))
    assert api.post(url, data={"to": "bob@example.org"}).status_code == 404

    other = _send(api, domain)
    with services.db.transaction() as session:  # the content key was erased
        content_key = session.scalar(select(Message.content_key_id).where(
            Message.id == other.rsplit("/", 1)[1]))
        session.execute(VaultKey.__table__.delete().where(VaultKey.id == content_key))
    assert api.post(other, data={"to": "bob@example.org"}).status_code == 404


def test_another_account_cannot_resend_a_message(api, live, services, domain,
                                                 second_account, second_api) -> None:
    url = _send(api, domain)
    before = _counts(services)
    # At the owner's URL: the domain is not the other account's.
    reply = second_api.post(url, data={"to": "thief@example.org"})
    assert reply.status_code == 404
    assert reply.json() == {"message": "Domain not found"}
    # With the other account's own domain and the owner's storage key.
    own = url.replace(f"/domains/{domain}/", f"/domains/{second_account.domain}/")
    reply = second_api.post(own, data={"to": "thief@example.org"})
    assert reply.status_code == 404
    assert reply.json() == {"message": "Message not found"}
    assert _counts(services) == before
    with httpx.Client(base_url=live.base_url) as anonymous:
        assert anonymous.post(url, data={"to": "thief@example.org"}).status_code == 401


def test_a_batch_resend_gives_first_recipients_their_own_values_again(api, services,
                                                                      domain) -> None:
    reply = api.post(f"/v3/{domain}/messages", data={
        "from": f"Shop <shop@{domain}>", "to": ["ann@example.org", "bob@example.org"],
        "subject": "Hello %recipient.name%", "text": "Your code is %recipient.code%",
        "recipient-variables": json.dumps({"ann@example.org": {"name": "Ann", "code": "A1"},
                                           "bob@example.org": {"name": "Bob", "code": "B2"}})})
    assert reply.status_code == 200, reply.text
    url = events(api, domain, "accepted")[0]["storage"]["url"]
    with Sink() as sink:
        deliver_due(services, sink)
        sink.received.clear()
        _queued(api.post(url, data={"to": ["bob@example.org", "eve@example.org"]}))
        deliver_due(services, sink)
    copies = {got.rcpt_tos[0]: got.message for got in sink.received}
    assert copies["bob@example.org"]["Subject"] == "Hello Bob"
    assert copies["bob@example.org"]["To"] == "bob@example.org"
    assert copies["bob@example.org"].get_content().strip() == "Your code is B2"
    # Someone the batch never went to has no values of their own, and sees no one else.
    assert copies["eve@example.org"]["Subject"] == "Hello "
    assert copies["eve@example.org"].get_content().strip() == "Your code is"
    assert copies["eve@example.org"]["To"] == "undisclosed-recipients:;"


MIME = (b"From: Shop <shop@mg.acme.test>\r\nTo: ann@example.org\r\nSubject: Built elsewhere\r\n"
        b"Message-ID: <own-id@shop.example>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain\r\n\r\nHello from a MIME library\r\n")


def test_a_resent_mime_message_gets_a_message_id_of_its_own(api, services, domain) -> None:
    reply = api.post(f"/v3/{domain}/messages.mime", data={"to": "ann@example.org"},
                     files={"message": ("m.eml", MIME, "message/rfc822")})
    assert reply.json()["id"] == "<own-id@shop.example>"
    url = events(api, domain, "accepted")[0]["storage"]["url"]
    resent = _queued(api.post(url, data={"to": "bob@example.org"}))
    with Sink() as sink:
        deliver_due(services, sink)
    copies = {got.rcpt_tos[0]: got.message for got in sink.received}
    assert copies["ann@example.org"]["Message-ID"] == "<own-id@shop.example>"
    bob = copies["bob@example.org"]
    assert bob.get_all("Message-ID") == [f"<{resent}>"]
    assert bob["Subject"] == "Built elsewhere" and bob["To"] == "ann@example.org"
    assert bob.get_content().strip() == "Hello from a MIME library"


def test_a_resend_of_a_scheduled_message_goes_now(api, services, clock, domain) -> None:
    later = datetime.fromtimestamp(int(clock.now()) + 3600, UTC)
    url = _send(api, domain, **{"o:deliverytime": format_datetime(later, usegmt=True)})
    _queued(api.post(url, data={"to": "bob@example.org"}))
    with Sink() as sink:
        deliver_due(services, sink)
    assert [got.rcpt_tos for got in sink.received] == [["bob@example.org"]]
    [accepted] = [e for e in events(api, domain, "accepted")
                  if e["recipient"] == "bob@example.org"]
    assert "scheduled-for" not in accepted["message"]


def test_a_resend_from_an_unverified_domain_is_refused_where_verification_is_required(
        api, services, account, domain) -> None:
    url = _send(api, domain)
    strict = dataclasses.replace(
        services, settings=services.settings.with_(require_verified_domains=True))
    with LiveServer(strict) as server, server.client(account[1]) as client:
        reply = client.post(httpx.URL(url).path, data={"to": "bob@example.org"})
    assert reply.status_code == 403
    assert reply.json()["message"].startswith(
        f"Domain {domain} is not allowed to send: The domain is unverified")


def _news_changes_hands(api, services, account, second_account, domain, *, mime: bool) -> str:  # type: ignore[no-untyped-def]
    """A message from ceo@news.acme.test, a domain of the account's then; the domain then
    goes to another account, which verifies it. The message's storage URL."""
    with services.db.transaction() as session:
        create_domain(session, services.vault, account[0], {"name": "news.acme.test"},
                      services.clock)
    if mime:
        raw = MIME.replace(b"shop@mg.acme.test", b"ceo@news.acme.test")
        reply = api.post(f"/v3/{domain}/messages.mime", data={"to": "ann@example.org"},
                         files={"message": ("m.eml", raw, "message/rfc822")})
    else:
        reply = api.post(f"/v3/{domain}/messages", data={
            "from": "ceo@news.acme.test", "to": "ann@example.org", "subject": "s", "text": "t"})
    assert reply.status_code == 200, reply.text
    with services.db.transaction() as session:
        session.execute(update(Domain).where(Domain.name == "news.acme.test").values(
            account_id=second_account.account_id, state="active"))
    return str(events(api, domain, "accepted")[0]["storage"]["url"])


def test_a_resend_whose_sender_the_account_may_no_longer_use_is_refused_as_a_send_is(
        api, services, account, second_account, domain) -> None:
    url = _news_changes_hands(api, services, account, second_account, domain, mime=False)
    again = api.post(f"/v3/{domain}/messages", data={
        "from": "ceo@news.acme.test", "to": "ann@example.org", "subject": "s", "text": "t"})
    assert again.status_code == 403
    reply = api.post(httpx.URL(url).path, data={"to": "bob@example.org"})
    assert reply.status_code == 403
    assert reply.json() == again.json()
    assert [e["recipient"] for e in events(api, domain, "accepted")] == ["ann@example.org"]


def test_a_resent_mime_message_is_judged_by_its_own_from(api, services, account,
                                                         second_account, domain) -> None:
    url = _news_changes_hands(api, services, account, second_account, domain, mime=True)
    reply = api.post(httpx.URL(url).path, data={"to": "bob@example.org"})
    assert reply.status_code == 403
    assert "news.acme.test is not a domain of this account" in reply.json()["message"]
