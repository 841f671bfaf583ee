"""The logs: what happened to my mail. A send delivered to a sink shows in /app/logs, its
message page shows its timeline and its content in a sandboxed frame that fetches nothing
remote, the live tail shows what happens while the page is open; the Events API's filters,
paging, views, attachments, expiry, and another account that sees none of it."""

from __future__ import annotations

import re
import time
from contextlib import ExitStack, contextmanager

import httpx

from mailhaven.retention import service as retention
from mailhaven.web import logs
from tests.support import Sink, SinkBehaviour, deliver_due
from tests.web.helpers import add_user, csrf_of, http_log_in

DAY = 86400
HTML = ('<p>Hello <b>Bob</b></p><img src="http://example.invalid/x.png" alt="tracker">'
        '<script>document.title = "pwned"</script>')


def send(api, to: str, files=None, **fields: str) -> str:  # type: ignore[no-untyped-def]
    answer = api.post("/v3/mg.acme.test/messages", data={
        "from": "Acme <news@mg.acme.test>", "to": to, "subject": "Hi",
        "text": "Hello Bob, in plain text.", "html": HTML, **fields}, files=files)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["id"])


def storage_key(api, message_id: str) -> str:  # type: ignore[no-untyped-def]
    events = api.get("/v3/mg.acme.test/events", params={"message-id": message_id}).json()
    return str(events["items"][0]["storage"]["key"])


def test_a_delivery_shows_in_the_logs_its_page_and_the_live_tail(page, live, services, api,
                                                                   signed_in) -> None:
    blocked: dict[str, str | None] = {}
    page.on("requestfailed", lambda request: blocked.update({request.url: request.failure}))
    signed_in(role="analyst")
    with Sink() as sink:
        send(api, "bob@example.com", subject="Your order")
        deliver_due(services, sink)

        page.goto(f"{live.base_url}/app/logs")
        row = page.locator("#log-rows tr", has_text="delivered")
        assert "bob@example.com" in row.inner_text() and "250" in row.inner_text()
        assert page.locator("#log-rows tr", has_text="accepted").count() == 1

        row.get_by_role("link", name="Your order").click()
        page.wait_for_load_state()
        assert "/app/logs/messages/" in page.url
        assert page.locator(".timeline .what").all_inner_texts() == ["accepted", "delivered"]
        assert "250 2.0.0 OK queued" in page.locator(".timeline li").nth(1).inner_text()
        frame = page.locator("iframe.message")
        assert frame.get_attribute("sandbox") == ""  # no allow-scripts, no allow-same-origin
        body = page.frame_locator("iframe.message").locator("body")
        assert "Hello Bob" in body.inner_text()
        assert page.frame_locator("iframe.message").locator("img").count() == 1
        page.get_by_role("link", name="Text").click()
        page.wait_for_load_state()
        assert "Hello Bob, in plain text." in page.locator("pre.body-text").inner_text()
        page.get_by_role("link", name="Headers").click()
        page.wait_for_load_state()
        assert "Your order" in page.locator("table.headers").inner_text()

        # The live tail: an event recorded while the page is open appears at the top.
        page.goto(f"{live.base_url}/app/logs")
        page.locator("body.live").wait_for()
        send(api, "carol@example.com", subject="Late news")
        deliver_due(services, sink)
        page.locator("#log-rows tr", has_text="carol@example.com").first.wait_for()
        first = page.locator("#log-rows tr").first.inner_text()
        assert "carol@example.com" in first and "delivered" in first
        page.close()  # ends the stream before the server stops

    # The remote image was refused by the frame's policy inside the browser: Chromium names
    # it to Playwright, but it never went out (a request that had would fail otherwise).
    remote = [u for u in page.requested if not u.startswith(live.base_url)]
    assert remote == ["http://example.invalid/x.png"], page.requested
    assert blocked[remote[0]] == "csp"  # blocked by the content security policy


@contextmanager
def _client(live, services, account_id: str, email: str):  # type: ignore[no-untyped-def]
    """A user of the account (Support: may read logs), logged in over HTTP."""
    add_user(services, account_id, email=email, role="support")
    with live.client() as client:
        assert http_log_in(client, email).status_code == 303
        yield client


