"""Opens, clicks and unsubscribes, end to end: settings API → delivered mail → the
recipient's request → events, suppressions and webhooks."""

from __future__ import annotations

import dataclasses
import re
from urllib.parse import urlsplit

import dkim
import pytest

from mailhaven.accounts.service import create_account
from tests.delivery.test_dkim import published_key, signature_tags
from tests.support import Sink, WebhookReceiver, deliver_due, send_webhooks

HTML = ('<html><body><p>Hi</p><a href="https://shop.example/item?id=7&amp;ref=mail">Item</a>'
        ' <a href="mailto:help@shop.example">Help</a></body></html>')
TEXT = "See https://shop.example/item?id=7 now."
UA = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
      "(KHTML, like Gecko) Mobile/15E148")


def _send(api, domain: str, to: str = "ann@example.org", **extra: str) -> None:  # type: ignore[no-untyped-def]
    data = {"from": f"news@{domain}", "to": to, "subject": "Hello", "html": HTML,
            "text": TEXT, **extra}
    assert api.post(f"/v3/{domain}/messages", data=data).status_code == 200


def _deliver(services, live, sink) -> None:  # type: ignore[no-untyped-def]
    """The worker, with tracking links pointing at the live test server."""
    deliver_due(dataclasses.replace(
        services, settings=services.settings.with_(public_url=live.base_url)), sink)


def _parts(received) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    message = received.message
    return (message.get_body(("html",)).get_content(), message.get_body(("plain",)).get_content())


def _path(url: str) -> str:
    return urlsplit(url).path


def _events(api, domain: str, event: str) -> list[dict]:  # type: ignore[no-untyped-def]
    return api.get(f"/v3/{domain}/events", params={"event": event,
                                                   "ascending": "yes"}).json()["items"]


def test_settings_api(api, live, services, domain) -> None:
    base = f"/v3/domains/{domain}/tracking"
    tracking = api.get(base).json()["tracking"]
    assert tracking["open"] == {"active": False, "place_at_the_top": False}
    assert tracking["click"] == {"active": False}
    assert tracking["unsubscribe"]["active"] is False
    assert "%unsubscribe_url%" in tracking["unsubscribe"]["html_footer"]

    assert api.put(f"{base}/open", data={"active": "yes"}).json() == {
        "message": "Domain tracking settings have been updated",
        "open": {"active": True, "place_at_the_top": False}}
    assert api.put(f"{base}/click", data={"active": "htmlonly"}).json()["click"] == {
        "active": "htmlonly"}
    footer = '<p><a href="%unsubscribe_url%">Stop these</a></p>'
    changed = api.put(f"{base}/unsubscribe", data={"active": "true", "html_footer": footer},
                      files={"unused": ("x.txt", b"")}).json()  # multipart, as SDKs send
    assert changed["unsubscribe"]["active"] is True
    assert changed["unsubscribe"]["html_footer"] == footer
    assert api.get(base).json()["tracking"]["click"] == {"active": "htmlonly"}
    assert api.put(f"{base}/open", data={"active": "maybe"}).status_code == 400
    assert api.put(f"{base}/pixels", data={"active": "yes"}).status_code == 400
    with services.db.transaction() as session:
        other = create_account(session, services.vault, name="O", email="o@o.test")
    with live.client(other.api_key) as intruder:
        assert intruder.get(base).status_code == 404
        assert intruder.put(f"{base}/open", data={"active": "no"}).status_code == 404


def test_nothing_is_tracked_unless_the_domain_turns_it_on(api, live, services,
                                                         domain) -> None:
    with Sink() as sink:
        _send(api, domain, **{"o:tracking": "yes", "o:tracking-opens": "yes"})
        _deliver(services, live, sink)
    html, text = _parts(sink.received[0])
    assert "shop.example/item?id=7&amp;ref=mail" in html and "<img" not in html
    assert text.strip() == TEXT
    assert "List-Unsubscribe" not in sink.received[0].message


def test_opens_and_clicks_become_events(api, live, services, domain) -> None:
    api.put(f"/v3/domains/{domain}/tracking/open", data={"active": "yes"})
    api.put(f"/v3/domains/{domain}/tracking/click", data={"active": "yes"})
    with Sink() as sink:
        _send(api, domain, **{"o:tag": "spring"})
        _deliver(services, live, sink)
    html, text = _parts(sink.received[0])
    assert "shop.example" not in html.replace("mailto:help@shop.example", "")
    assert 'href="mailto:help@shop.example"' in html  # only web links are rewritten
    assert "shop.example" not in text and f"{live.base_url}/c/" in text
    [pixel] = re.findall(r'<img[^>]+src="([^"]+)"', html)
    [click] = re.findall(r'<a href="([^"]+)">Item', html)

    opened = api.get(_path(pixel), headers={"User-Agent": UA})
    assert opened.status_code == 200 and opened.headers["content-type"] == "image/gif"
    assert opened.headers["cache-control"].startswith("no-store")
    followed = api.get(_path(click.replace("&amp;", "&")), follow_redirects=False)
    assert followed.status_code == 302
    assert followed.headers["location"] == "https://shop.example/item?id=7&ref=mail"

    open_event = _events(api, domain, "opened")[0]
    assert open_event["recipient"] == "ann@example.org" and open_event["tags"] == ["spring"]
    assert open_event["client-info"]["device-type"] == "mobile"
    assert open_event["client-info"]["client-os"] == "iOS"
    assert open_event["ip"] == "127.0.0.1"
    assert open_event["geolocation"] == {"country": "Unknown", "region": "Unknown",
                                         "city": "Unknown"}
    [click_event] = _events(api, domain, "clicked")
    assert click_event["url"] == "https://shop.example/item?id=7&ref=mail"
    api.get(_path(pixel), headers={"User-Agent": UA})  # opened again: total, not unique
    totals = api.get(f"/v3/{domain}/stats/total",
                     params={"event": ["opened", "clicked"], "duration": "1d"}).json()
    assert [sum(s[e][k] for s in totals["stats"]) for e in ("opened", "clicked")
            for k in ("total", "unique")] == [2, 1, 1, 1]
    tagged = api.get(f"/v3/{domain}/tags/spring/stats",
                     params={"event": "opened", "duration": "1d"}).json()
    assert sum(s["opened"]["unique"] for s in tagged["stats"]) == 1


