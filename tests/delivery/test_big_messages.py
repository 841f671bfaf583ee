"""A big attachment to many recipients: encoded once, yet each copy its own and signed."""

from __future__ import annotations

import asyncio
import json
import os

from mailhaven.delivery.building import BIG_BYTES, Room
from tests.delivery.dkim_check import from_records, verify_each
from tests.support import Sink, deliver_due

REPORT = os.urandom(BIG_BYTES)  # big enough to wait for room in the worker
LOGO = b"\x89PNG\r\n\x1a\n" + os.urandom(2000)


def _verified(api, domain: str, data: bytes) -> bool:  # type: ignore[no-untyped-def]
    records = api.get(f"/v3/domains/{domain}").json()["sending_dns_records"]
    results = verify_each(data, from_records(records))
    return bool(results) and all(ok for *_, ok in results)


def test_each_copy_of_a_big_attachment_to_many_is_its_own_and_verifies(
        api, services, domain) -> None:
    api.put(f"/v3/domains/{domain}/tracking/click", data={"active": "yes"})
    people = {f"user{i}@example.org": {"name": f"User {i}"} for i in range(4)}
    reply = api.post(f"/v3/{domain}/messages", data={
        "from": f"Reports <reports@{domain}>", "to": list(people),
        "subject": "Report for %recipient.name%", "text": "Hi %recipient.name%",
        "html": '<p>Hi %recipient.name%, <a href="https://example.com/r">see</a>'
                '<img src="cid:logo.png"></p>',
        "recipient-variables": json.dumps(people),
    }, files=[("attachment", ("report.bin", REPORT, "application/octet-stream")),
              ("inline", ("logo.png", LOGO, "image/png"))])
    assert reply.status_code == 200, reply.text
    with Sink() as sink:
        deliver_due(services, sink)
    assert sorted(r.rcpt_tos[0] for r in sink.received) == sorted(people)
    links = set()
    for got in sink.received:
        email, message = got.rcpt_tos[0], got.message
        name = people[email]["name"]
        assert (message["To"], message["Subject"]) == (email, f"Report for {name}")
        assert _verified(api, domain, got.data)
        html = message.get_body(preferencelist=("html",)).get_content()
        assert f"Hi {name}," in html and "https://example.com/r" not in html  # tracked
        links.add(html.split('href="')[1].split('"')[0])
        parts = {p.get_filename(): p.get_content() for p in message.walk()
                 if p.get_filename()}
        assert parts == {"report.bin": REPORT, "logo.png": LOGO}
    assert len(links) == len(people)  # each copy's link names its own delivery


def test_each_copy_of_a_big_mime_message_verifies_with_its_body_intact(
        api, services, domain) -> None:
    body = "".join(f"Line {i}  with  spaces \t\n" for i in range(40_000))  # ~1.1 MB
    mime = (f"From: Reports <reports@{domain}>\nTo: team@example.org\nSubject: Big\n"
            f"Content-Type: text/plain; charset=utf-8\n\n{body}\n\n\n")
    recipients = ["ann@example.org", "bob@example.org", "cy@example.org"]
    reply = api.post(f"/v3/{domain}/messages.mime",
                     data={"to": ",".join(recipients), "h:X-Campaign": "big"},
                     files={"message": ("message.mime", mime.encode(), "message/rfc822")})
    assert reply.status_code == 200, reply.text
    with Sink() as sink:
        deliver_due(services, sink)
    assert sorted(r.rcpt_tos[0] for r in sink.received) == recipients
    for got in sink.received:
        assert _verified(api, domain, got.data)
        assert got.message["X-Campaign"] == "big"
        assert got.message.get_content().replace("\r\n", "\n") == body + "\n\n\n"


def test_big_copies_take_turns_for_room_and_small_ones_never_wait() -> None:
    async def run() -> list[str]:
        room, order = Room(capacity=10 * BIG_BYTES), []

        async def copy(name: str, size: int, hold: float) -> None:
            async with room.held(size):
                order.append(f"+{name}")
                await asyncio.sleep(hold)
                order.append(f"-{name}")

        await asyncio.gather(copy("a", 6 * BIG_BYTES, 0.05), copy("b", 6 * BIG_BYTES, 0),
                             copy("huge", 50 * BIG_BYTES, 0), copy("small", 1000, 0))
        return order

    order = asyncio.run(run())
    # b waits for a; the one larger than all the room waits for all of it; small never waits
    assert order == ["+a", "+small", "-small", "-a", "+b", "-b", "+huge", "-huge"]
