"""The overview: after some sends, the numbers in the chart (an SVG with its title and
description, and a table), why mail failed, the domains that need DNS work, and the
account's open privacy requests with an overdue mark — and nothing of another account."""

from __future__ import annotations

import re

from mailhaven.privacy.requests import open_request
from tests.support import Sink, SinkBehaviour, deliver_due
from tests.web.helpers import add_user, http_log_in

DAY = 86400


def send(api, to: str) -> None:  # type: ignore[no-untyped-def]
    answer = api.post("/v3/mg.acme.test/messages", data={
        "from": "news@mg.acme.test", "to": to, "subject": "Hi", "text": "Hello"})
    assert answer.status_code == 200, answer.text


def late_request(services, account_id: str, clock) -> None:  # type: ignore[no-untyped-def]
    """An access request received 40 days ago: due after a month, so overdue now."""
    with services.db.transaction() as session:
        open_request(session, services.vault, account_id=account_id, right="access",
                     subject_type="recipient",
                     subject_index=services.vault.blind_index(account_id, "eve@example.org"),
                     key=None, details={}, now=clock.now() - 40 * DAY, verified=True)


def stat(page, event: str) -> str:  # type: ignore[no-untyped-def]
    return str(page.locator(f'.stat[data-event="{event}"]').inner_text())


def test_the_overview_shows_what_the_mail_did_and_what_needs_doing(
        page, live, services, api, account, clock, signed_in) -> None:
    late_request(services, account[0], clock)
    refuse_dan = SinkBehaviour(rcpt=lambda rcpt: "550 5.1.1 No such user"
                               if rcpt.startswith("dan@") else None)
    with Sink(refuse_dan) as sink:
        for to in ("bob@example.com", "carol@example.com", "dan@example.com"):
            send(api, to)
        deliver_due(services, sink)
    signed_in()
    page.goto(f"{live.base_url}/app")

    assert [stat(page, e) for e in ("accepted", "delivered", "failed", "opened",
                                    "clicked")] == ["3", "2", "1", "0", "0"]
    chart = page.locator(".chart svg")
    assert chart.get_attribute("role") == "img"
    assert "Sent (accepted): 3, Delivered: 2, Failed: 1" in chart.locator("desc").text_content()
    assert chart.locator("polyline").count() == 5
    page.get_by_text("The numbers").click()
    last_hour = page.locator(".chart tbody tr").first.inner_text().split()
    assert last_hour[1:] == ["3", "2", "1", "0", "0"]

    failures = page.locator("section", has=page.get_by_role("heading", name="Why mail failed"))
    assert "bounce" in failures.locator("table").inner_text()
    assert "550 5.1.1 No such user" in failures.inner_text()

    dns = page.locator("section", has=page.get_by_role("heading", name="need DNS work"))
    dns.get_by_role("link", name="mg.acme.test").click()
    page.wait_for_load_state()
    assert page.url == f"{live.base_url}/app/domains/mg.acme.test"
    page.go_back()

    requests = page.locator("section", has=page.get_by_role("heading",
                                                            name="Pending privacy requests"))
    assert "access" in requests.inner_text() and "Overdue" in requests.inner_text()

    page.get_by_label("Period").select_option("30d")
    page.get_by_role("button", name="Show").click()
    page.wait_for_load_state()
    assert page.url.endswith("/app?period=30d")
    assert stat(page, "accepted") == "3"
    assert "the last 30 days" in (page.locator(".chart svg desc").text_content() or "")
    assert all(u.startswith(live.base_url) for u in page.requested), page.requested


def test_the_overview_of_another_account_and_of_a_role_without_privacy(
        live, services, api, account, second_account, clock) -> None:
    late_request(services, account[0], clock)
    send(api, "bob@example.com")
    add_user(services, second_account.account_id, email="zed@bee.test")
    add_user(services, account[0], email="ada@acme.test", role="analyst")
    with live.client() as other:
        http_log_in(other, "zed@bee.test")
        html = other.get("/app").text
        assert re.search(r'data-event="accepted">0<', html)
        assert "mg.acme.test" not in html and "Overdue" not in html
        assert "mg.bee.test" in html  # its own domain needs DNS work
    with live.client() as analyst:
        http_log_in(analyst, "ada@acme.test")
        html = analyst.get("/app", params={"period": "bogus"}).text
        assert re.search(r'data-event="accepted">1<', html)
        assert "Pending privacy requests" not in html  # not the Analyst's business
