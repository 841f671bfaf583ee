"""The development mailbox in a real browser: a multipart message sent through the API is
listed with its time, found by a search, and opened — text, headers, raw, its attachment
downloaded, its HTML in a sandboxed frame that loads nothing remote."""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller

from mailhaven.dev.mailbox import MailboxHandler
from mailhaven.dev.mode import mailbox_folder
from mailhaven.services import Services
from tests.support import LiveServer, deliver_due, free_port

HTML = ('<h1>Your invoice</h1><p>Total: <b>42 EUR</b></p>'
        '<img alt="tracker" src="http://example.invalid/x.png">'
        '<img alt="pixel" src="{pixel}"><p id="s">Static</p>'
        "<script>document.getElementById('s').textContent = 'A script ran'</script>")


@pytest.fixture
def live(services: Services) -> Iterator[LiveServer]:
    """The app as `serve --dev` runs it: with /dev/mailbox."""
    with LiveServer(services, dev=True) as server:
        yield server


@pytest.fixture
def image_host() -> Iterator[tuple[str, list[str]]]:
    """A remote image server (another origin, on loopback): the paths it was asked for."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/open.gif", asked
    finally:
        server.shutdown()
        server.server_close()


def deliver_to_the_mailbox(services: Services) -> None:
    """What `serve --dev`'s worker does: deliver to the capture server on this machine."""
    controller = Controller(MailboxHandler(mailbox_folder(services.settings), services.clock),
                            hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        deliver_due(dataclasses.replace(services, settings=services.settings.with_(
            relayhost=("127.0.0.1", controller.port))))
    finally:
        controller.stop()


def test_a_sent_message_found_and_opened_in_the_mailbox(api, live, services, domain,
                                                        page, image_host) -> None:
    pixel, asked = image_host
    assert api.post(f"/v3/{domain}/messages", data={
        "from": f"Billing <billing@{domain}>", "to": "ann@example.org",
        "subject": "Invoice 2026-12", "text": "Thanks for the gooseberry order.\nTotal: 42 EUR",
        "html": HTML.format(pixel=pixel)}, files=[
            ("attachment", ("invoice.pdf", b"%PDF-1.4 invoice", "application/pdf"))]
        ).status_code == 200
    assert api.post(f"/v3/{domain}/messages", data={
        "from": f"billing@{domain}", "to": "bob@example.org", "subject": "Welcome",
        "text": "Hello"}).status_code == 200
    deliver_to_the_mailbox(services)
    refused: list[str] = []  # what the pages' policies blocked, as the console reports it
    failed: dict[str, str | None] = {}
    page.on("requestfailed", lambda r: failed.update({r.url: r.failure}))
    page.on("console", lambda m: refused.append(m.text)
            if "Content Security Policy" in m.text else None)

    page.goto(f"{live.base_url}/dev/mailbox")
    assert page.get_by_role("link", name="Invoice 2026-12").is_visible()
    assert page.get_by_role("link", name="Welcome").is_visible()
    times = page.locator("table.messages time").all_inner_texts()
    assert len(times) == 2 and all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", t)
                                   for t in times), times
    assert page.locator("td.pass").all_inner_texts() == ["valid signature"] * 2

    page.get_by_label("Search sender, recipients, subject and text").fill("GOOSEBERRY")
    page.get_by_role("button", name="Search").click()
    page.wait_for_load_state()
    assert page.get_by_role("link", name="Invoice 2026-12").is_visible()
    assert page.get_by_role("link", name="Welcome").count() == 0
    page.get_by_role("link", name="Invoice 2026-12").click()
    page.wait_for_load_state()

    assert page.get_by_role("heading", name="Invoice 2026-12").is_visible()
    assert f"valid signature (d={domain}," in page.locator(".summary").inner_text()
    frame = page.locator("iframe.html")
    assert frame.get_attribute("sandbox") == ""  # no scripts, an origin of its own
    assert page.frame_locator("iframe.html").locator("b").inner_text() == "42 EUR"
    assert page.frame_locator("iframe.html").locator("#s").inner_text() == "Static"
    with page.expect_download() as download:
        page.get_by_role("link", name="invoice.pdf").click()
    assert download.value.suggested_filename == "invoice.pdf"

    page.get_by_role("link", name="Text", exact=True).click()
    page.wait_for_load_state()
    assert "Thanks for the gooseberry order." in page.locator("pre.body").inner_text()
    page.get_by_role("link", name="Headers", exact=True).click()
    page.wait_for_load_state()
    assert page.get_by_role("rowheader", name="DKIM-Signature").is_visible()
    page.get_by_role("link", name="Raw", exact=True).click()
    page.wait_for_load_state()
    assert "Content-Type: multipart/mixed" in page.locator("pre.raw").inner_text()

    assert f"{live.base_url}/static/mailbox.css" in page.requested
    # Chromium lists the mail's remote images as requests, failed by the frame's policy
    # before anything was sent (and the image host above heard nothing): all else is ours.
    elsewhere = {u for u in page.requested if not u.startswith(live.base_url)}
    assert elsewhere == {"http://example.invalid/x.png", pixel}, page.requested
    assert all(failed[u] == "csp" for u in elsewhere), failed
    # Only the mail's remote images were refused: our own pages need no inline style or script.
    assert refused and all("example.invalid" in r or pixel in r for r in refused), refused
    assert asked == []  # and the remote image host heard nothing