def test_the_logs_filter_like_the_events_api_and_page(live, services, api, account,
                                                      monkeypatch) -> None:
    refuse_dan = SinkBehaviour(rcpt=lambda rcpt: "550 5.1.1 No such user"
                               if rcpt.startswith("dan@") else None)
    with Sink(refuse_dan) as sink:
        bob = send(api, "bob@example.com", **{"o:tag": "news"})
        send(api, "carol@example.com", **{"o:tag": "bills"})
        send(api, "dan@example.com")
        deliver_due(services, sink)
    with _client(live, services, account[0], "sue@acme.test") as client:
        def shown(**params: str) -> str:
            answer = client.get("/app/logs", params=params)
            assert answer.status_code == 200, answer.text
            return answer.text

        everything = shown()
        assert all(a in everything for a in ("bob@", "carol@", "dan@"))
        accepted = [r for r in everything.split('<tr class="log-row')[1:] if "accepted" in r]
        assert ["dan@" in accepted[0], "bob@" in accepted[-1]] == [True, True]  # newest first
        only_bob = shown(recipient="bob@example.com")
        assert "bob@" in only_bob and "carol@" not in only_bob
        failed = shown(event="failed")
        assert "dan@" in failed and "bob@" not in failed and "5.1.1 No such user" in failed
        bills = shown(tag="bills")
        assert "carol@" in bills and "bob@" not in bills
        by_id = shown(**{"message-id": bob})
        assert "bob@" in by_id and "carol@" not in by_id
        assert "bob@" in shown(domain="mg.acme.test")
        assert "bob@" not in shown(end="2001-01-01T00:00")
        assert "bob@" in shown(begin="2001-01-01T00:00")
        assert client.get("/app/logs", params={"domain": "mg.bee.test"}).status_code == 400
        assert client.get("/app/logs", params={"begin": "soon"}).status_code == 400
        assert client.get("/app/logs", params={"page": "forged.token"}).status_code == 400

        monkeypatch.setattr(logs, "PAGE_SIZE", 2)  # paging, on few events
        first = shown()
        older = re.search(r'href="(/app/logs\?page=[^"]+)" rel="next"', first)
        assert older is not None
        second = client.get(older.group(1).replace("&amp;", "&")).text
        rows = re.compile(r'<tr class="log-row')
        assert len(rows.findall(first)) == len(rows.findall(second)) == 2
        assert 'rel="prev"' in second

        # The stream, read by a client that is not a browser: one poll, then the end.
        streamed = client.get("/app/logs/stream", params={"after": "0", "recipient":
                                                          "bob@example.com"})
        assert streamed.headers["content-type"].startswith("text/event-stream")
        assert "event: rows" in streamed.text and "bob@" in streamed.text
        assert "carol@" not in streamed.text
        last_id = re.findall(r"^id: (\d+)$", streamed.text, re.M)[-1]
        resumed = client.get("/app/logs/stream", params={"recipient": "bob@example.com"},
                             headers={"Last-Event-ID": last_id})
        assert "event: rows" not in resumed.text  # an EventSource reconnecting: no repeats
        latest = client.get("/app/logs/stream").text  # from now on: nothing yet
        assert "event: rows" not in latest


def test_a_message_page_views_its_attachment_and_says_when_it_is_gone(
        live, services, api, account, second_account, clock) -> None:
    with Sink() as sink:
        message_id = send(api, "bob@example.com", files=[
            ("attachment", ("terms.txt", b"The terms.", "text/plain"))])
        deliver_due(services, sink)
    key = storage_key(api, message_id)
    with _client(live, services, account[0], "sue@acme.test") as client:
        url = f"/app/logs/messages/{key}"
        assert "Hello Bob, in plain text." in client.get(url, params={"view": "text"}).text
        raw = client.get(url, params={"view": "raw"}).text
        assert "Content-Type: multipart" in raw and "terms.txt" in raw
        html = client.get(f"{url}/html")
        assert html.status_code == 200 and "Hello <b>Bob</b>" in html.text
        assert html.headers["content-security-policy"].startswith(
            "default-src 'none'; style-src 'unsafe-inline'; img-src data: cid:")
        assert html.headers["x-frame-options"] == "SAMEORIGIN"
        listed = client.get(url).text
        assert "terms.txt" in listed
        attached = client.get(f"{url}/attachments/0")
        assert attached.content == b"The terms."
        assert "attachment;" in attached.headers["content-disposition"]
        assert client.get(f"{url}/attachments/5").status_code == 404
        assert client.get("/app/logs/messages/nothing-here").status_code == 404

        # Another account's user: none of it.
        with _client(live, services, second_account.account_id, "zed@bee.test") as other:
            assert other.get(url).status_code == 404
            assert other.get(f"{url}/html").status_code == 404
            assert other.get(f"{url}/attachments/0").status_code == 404
            assert "bob@" not in other.get("/app/logs").text
            assert "bob@" not in other.get("/app/logs/stream", params={"after": "0"}).text

    clock.advance(4 * DAY)  # stored messages are kept three days
    retention.run(services.db, services.clock)
    with _client(live, services, account[0], "tim@acme.test") as client:
        gone = client.get(url)
        assert gone.status_code == 200 and "no longer stored" in gone.text
        assert "delivered" in gone.text  # its events remain
        assert client.get(f"{url}/html").status_code == 404
        assert client.get(f"{url}/attachments/0").status_code == 404


