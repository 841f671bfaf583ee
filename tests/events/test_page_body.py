"""The Events API's page body is spliced from each event's sealed JSON (not decoded and encoded
again): it must say what the decoded events say, `storage.url` included, with the same
paging links, for any document a client could have shaped."""

from __future__ import annotations

import json

import httpx
from sqlalchemy import update

from mailhaven.domains.service import owned_domain
from mailhaven.events.models import Event
from mailhaven.events.query import EventQuery, fetch, parse_query
from mailhaven.events.service import Recipient, record_each, with_storage_urls
from mailhaven.messages.content import MessageFacts
from mailhaven.privacy.erasure import erase_recipient
from mailhaven.services import Services
from tests.support import Sink, SinkBehaviour, deliver_due


def _as_before(services: Services, account_id: str, domain: str, query: EventQuery,
               base_url: str) -> dict:
    """The page as it was rendered before: each event decoded (the panel's path), its
    storage url added, and the paging links."""
    with services.db.sessions() as session:
        domain_id = owned_domain(session, account_id, domain).id
        page = fetch(session, services.vault, account_id, domain_id, query)
    base = f"{base_url}/v3/{domain}/events"
    return {"items": with_storage_urls(page.items, base_url, domain), "paging": {
        name: f"{base}/{getattr(page, name).token(services.vault)}"
        for name in ("first", "last", "next", "previous")}}


def test_a_page_says_what_the_decoded_events_say(api: httpx.Client, services, account, clock,
                                                 domain) -> None:
    for i, to in enumerate(("Zoë Ünal <zoe@example.org>", '"Bob \\"B\\"" <bob@example.org>',
                            "carol@example.org", "dan@example.org")):
        reply = api.post(f"/v3/{domain}/messages", data={
            "from": f"Émile 🚀 <ops@{domain}>", "to": to,
            "subject": f"Ça va? \"quoted\" \\ back\\slash </script> #{i}", "text": "t",
            "o:tag": ["news", "été"], "v:order": json.dumps({"id": i, "key": {"storage": "x"}}),
            "v:note": '", "storage": {"key": "forged"}'})
        assert reply.status_code == 200, reply.text
        clock.advance(1.25)
    refuse = SinkBehaviour(rcpt=lambda rcpt: "550 5.1.1 No such user" if "dan" in rcpt
                           else None)
    with Sink(refuse) as sink:
        deliver_due(services, sink)
    api.post(f"/v3/{domain}/messages", data={"to": "erin@example.org", "text": "no from"})

    base_url = str(api.base_url).rstrip("/")
    url: str | None = f"/v3/{domain}/events?limit=3&ascending=yes"
    query = parse_query({"limit": "3", "ascending": "yes"}, services.vault, account[0])
    pages = 0
    while url:
        reply = api.get(url)
        assert reply.status_code == 200, reply.text
        assert reply.headers["content-type"] == "application/json"
        body = reply.json()
        assert body == _as_before(services, account[0], domain, query, base_url)
        if not body["items"]:
            break
        pages += 1
        url = body["paging"]["next"]
        query = EventQuery.from_token(url.rsplit("/", 1)[1], services.vault, account[0])
    assert pages == 3  # 4 accepted, 3 delivered, 1 failed, 1 rejected (no storage)

    everything = api.get(f"/v3/{domain}/events", params={"limit": 300}).json()["items"]
    stored = [e for e in everything if "storage" in e]
    assert len(stored) == 8 and len(everything) == 9
    assert all(e["storage"]["url"] == f"{base_url}/v3/domains/{domain}/messages/"
               f"{e['storage']['key']}" for e in stored)
    assert all(e["user-variables"]["note"] == '", "storage": {"key": "forged"}'
               for e in stored)


def test_a_document_of_another_shape_still_gets_its_storage_url(api: httpx.Client, services,
                                                               account, clock,
                                                               domain) -> None:
    """A nested object like the event's storage (even its key), and a row whose storage key
    is not its document's: the page still says what the decoded documents say."""
    with services.db.transaction() as session:
        domain_id = owned_domain(session, account[0], domain).id
        keys = services.vault.subjects(session, account[0], ["ann@example.org"])
        for i, nested in enumerate(({"storage": {"key": "k1"}}, {"storage": {"key": "k9"}})):
            facts = MessageFacts(
                storage_key=f"k{i + 1}", message_id=f"m{i}@{domain}",
                headers={"to": "ann@example.org", "from": f"ops@{domain}", "subject": "s"},
                attachments=[], size=10, tags=[], user_variables=nested, testmode=False)
            record_each(session, services.vault, account_id=account[0], domain_id=domain_id,
                        event="accepted", timestamp=clock.now() + i,
                        copies=[(facts, Recipient("ann@example.org",
                                                  keys["ann@example.org"]))])
        # the second row's storage key column no longer matches its JSON
        session.execute(update(Event).where(Event.storage_key == "k2")
                        .values(storage_key=None))
    reply = api.get(f"/v3/{domain}/events", params={"ascending": "yes"})
    assert reply.status_code == 200
    base_url = str(api.base_url).rstrip("/")
    query = parse_query({"ascending": "yes"}, services.vault, account[0])
    assert reply.json() == _as_before(services, account[0], domain, query, base_url)
    first, second = reply.json()["items"]
    assert first["user-variables"] == {"storage": {"key": "k1"}}
    assert first["storage"]["url"].endswith("/messages/k1")
    assert second["storage"]["url"].endswith("/messages/k2")


def test_a_recipient_erased_elsewhere_is_gone_from_the_page_at_once(
        api: httpx.Client, services, settings, account, clock, domain) -> None:
    """The serving process has the recipient's key unwrapped (it just showed their events);
    another process (the CLI's erasure) erases them: the next page has none of them."""
    for to in ("ann@example.org", "bob@example.org"):
        assert api.post(f"/v3/{domain}/messages", data={
            "from": f"ops@{domain}", "to": to, "subject": "s", "text": "t"}).status_code == 200
    with Sink() as sink:
        deliver_due(services, sink)
    mine = api.get(f"/v3/{domain}/events", params={"recipient": "ann@example.org"})
    assert [e["event"] for e in mine.json()["items"]] == ["delivered", "accepted"]

    elsewhere = Services.start(settings, clock, migrate=False)  # its own vault and cache
    try:
        with elsewhere.db.transaction() as session:
            erase_recipient(session, elsewhere.vault, account[0], "ann@example.org",
                            now=clock.now(), data_dir=settings.data_dir)
    finally:
        elsewhere.close()
    page = api.get(f"/v3/{domain}/events", params={"limit": 300})
    assert page.status_code == 200
    assert {e["recipient"] for e in page.json()["items"]} == {"bob@example.org"}
    assert "ann@example.org" not in page.text
    assert api.get(f"/v3/{domain}/events",
                   params={"recipient": "ann@example.org"}).json()["items"] == []
