"""`inbound.distribution.distribute`: mail arriving for a list's address, as the intake's
processor hands it over (raw MIME), goes to the members as the list's access level allows,
with a list server's headers, never back to the poster."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from mailhaven.domains.service import owned_domain
from mailhaven.inbound.distribution import distribute
from tests.support import Sink, deliver_due

LIST = "team@mg.acme.test"
RAW = (b"Received: from mx.example.org by mx.mailhaven.test; Sat, 5 Dec 2026 10:00:00 +0000\r\n"
       b"X-Mailgun-Sflag: No\r\nList-Id: <other.list.example.net>\r\n"
       b"From: Ann Lee <ann@example.org>\r\nTo: team@mg.acme.test\r\n"
       b"Subject: Lunch?\r\nMessage-ID: <lunch-1@example.org>\r\nMIME-Version: 1.0\r\n"
       b"Content-Type: text/plain; charset=utf-8\r\n\r\nShall we?\r\n")


def _list(api, access: str, reply: str = "list") -> None:  # type: ignore[no-untyped-def]
    made = api.post("/v3/lists", data={"address": LIST, "access_level": access,
                                       "reply_preference": reply})
    assert made.status_code == 200, made.text
    api.post(f"/v3/lists/{quote(LIST)}/members.json", data={"members": json.dumps([
        "ann@example.org", "bob@example.org", "Cy <cy@example.org>",
        {"address": "dee@example.org", "subscribed": False}])})


def _distribute(services, account_id: str, sender: str, recipient: str = LIST,  # type: ignore[no-untyped-def]
                raw: bytes = RAW, envelope_sender: str | None = None) -> int | None:
    with services.db.transaction() as session:
        domain = owned_domain(session, account_id, "mg.acme.test")
        return distribute(session, services.vault, domain=domain, recipient=recipient,
                          sender=sender, raw=raw, now=services.clock.now(),
                          envelope_sender=sender if envelope_sender is None
                          else envelope_sender,
                          require_verified=False)


def _delivered(services) -> dict:  # type: ignore[no-untyped-def]
    with Sink() as sink:
        deliver_due(services, sink)
    return {r.rcpt_tos[0]: r.message for r in sink.received}


@pytest.mark.parametrize("access,sender,copies", [
    ("readonly", "ann@example.org", 0),
    ("members", "eve@example.net", 0),
    ("members", "Ann@Example.org", 2),
    ("everyone", "eve@example.net", 3),
])
def test_the_access_level_decides_who_may_post(api, services, account, access, sender,
                                               copies) -> None:
    _list(api, access)
    assert _distribute(services, account[0], sender) == copies
    delivered = _delivered(services)
    assert len(delivered) == copies
    assert "dee@example.org" not in delivered  # unsubscribed
    if access == "members":
        assert "ann@example.org" not in delivered  # never back to the poster


def test_a_copy_carries_a_list_servers_headers(api, services, account) -> None:
    _list(api, "everyone")
    _distribute(services, account[0], "ann@example.org")
    bob = _delivered(services)["bob@example.org"]
    assert bob["List-Id"] == "<team.mg.acme.test>"  # ours, not the other list's
    assert bob["List-Post"] == f"<mailto:{LIST}>"
    assert bob["Reply-To"] == LIST
    assert bob["List-Unsubscribe"].startswith("<http") and "/lists/unsubscribe/" in \
        bob["List-Unsubscribe"]
    assert bob["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert (bob["From"], bob["To"], bob["Subject"]) == ("Ann Lee <ann@example.org>", LIST,
                                                       "Lunch?")
    assert bob["Message-ID"] == "<lunch-1@example.org>"
    assert bob["X-Mailgun-Sflag"] is None
    assert bob.get_content().strip() == "Shall we?"


def test_reply_preference_sender_and_the_cases_that_are_not_a_list(api, services,
                                                                   account) -> None:
    _list(api, "everyone", reply="sender")
    assert _distribute(services, account[0], "bounce-sender@example.org") == 3
    assert _delivered(services)["bob@example.org"]["Reply-To"] == "ann@example.org"
    assert _distribute(services, account[0], "ann@example.org",
                       recipient="nobody@mg.acme.test") is None
    assert _distribute(services, account[0], "") == 0  # a bounce does not go round
    looped = RAW.replace(b"<other.list.example.net>", b"<team.mg.acme.test>")
    assert _distribute(services, account[0], "ann@example.org", raw=looped) == 0


def test_a_bounce_with_a_from_does_not_go_round(api, services, account) -> None:
    _list(api, "everyone")
    # MAIL FROM:<> (a DSN), its From: a mailer daemon's or the poster's address
    assert _distribute(services, account[0], "ann@example.org", envelope_sender="") == 0
    assert _delivered(services) == {}


@pytest.mark.parametrize("list_ids,copies", [
    # Lists that are members of each other: this list's id under another list's.
    ([b"<team.mg.acme.test>", b"<other.list.example.net>"], 0),
    ([b"Team list <TEAM.mg.acme.test>"], 0),
    # Another list whose id merely contains this one's is not a loop.
    ([b"<web-team.mg.acme.test>"], 3),
    ([b"<team.mg.acme.test.example.net>", b"<other.list.example.net>"], 3),
])
def test_a_message_that_went_through_this_list_does_not_again(api, services, account,
                                                              list_ids, copies) -> None:
    _list(api, "everyone")
    fields = b"".join(b"List-Id: " + value + b"\r\n" for value in list_ids)
    raw = RAW.replace(b"List-Id: <other.list.example.net>\r\n", fields)
    assert _distribute(services, account[0], "eve@example.net", raw=raw) == copies
    assert len(_delivered(services)) == copies


def test_another_accounts_list_is_not_this_domains(api, services, second_account) -> None:
    _list(api, "everyone")
    with services.db.transaction() as session:
        domain = owned_domain(session, second_account.account_id, second_account.domain)
        assert distribute(session, services.vault, domain=domain, recipient=LIST,
                          sender="x@example.org", raw=RAW, now=services.clock.now(),
                          envelope_sender="x@example.org",
                          require_verified=False) is None