def test_a_role_without_logs_is_refused(live, services, account) -> None:
    with live.client() as client:
        add_user(services, account[0], email="bill@acme.test", role="billing")
        http_log_in(client, "bill@acme.test")
        assert client.get("/app/logs").status_code == 403
        assert client.get("/app/logs/stream").status_code == 403
        assert client.get("/app/logs/messages/k/attachments/0").status_code == 403
    with live.client() as anonymous:
        assert anonymous.get("/app/logs/messages/k/attachments/0").status_code == 303


LIVE = {"accept": "text/event-stream"}


def _wait_until(done, seconds: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_user_has_a_few_live_tails_at_most(live, services, account, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(logs, "POLL_SECONDS", 0.1)
    with _client(live, services, account[0], "sue@acme.test") as client, ExitStack() as open_:
        tails = [open_.enter_context(client.stream("GET", "/app/logs/stream", headers=LIVE))
                 for _ in range(logs.MAX_STREAMS)]
        assert [t.status_code for t in tails] == [200] * logs.MAX_STREAMS
        refused = client.get("/app/logs/stream", headers=LIVE)
        assert refused.status_code == 429
        assert "live logs open already" in refused.text
        assert client.get("/app/logs/stream").status_code == 200  # one poll: not a tail
        tails[0].close()  # a tab closed: its place is free again

        def another() -> bool:
            with client.stream("GET", "/app/logs/stream", headers=LIVE) as tail:
                return tail.status_code == 200
        assert _wait_until(another)


def test_logging_out_ends_the_live_tail(live, services, account, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(logs, "POLL_SECONDS", 0.1)
    with _client(live, services, account[0], "sue@acme.test") as client, \
            live.client() as tail_client:
        tail_client.cookies = client.cookies  # the same session, in another tab
        token = csrf_of(client.get("/app/logs").text)
        with tail_client.stream("GET", "/app/logs/stream", headers=LIVE,
                                timeout=httpx.Timeout(10.0)) as tail:
            assert tail.status_code == 200
            assert client.post("/logout", data={"csrf_token": token}).status_code == 303
            started = time.monotonic()
            for _ in tail.iter_lines():  # ends (a keep-alive would come in 15 s at best)
                pass
            assert time.monotonic() - started < 5
        assert tail_client.get("/app/logs/stream").status_code in (303, 401)


def test_attachments_download_as_inert_bytes_unless_their_type_is_safe(
        live, services, api, account) -> None:  # type: ignore[no-untyped-def]
    files = [("attachment", ("terms.txt", b"The terms.", "text/plain")),
             ("attachment", ("photo.png", b"\x89PNG\r\n\x1a\n", "image/png")),
             ("attachment", ("page.html", b"<script>alert(1)</script>", "text/html")),
             ("attachment", ("old.js", b"alert(1)", "application/x-javascript")),
             ("attachment", ("style.xsl", b"<xsl:stylesheet/>", "text/xsl")),
             ("attachment", ("feed.rdf", b"<rdf/>", "application/rdf+xml"))]
    with Sink() as sink:
        message_id = send(api, "bob@example.com", files=files)
        deliver_due(services, sink)
    key = storage_key(api, message_id)
    with _client(live, services, account[0], "sue@acme.test") as client:
        served = [client.get(f"/app/logs/messages/{key}/attachments/{n}")
                  for n in range(len(files))]
    assert [r.headers["content-type"].split(";")[0] for r in served] == [
        "text/plain", "image/png"] + ["application/octet-stream"] * 4
    for reply in served:
        assert reply.headers["content-security-policy"] == "default-src 'none'; sandbox"
        assert reply.headers["x-content-type-options"] == "nosniff"
        assert reply.headers["content-disposition"].startswith("attachment;")
    assert served[2].content == b"<script>alert(1)</script>"  # the bytes, as they were
