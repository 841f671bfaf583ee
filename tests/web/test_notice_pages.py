"""The notice's pages: the version in force, any version with what changed from the one
before (escaped: no HTML of the file's own), the register, and the panel's banner of a
pending amendment with its objection form (an Admin's)."""

from __future__ import annotations

import dataclasses
import json
import logging

from sqlalchemy import select

from mailhaven.notices import service, subprocessors
from mailhaven.notices.models import NoticeObjection
from tests.support import LiveServer
from tests.web.helpers import add_user, csrf_of, http_log_in

DAY = 86400.0
TEXT = "# Our notice\n\nWe keep little.\n\n- logs: 30 days\n"
AMENDED = ("# Our notice\n\nWe keep little.\n\n- logs: 60 days\n- <script>alert(1)</script>\n")


def publish_two(services) -> None:  # type: ignore[no-untyped-def]
    now = services.clock.now()
    service.publish(services, version="2", text=TEXT, effective_at=now, significant=False)
    service.publish(services, version="3", text=AMENDED, effective_at=now + 30 * DAY,
                    significant=True, summary="Logs for 60 days.")


def test_the_pages_show_the_version_in_force_and_the_diff(services, live) -> None:  # type: ignore[no-untyped-def]
    with live.client() as client:
        assert "Version 1, in force now" in client.get("/privacy").text  # built in
        publish_two(services)
        current = client.get("/privacy").text
        assert "Version 2, in force now" in current and "<h2>Our notice</h2>" in current
        assert "<li>logs: 30 days</li>" in current
        upcoming = client.get("/privacy/versions/3").text
        assert "upcoming" in upcoming and "What changed from version 2" in upcoming
        assert "<del>- - logs: 30 days</del>" in upcoming
        assert "<ins>+ - logs: 60 days</ins>" in upcoming
        assert "<script>alert" not in upcoming and "&lt;script&gt;alert(1)" in upcoming
        assert 'href="/privacy/versions/1"' in upcoming  # the built-in one stays listed
        assert "Logs for 60 days." in upcoming
        assert client.get("/privacy/versions/9").status_code == 404
        assert "Version 1" in client.get("/privacy/versions/1").text
        assert "transfer log" in current and "us (home)" in current


def test_the_register_is_public_with_its_dates(services, live) -> None:  # type: ignore[no-untyped-def]
    with live.client() as client:
        assert "no sub-processors" in client.get("/privacy/subprocessors").text
        subprocessors.add(services, name="Relay <GmbH>", purpose="relay",
                          categories=["addresses"], location="Frankfurt, Germany",
                          region=None, transfer_mechanism="SCCs", contract_date="2026-11-01")
        shown = client.get("/privacy/subprocessors").text
        assert "Relay &lt;GmbH&gt;" in shown and "(upcoming)" in shown and "SCCs" in shown
        assert "Relay &lt;GmbH&gt;" in client.get("/privacy").text
        version = client.get("/privacy/versions/2").text  # the amendment: its register
        assert "Relay &lt;GmbH&gt; is added" in version
        assert "<li>Relay &lt;GmbH&gt;: relay; data: addresses;" in version


def test_an_empty_register_names_the_relay_host_in_use(services) -> None:  # type: ignore[no-untyped-def]
    relayed = dataclasses.replace(services, settings=services.settings.with_(
        relayhost=("relay.provider.test", 25)))
    with LiveServer(relayed) as server, server.client() as client:
        shown = client.get("/privacy/subprocessors").text
    assert "relay.provider.test" in shown and "should be listed" in shown
    assert "straight from them" not in shown


