"""Sends that arrive together share one transaction (group commit), and each still gets
its own answer: a refused or misaddressed request fails alone, and every accepted message
is stored, queued and delivered as if it had been sent by itself."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
from sqlalchemy import func, select

from mailhaven.errors import BadRequest, Forbidden, NotFound
from mailhaven.messages.models import Message
from mailhaven.sending.service import Accepted, SendAttempt, send_all
from tests.sending.test_send_api import by_rcpt, delivered, events, minimal, queued, send

FROM = "Acme <news@mg.acme.test>"


def attempt(account_id: str, fields: list[tuple[str, str]],
            domain: str = "mg.acme.test") -> SendAttempt:
    return SendAttempt(account_id, domain, fields, [], mime=False)


def test_one_transaction_answers_each_send_on_its_own(api, services, account, domain) -> None:
    account_id = account[0]
    batch_fields = [("from", FROM), ("to", "carl@example.org"), ("to", "dora@example.org"),
                    ("subject", "Hi %recipient.name%"), ("text", "Hello %recipient.name%"),
                    ("recipient-variables", json.dumps({"carl@example.org": {"name": "Carl"},
                                                        "dora@example.org": {"name": "Dora"}}))]
    outcomes = send_all(services.db, services.vault, [
        attempt(account_id, minimal(to="ann@example.org", subject="for ann")),
        attempt(account_id, minimal(to="not an address")),
        attempt(account_id, minimal(to="eve@example.org"), domain="mg.nobody.test"),
        attempt(account_id, batch_fields),
        attempt(account_id, minimal(to="bob@example.org", subject="for bob")),
    ], clock=services.clock)

    ann, refused, unknown, batch, bob = outcomes
    assert isinstance(refused, BadRequest) and "to parameter" in refused.message
    assert isinstance(unknown, NotFound) and "mg.nobody.test" in unknown.message
    assert [type(o) for o in (ann, batch, bob)] == [Accepted] * 3
    assert (ann.recipients, batch.recipients, bob.recipients) == (1, 2, 1)
    assert len({ann.id, batch.id, bob.id}) == 3

    accepted = {e["recipient"]: e for e in events(api, domain, event="accepted")}
    assert set(accepted) == {"ann@example.org", "bob@example.org", "carl@example.org",
                             "dora@example.org"}
    assert accepted["ann@example.org"]["message"]["headers"]["message-id"] == ann.id.strip("<>")
    for own in ("carl@example.org", "dora@example.org"):  # a batch send: each its own To
        assert accepted[own]["message"]["headers"]["to"] == own
        assert accepted[own]["message"]["headers"]["message-id"] == batch.id.strip("<>")
    [rejected] = events(api, domain, event="rejected")
    assert rejected["reject"]["reason"] == refused.message

    copies = by_rcpt(delivered(services))
    assert set(copies) == {"ann@example.org", "bob@example.org", "carl@example.org",
                           "dora@example.org"}
    assert copies["ann@example.org"].message["Subject"] == "for ann"
    assert copies["dora@example.org"].message.get_content().strip() == "Hello Dora"


def test_an_unverified_domain_refuses_only_its_own_sends(services, account, domain) -> None:
    account_id = account[0]
    outcomes = send_all(services.db, services.vault, [
        attempt(account_id, minimal(to="ann@example.org")),
        attempt(account_id, minimal(to="bob@example.org")),
    ], clock=services.clock, require_verified=True)
    assert all(isinstance(o, Forbidden) for o in outcomes)  # mg.acme.test is not verified
    with services.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Message)) == 0


def test_concurrent_api_sends_each_get_their_answer(api, live, account, services,
                                                    domain) -> None:
    good = [minimal(to=f"user{i}@example.org", subject=f"number {i}") for i in range(24)]
    bad = [minimal(to=f"user{i}@") for i in range(6)]

    def post(fields: list[tuple[str, str]]) -> httpx.Response:
        with live.client(account[1]) as client:
            return send(client, domain, fields)

    with ThreadPoolExecutor(max_workers=30) as pool:
        replies = list(pool.map(post, good + bad))

    ids = [queued(reply) for reply in replies[:24]]
    assert len(set(ids)) == 24
    assert [r.status_code for r in replies[24:]] == [400] * 6
    assert all("not a valid address" in r.json()["message"] for r in replies[24:])
    copies = by_rcpt(delivered(services))
    assert {rcpt: got.message["Subject"] for rcpt, got in copies.items()} == {
        f"user{i}@example.org": f"number {i}" for i in range(24)}
    assert len(events(api, domain, event="rejected")) == 6
