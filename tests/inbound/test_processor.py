"""The inbound queue: what was answered 250 is processed by whichever processor comes, once
per (message, recipient), even after a crash; a row that can never be processed ends
failed and visible; retention keeps unprocessed mail."""

from __future__ import annotations

import dataclasses
import json
import logging
import threading

from sqlalchemy import update

from mailhaven.inbound import processor
from mailhaven.inbound.processor import LEASE_SECONDS, InboundProcessor
from mailhaven.inbound.service import QUEUE
from mailhaven.messages.models import Message
from mailhaven.retention import service as retention
from tests.feedback.test_reports import _events
from tests.inbound.conftest import message, process_all, rows
from tests.support import Sink, deliver_due

DAY = 86_400.0


def test_a_crash_after_250_loses_nothing(mx, services, api, domain) -> None:
    mx.send("ann@sender.test", [f"a@{domain}", f"b@{domain}"], message())
    # the process that answered 250 died here: a new process's processor takes the rows
    assert [r.status for r in rows(services)] == ["waiting", "waiting"]
    assert process_all(services, owner="after-restart") == 2
    assert sorted(e["recipient"] for e in _events(api, domain, "accepted")) == [
        f"a@{domain}", f"b@{domain}"]


def test_a_processor_that_dies_holding_rows_lets_another_take_them(mx, services, api,
                                                                   domain, clock) -> None:
    mx.send("ann@sender.test", [f"a@{domain}"], message())
    with services.db.transaction() as session:  # claimed, then the claimer died
        _, ids = QUEUE.claim(session, owner="dead", now=clock.now(), limit=10,
                             lease_seconds=LEASE_SECONDS)
    assert len(ids) == 1
    assert process_all(services, owner="alive") == 0  # its lease still holds
    clock.advance(LEASE_SECONDS + 1)
    assert process_all(services, owner="alive") == 1
    assert len(_events(api, domain, "accepted")) == 1
    assert rows(services)[0].status == "processed"


def test_two_processors_process_each_row_once(mx, services, api, domain) -> None:
    for n in range(3):
        mx.send("ann@sender.test", [f"a{n}@{domain}", f"b{n}@{domain}"],
                message(message_id=f"<m{n}@sender.test>"))
    handled: list[int] = []
    barrier = threading.Barrier(2)

    def work(owner: str) -> None:
        processor = InboundProcessor(services, owner=owner, batch=2)
        barrier.wait()
        while count := processor.process_due():
            handled.append(count)

    threads = [threading.Thread(target=work, args=(f"p{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(handled) == 6
    events = _events(api, domain, "accepted")
    assert sorted(e["recipient"] for e in events) == sorted(
        f"{who}{n}@{domain}" for who in "ab" for n in range(3))
    assert {r.status for r in rows(services)} == {"processed"}


def test_a_row_that_can_never_be_processed_ends_failed(mx, services, api, domain) -> None:
    mx.send("ann@sender.test", [f"a@{domain}"], message())
    with services.db.transaction() as session:  # its body gone (shredded, expired)
        session.execute(update(Message).values(content_sealed=None))
    process_all(services)
    [row] = rows(services)
    assert row.status == "failed" and row.attempts == 1
    assert row.last_error is not None and row.last_error.startswith("Unprocessable at ")
    assert _events(api, domain, "accepted") == []


def test_retention_keeps_unprocessed_mail_and_purges_processed_mail(mx, services, domain,
                                                                     clock) -> None:
    mx.send("ann@sender.test", [f"a@{domain}"], message(message_id="<kept@sender.test>"))
    clock.advance(4 * DAY)  # the processor was down for four days
    counts = retention.run(services.db, clock)
    assert counts["message_bodies"] == 0 and counts["inbound_messages"] == 0
    assert process_all(services) == 1  # its body is still there
    clock.advance(4 * DAY)
    counts = retention.run(services.db, clock)
    assert counts["message_bodies"] == 1 and counts["inbound_messages"] == 1
    assert rows(services) == []


def _team_list(api) -> None:  # type: ignore[no-untyped-def]
    """team@mg.acme.test, open to everyone, with two members."""
    made = api.post("/v3/lists", data={"address": "team@mg.acme.test",
                                       "access_level": "everyone"})
    assert made.status_code == 200, made.text
    added = api.post("/v3/lists/team@mg.acme.test/members.json", data={
        "members": json.dumps(["bob@example.org", "cy@example.org"])})
    assert added.status_code == 200, added.text


def _delivered(services) -> list[str]:  # type: ignore[no-untyped-def]
    with Sink() as sink:
        deliver_due(services, sink)
    return sorted(r.rcpt_tos[0] for r in sink.received)


def test_a_list_on_an_unverified_domain_sends_nothing_where_sending_needs_it(
        mx, services, api, domain, caplog) -> None:
    _team_list(api)
    strict = dataclasses.replace(services, settings=services.settings.with_(
        require_verified_domains=True))
    mx.send("ann@sender.test", [f"team@{domain}"], message(to=f"team@{domain}"))
    with caplog.at_level(logging.WARNING, logger="mailhaven.inbound.distribution"):
        assert process_all(strict) == 1
    assert _delivered(strict) == []  # the API would refuse this domain's sends too
    assert "its domain may not send" in caplog.text
    mx.send("ann@sender.test", [f"team@{domain}"],
            message(to=f"team@{domain}", message_id="<m43@sender.test>"))
    assert process_all(services) == 1  # where unverified domains may send, it goes out
    assert _delivered(services) == ["bob@example.org", "cy@example.org"]


def test_a_bounce_to_a_list_is_not_distributed_whatever_its_from(mx, services, api,
                                                                  domain) -> None:
    _team_list(api)
    # A DSN: MAIL FROM:<>, its From: an address (the list accepts mail from everyone).
    mx.send("", [f"team@{domain}"], message(sender="Mail Delivery <postmaster@sender.test>",
                                            to=f"team@{domain}"))
    assert process_all(services) == 1
    assert _delivered(services) == []


def test_a_messages_header_is_read_once_for_all_its_recipients(mx, services, api, domain,
                                                                monkeypatch) -> None:
    route = api.post("/v3/routes", data={"expression": 'match_header("subject", "Order")',
                                         "action": "store()"})
    assert route.status_code == 200, route.text
    reads: list[int] = []
    real = processor.header_pairs

    def header_pairs(raw: bytes) -> list[tuple[str, str]]:
        reads.append(len(raw))
        return real(raw)

    monkeypatch.setattr(processor, "header_pairs", header_pairs)
    mx.send("ann@sender.test", [f"{who}@{domain}" for who in "abc"], message())
    assert process_all(services) == 3
    assert len(reads) == 1  # one message, one claim: its header read once
    events = _events(api, domain, "accepted")
    assert sorted(e["recipient"] for e in events) == [f"{who}@{domain}" for who in "abc"]
    assert all(e["routes"] == [{"id": route.json()["route"]["id"]}] for e in events)