def test_the_panel_announces_a_pending_amendment_and_takes_an_objection(
        services, live, account) -> None:  # type: ignore[no-untyped-def]
    add_user(services, account[0], email="ann@acme.test", role="admin")
    add_user(services, account[0], email="al@acme.test", role="analyst")
    with live.client() as client:
        http_log_in(client, "ann@acme.test")
        assert "notice-banner" not in client.get("/app").text
        publish_two(services)
        for path in ("/app", "/app/domains", "/app/privacy"):
            page = client.get(path).text
            assert "Our privacy notice changes on" in page and "Logs for 60 days." in page
            assert 'href="/privacy/versions/3"' in page
        token = csrf_of(client.get("/app/domains").text)
        unticked = client.post("/app/privacy/objection", data={"csrf_token": token,
                                                               "version": "3"})
        assert unticked.status_code == 400  # a form error, no refusal
        assert "<h1>Please confirm</h1>" in unticked.text and "Not allowed" not in unticked.text
        forged = client.post("/app/privacy/objection", data={"version": "3", "confirm": "yes"})
        assert forged.status_code == 403
        done = client.post("/app/privacy/objection", data={
            "csrf_token": token, "version": "3", "confirm": "yes", "next": "/app/domains"})
        assert (done.status_code, done.headers["location"]) == (303, "/app/domains")
        assert "This account objected" in client.get("/app/domains").text
        with services.db.sessions() as session:
            assert session.scalar(select(NoticeObjection.version)) == "3"
        unnamed = client.post("/app/privacy/objection/withdraw", data={"csrf_token": token})
        assert unnamed.status_code == 400  # never whichever objection comes first
        assert "<h1>Please check the form</h1>" in unnamed.text
        assert "This account objected" in client.get("/app/domains").text
        withdrawn = client.post("/app/privacy/objection/withdraw",
                                data={"csrf_token": token, "version": "3"})
        assert withdrawn.status_code == 303
        assert "Object to this change" in client.get("/app").text
    with live.client() as analyst:
        http_log_in(analyst, "al@acme.test")
        page = analyst.get("/app").text
        assert "Our privacy notice changes on" in page and "Object to this change" not in page
        token = csrf_of(page)
        refused = analyst.post("/app/privacy/objection",
                               data={"csrf_token": token, "version": "3", "confirm": "yes"})
        assert refused.status_code == 403


def test_the_request_log_names_the_panel_account(services, live, account, caplog) -> None:  # type: ignore[no-untyped-def]
    """Objecting and withdrawing in the panel are logged with the account, as the API's
    requests are (not "account": null)."""
    add_user(services, account[0], email="ann@acme.test", role="admin")
    publish_two(services)
    caplog.set_level(logging.INFO, logger="mailhaven.http")
    with live.client() as client:
        http_log_in(client, "ann@acme.test")
        token = csrf_of(client.get("/app").text)
        assert client.post("/app/privacy/objection", data={
            "csrf_token": token, "version": "3", "confirm": "yes"}).status_code == 303
        assert client.post("/app/privacy/objection/withdraw", data={
            "csrf_token": token, "version": "3"}).status_code == 303
        client.get("/app")  # the same connection: the withdrawal's line is written by then
    logged = [json.loads(r.getMessage()) for r in caplog.records
              if r.name == "mailhaven.http" and '"kind": "request"' in r.getMessage()]
    posted = {line["route"]: line["account"] for line in logged if line["method"] == "POST"}
    assert posted["/app/privacy/objection"] == account[0]
    assert posted["/app/privacy/objection/withdraw"] == account[0]


def test_the_banner_in_a_browser(page, live, services, signed_in) -> None:  # type: ignore[no-untyped-def]
    publish_two(services)
    signed_in()
    page.goto(f"{live.base_url}/app")
    banner = page.get_by_role("region", name="Privacy notice change")
    assert "Logs for 60 days." in banner.inner_text()
    banner.get_by_label("I understand").check()
    banner.get_by_role("button", name="Object to this change").click()
    page.wait_for_load_state()
    assert "This account objected" in page.get_by_role(
        "region", name="Privacy notice change").inner_text()
    page.goto(f"{live.base_url}/privacy/versions/3")
    assert "logs: 60 days" in page.locator("ins").first.inner_text()
