"""Tracking URLs under attack: malformed tokens get a forged token's answer, never a 500;
a replayed unsubscribe records nothing new."""

from __future__ import annotations

import dataclasses
import re
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from mailhaven.events.models import Event
from mailhaven.tracking import links
from mailhaven.tracking.links import Link
from mailhaven.webhooks.models import WebhookDelivery
from tests.support import Sink, WebhookReceiver, deliver_due, send_webhooks

# What the probe sent, and its neighbours: a MAC that is not ASCII, not hex, too long or
# too short, and a body that is not ASCII either.
MACS = ["%C3%A9", "%C3%A9" * 32, "%E2%80%A8" * 11, "g" * 32, "0" * 33, "A" * 32, "",
        "%ED%A0%80", "%FF" * 32]


def _body(services, kind: str, data: str) -> str:  # type: ignore[no-untyped-def]
    return links.make(services.vault, Link(kind, 1, data)).partition(".")[0]


@pytest.mark.parametrize("mac", MACS)
def test_a_malformed_mac_is_refused_like_a_forged_one(api, services, mac: str) -> None:
    click = _body(services, "c", "https://shop.example/")
    opened = api.get(f"/o/{_body(services, 'o', '')}.{mac}")
    assert opened.status_code == 200 and opened.headers["content-type"] == "image/gif"
    clicked = api.get(f"/c/{click}.{mac}", follow_redirects=False)
    assert clicked.status_code == 404 and "location" not in clicked.headers
    unsubscribe = f"/u/{_body(services, 'u', '*')}.{mac}"
    assert api.get(unsubscribe).status_code == 404
    one_click = api.post(unsubscribe, content=b"List-Unsubscribe=One-Click",
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert one_click.status_code == 404


@pytest.mark.parametrize("path", ["/c/%C3%A9.%C3%A9", "/o/%C3%A9%C3%A9", "/u/%F0%9F%92%A9.",
                                  "/c/.", "/u/...", "/o/%C3%A9.0123456789abcdef0123456789abcdef"])
def test_a_malformed_body_is_refused_like_a_forged_one(api, path: str) -> None:
    answer = api.get(path, follow_redirects=False)
    assert answer.status_code == (200 if path.startswith("/o/") else 404)
    assert "location" not in answer.headers
    if path.startswith("/u/"):
        assert api.post(path).status_code == 404


def _unsubscribe_urls(api, live, services, domain: str) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """The one-click URL (everything) and the tag URL of one delivered copy."""
    api.put(f"/v3/domains/{domain}/tracking/unsubscribe", data={"active": "yes"})
    with Sink() as sink:
        assert api.post(f"/v3/{domain}/messages", data={
            "from": f"news@{domain}", "to": "ann@example.org", "subject": "Hi", "o:tag": "weekly",
            "html": '<a href="%tag_unsubscribe_url%">Less</a>'}).status_code == 200
        deliver_due(dataclasses.replace(
            services, settings=services.settings.with_(public_url=live.base_url)), sink)
    mail = sink.received[0]
    html = mail.message.get_body(("html",)).get_content()
    [tag_url] = re.findall(r'<a href="([^"]+)">Less', html)
    return urlsplit(mail.message["List-Unsubscribe"].strip("<>")).path, urlsplit(tag_url).path


def _recorded(services) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """(unsubscribed events, webhook rows) in the database."""
    with services.db.sessions() as session:
        return (session.scalar(select(func.count()).select_from(Event)
                               .where(Event.event == "unsubscribed")) or 0,
                session.scalar(select(func.count()).select_from(WebhookDelivery)) or 0)


def test_a_replayed_unsubscribe_records_nothing_new(api, live, services, domain) -> None:
    with WebhookReceiver() as receiver:
        api.post(f"/v3/domains/{domain}/webhooks", data={"id": "unsubscribed",
                                                          "url": receiver.url})
        everything, tag = _unsubscribe_urls(api, live, services, domain)
        assert api.post(tag).status_code == 200
        assert _recorded(services) == (1, 1)
        assert api.post(tag).status_code == 200  # the same tag again: nothing new
        assert _recorded(services) == (1, 1)
        for _ in range(3):  # one-click, replayed; and the page's own button
            one_click = api.post(everything, content=b"List-Unsubscribe=One-Click", headers={
                "Content-Type": "application/x-www-form-urlencoded"})
            assert one_click.status_code == 200 and "unsubscribed" in one_click.text
        page = api.post(everything)
        assert page.status_code == 200 and "unsubscribed" in page.text
        assert api.post(tag).status_code == 200  # already off everything, the tag included
        assert _recorded(services) == (2, 2)
        assert send_webhooks(services) == 2
    assert [h.json["event-data"]["event"] for h in receiver.received] == ["unsubscribed"] * 2
    assert api.get(f"/v3/{domain}/unsubscribes/ann@example.org").json()["tags"] == ["*", "weekly"]
    events = api.get(f"/v3/{domain}/events", params={"event": "unsubscribed"}).json()["items"]
    assert len(events) == 2


def test_parallel_one_click_posts_record_one_unsubscribe(api, live, services, domain) -> None:
    everything, _ = _unsubscribe_urls(api, live, services, domain)
    with ThreadPoolExecutor(8) as pool, live.client() as client:
        answers = list(pool.map(lambda _: client.post(everything).status_code, range(8)))
    assert answers == [200] * 8
    assert _recorded(services)[0] == 1