def test_tampered_or_foreign_links_do_nothing(api, live, services, domain) -> None:
    api.put(f"/v3/domains/{domain}/tracking/click", data={"active": "yes"})
    with Sink() as sink:
        _send(api, domain)
        _deliver(services, live, sink)
    [click] = re.findall(r'<a href="([^"]+)">Item', _parts(sink.received[0])[0])
    body, mac = _path(click).removeprefix("/c/").split(".")
    forged = api.get(f"/c/{body}.{'0' * len(mac)}", follow_redirects=False)
    assert forged.status_code == 404 and "location" not in forged.headers
    assert api.get(f"/c/{body[:-2]}.{mac}", follow_redirects=False).status_code == 404
    assert api.get(f"/o/{body}.{mac}").status_code == 200  # a click token is no open token
    assert api.post(f"/u/{body}.{mac}").status_code == 404
    assert _events(api, domain, "opened") == [] and _events(api, domain, "unsubscribed") == []


@pytest.mark.parametrize(("options", "pixel", "text_rewritten"), [
    ({"o:tracking": "no"}, False, False),
    ({"o:tracking-opens": "no"}, False, True),
    ({"o:tracking-clicks": "htmlonly"}, True, False),
])
def test_a_message_can_turn_tracking_down(api, live, services, domain, options, pixel,
                                          text_rewritten) -> None:
    api.put(f"/v3/domains/{domain}/tracking/open", data={"active": "yes"})
    api.put(f"/v3/domains/{domain}/tracking/click", data={"active": "yes"})
    with Sink() as sink:
        _send(api, domain, **options)
        _deliver(services, live, sink)
    html, text = _parts(sink.received[0])
    assert ("<img" in html) is pixel
    assert ("shop.example" not in text) is text_rewritten


def test_one_click_unsubscribe_suppresses_and_notifies(api, live, services, domain) -> None:
    api.put(f"/v3/domains/{domain}/tracking/unsubscribe", data={"active": "yes"})
    with WebhookReceiver() as receiver, Sink() as sink:
        api.post(f"/v3/domains/{domain}/webhooks", data={"id": "unsubscribed",
                                                          "url": receiver.url})
        _send(api, domain)
        _deliver(services, live, sink)
        mail = sink.received[0]
        url = mail.message["List-Unsubscribe"].strip("<>")
        assert mail.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        signed = signature_tags(mail.data)["h"].lower().split(":")
        assert "list-unsubscribe" in signed and "list-unsubscribe-post" in signed
        assert dkim.verify(mail.data, dnsfunc=published_key(api, domain))
        html, text = _parts(mail)
        assert url in html and url in text  # the domain's footers

        # What a mailbox provider sends (RFC 8058): a POST with this one field.
        one_click = api.post(_path(url), content=b"List-Unsubscribe=One-Click",
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert one_click.status_code == 200 and "unsubscribed" in one_click.text
        send_webhooks(services)

        listed = api.get(f"/v3/{domain}/unsubscribes/ann%40example.org").json()
        assert listed["address"] == "ann@example.org" and listed["tags"] == ["*"]
        [event] = _events(api, domain, "unsubscribed")
        assert event["recipient"] == "ann@example.org"
        [hook] = receiver.received
        assert hook.json["event-data"]["event"] == "unsubscribed"
        assert hook.json["event-data"]["id"] == event["id"]

        _send(api, domain)
        _deliver(services, live, sink)
    assert len(sink.received) == 1
    failed = _events(api, domain, "failed")[-1]
    assert failed["reason"] == "suppress-unsubscribe" and failed["delivery-status"]["code"] == 605


def test_the_unsubscribe_page_asks_before_it_acts(api, live, services, domain) -> None:
    with Sink() as sink:
        _send(api, domain, html='<a href="%unsubscribe_url%">Leave</a>')
        _deliver(services, live, sink)
    [url] = re.findall(r'<a href="([^"]+)">Leave', _parts(sink.received[0])[0])
    page = api.get(_path(url))  # a link scanner's GET
    assert page.status_code == 200 and '<form method="post">' in page.text
    assert api.get(f"/v3/{domain}/unsubscribes").json()["items"] == []
    assert api.post(_path(url)).status_code == 200
    assert [i["address"] for i in api.get(f"/v3/{domain}/unsubscribes").json()["items"]] == [
        "ann@example.org"]


def test_a_tag_unsubscribe_stops_only_that_tag(api, live, services, domain) -> None:
    with Sink() as sink:
        _send(api, domain, html='<a href="%tag_unsubscribe_url%">Less</a>',
              **{"o:tag": "weekly"})
        _deliver(services, live, sink)
        [url] = re.findall(r'<a href="([^"]+)">Less', _parts(sink.received[0])[0])
        assert api.post(_path(url)).status_code == 200
        assert api.get(f"/v3/{domain}/unsubscribes/ann@example.org").json()["tags"] == [
            "weekly"]
        _send(api, domain, **{"o:tag": "weekly"})
        _send(api, domain, **{"o:tag": "receipts"})
        _deliver(services, live, sink)
    assert len(sink.received) == 2  # the receipt went out, the weekly did not
