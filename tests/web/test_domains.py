"""Setting up sending in the panel: a domain added, its records copied and verified against
a real DNS server, a key made and read once, a message sent with it, the key revoked; and
the pages' refusals (another account's domain, roles, CSRF, validation)."""

from __future__ import annotations

import dataclasses

import httpx
from playwright.sync_api import Page
from sqlalchemy import select

from mailhaven.audit.models import AuditEntry
from mailhaven.domains.service import expected_records, owned_domain
from mailhaven.services import Services
from tests.delivery.sinks import DnsServer
from tests.support import LiveServer
from tests.web.helpers import add_user, csrf_of, http_log_in, log_in

NAME = "mg.flow.test"


def _zone(services: Services, account_id: str, name: str) -> dict[str, dict[str, list[str]]]:
    """Everything the domain asks for, as its DNS would publish it."""
    with services.db.sessions() as session:
        domain = owned_domain(session, account_id, name)
        wanted = expected_records(domain, services.settings.hostname)
    zone: dict[str, dict[str, list[str]]] = {}
    for record in wanted:
        value = {"TXT": lambda v: " ".join(f'"{v[i:i + 255]}"' for i in range(0, len(v), 255)),
                 "MX": lambda v: f"10 {v}.", "CNAME": lambda v: f"{v}."}[record.record_type]
        zone.setdefault(record.name, {}).setdefault(record.record_type, []).append(
            value(record.value))
    return zone


def test_a_domain_is_added_verified_and_sent_from_with_a_key_made_in_the_panel(
        page: Page, services, account) -> None:  # type: ignore[no-untyped-def]
    add_user(services, account[0], email="ann@acme.test", role="admin")
    with DnsServer({}) as dns_server:
        resolving = dataclasses.replace(
            services, settings=services.settings.with_(dns_nameserver=dns_server.address))
        with LiveServer(resolving) as live:
            base = live.base_url
            page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
            log_in(page, base, "ann@acme.test")

            # Add the domain: its records, each with a copy button (JS shows them).
            page.goto(f"{base}/app/domains")
            page.get_by_label("Domain name").fill(NAME.upper())
            page.get_by_role("button", name="Add domain").click()
            page.wait_for_load_state()
            assert page.url == f"{base}/app/domains/{NAME}"
            assert f"Domain {NAME} added" in page.locator(".flash").inner_text()
            spf = page.locator("#sending-value-1")
            assert spf.inner_text() == "v=spf1 a:mx.mailhaven.test ~all"
            rows = page.locator("tbody tr")
            assert "unverified" in rows.first.inner_text()
            copy = page.get_by_role("button", name="Copy v=spf1 a:mx.mailhaven.test ~all")
            copy.focus()
            page.keyboard.press("Enter")  # by keyboard
            assert page.evaluate("navigator.clipboard.readText()") == spf.inner_text()
            assert copy.inner_text() == "Copied"

            # Publish and verify now: every record checks out, the domain is active.
            dns_server.zone.update({f"{n}.": t for n, t in
                                    _zone(services, account[0], NAME).items()})
            page.get_by_role("button", name="Verify now").click()
            page.wait_for_load_state()
            assert page.locator(".flash").inner_text() == "Verified: the domain is active."
            assert page.locator("h1 .badge").inner_text() == "active"
            states = page.locator("tbody tr td:nth-child(4)").all_inner_texts()
            assert states[:4] == ["valid"] * 4  # SPF, DKIM, tracking CNAME, MX

            # A key, shown once on the page that made it — not in the URL nor a cookie.
            page.goto(f"{base}/app/keys")
            page.get_by_label("Description").fill("flow test")
            page.get_by_label("Role").select_option("developer")
            page.get_by_role("button", name="Create key").click()
            page.wait_for_load_state()
            api_key = page.locator("#new-key-value").inner_text()
            assert api_key.startswith("key-") and api_key not in page.url
            assert all(api_key not in c["value"] for c in page.context.cookies())
            message = {"from": f"Acme <news@{NAME}>", "to": "bob@example.org",
                       "subject": "Hello", "text": "Hi"}
            with httpx.Client(base_url=base, auth=("api", api_key)) as client:
                sent = client.post(f"/v3/{NAME}/messages", data=message)
                assert sent.status_code == 200, sent.text
                assert sent.json()["message"] == "Queued. Thank you."
            page.goto(f"{base}/app/keys")
            assert api_key not in page.content()  # once only
            row = page.locator("tr", has_text="flow test")
            assert "Developer" in row.inner_text() and "Ann Admin" in row.inner_text()

            # Revoked: the next send is refused.
            row.get_by_role("button", name="Revoke").click()
            page.wait_for_load_state()
            assert "Key revoked" in page.locator(".flash").inner_text()
            with httpx.Client(base_url=base, auth=("api", api_key)) as client:
                refused = client.post(f"/v3/{NAME}/messages", data=message)
            assert refused.status_code == 401
            assert all(u.startswith(base) for u in page.requested), page.requested

    with services.db.sessions() as session:
        actions = [e.action for e in session.scalars(select(AuditEntry).order_by(AuditEntry.id))
                   if e.actor.startswith("user:")]
    assert [a for a in actions if a != "web.login"] == [
        "web.domain.added", "web.domain.verified", "web.key.created", "web.key.revoked"]


def test_tracking_dkim_rotation_and_deletion(page: Page, live, services, account,
                                             signed_in) -> None:  # type: ignore[no-untyped-def]
    signed_in(role="developer")
    page.goto(f"{live.base_url}/app/domains")
    page.get_by_label("Domain name").fill(NAME)
    page.get_by_role("button", name="Add domain").click()
    page.wait_for_load_state()

    page.get_by_label("Track opens").check()
    page.get_by_label("Track clicks").select_option("htmlonly")
    page.get_by_role("button", name="Save tracking").click()
    page.wait_for_load_state()
    assert page.locator(".flash").inner_text() == "Tracking settings saved."
    assert page.get_by_label("Track opens").is_checked()
    assert page.get_by_label("Track clicks").input_value() == "htmlonly"
    assert not page.get_by_label("Add unsubscribe links").is_checked()
    with live.client(account[1]) as api:  # the API's view of the same settings
        tracking = api.get(f"/v3/domains/{NAME}/tracking").json()["tracking"]
    assert tracking["open"]["active"] is True and tracking["click"]["active"] == "htmlonly"

    page.get_by_label("Algorithm").select_option("ed25519")
    page.get_by_role("button", name="Rotate DKIM key").click()
    page.wait_for_load_state()
    assert "New DKIM key made" in page.locator(".flash").inner_text()
    assert "pending" in page.locator("tr", has_text="ed25519-sha256").inner_text()

    page.get_by_role("link", name="Delete this domain…").click()
    page.get_by_label("Type the domain's name to confirm").fill("mg.other.test")
    page.get_by_role("button", name="Delete domain").click()
    page.wait_for_load_state()
    assert "Type the domain's name to confirm" in page.locator(".error").inner_text()
    page.get_by_label("Type the domain's name to confirm").fill(NAME)
    page.get_by_role("button", name="Delete domain").click()
    page.wait_for_load_state()
    assert page.url == f"{live.base_url}/app/domains"
    assert f"Domain {NAME} deleted." in page.locator(".flash").inner_text()
    assert page.get_by_role("link", name=NAME).count() == 0
    assert all(u.startswith(live.base_url) for u in page.requested), page.requested


def test_the_api_s_refusals_show_on_the_page(live, services, account, domain) -> None:
    add_user(services, account[0], email="ann@acme.test")
    with live.client() as client:
        http_log_in(client, "ann@acme.test")
        token = csrf_of(client.get("/app/domains").text)
        for name, error in (("not a name", "&#39;not a name&#39; is not a valid domain name"),
                            (domain, f"The domain name {domain} is already taken"),
                            ("", "Missing mandatory parameter: name")):
            answer = client.post("/app/domains", data={"name": name, "csrf_token": token})
            assert answer.status_code == 400 and error in answer.text


def test_another_account_s_domain_is_not_found(live, services, account, domain,
                                               second_account) -> None:  # type: ignore[no-untyped-def]
    add_user(services, account[0], email="ann@acme.test")
    theirs = second_account.domain
    with live.client() as client:
        http_log_in(client, "ann@acme.test")
        assert client.get(f"/app/domains/{domain}").status_code == 200
        token = csrf_of(client.get("/app/domains").text)
        assert client.get(f"/app/domains/{theirs}").status_code == 404
        assert client.get(f"/app/domains/{theirs}/delete").status_code == 404
        for action, data in (("verify", {}), ("dkim", {"algorithm": "rsa"}),
                             ("tracking", {"open": "yes"}), ("delete", {"confirm": theirs})):
            answer = client.post(f"/app/domains/{theirs}/{action}",
                                 data={**data, "csrf_token": token})
            assert answer.status_code == 404, action
        assert theirs not in client.get("/app/domains").text
    with live.client(second_account.api_key) as api:  # still theirs, untouched
        assert api.get(f"/v3/domains/{theirs}/tracking").json()["tracking"]["open"][
            "active"] is False


def test_roles_and_csrf(live, services, account, domain) -> None:
    add_user(services, account[0], email="ann@acme.test", role="analyst")
    with live.client() as client:
        http_log_in(client, "ann@acme.test")
        listed = client.get("/app/domains")
        assert listed.status_code == 200 and domain in listed.text
        assert 'action="/app/domains"' not in listed.text  # no form to add one
        detail = client.get(f"/app/domains/{domain}")
        assert detail.status_code == 200 and "/verify" not in detail.text
        token = csrf_of(listed.text)
        assert client.post("/app/domains", data={"name": "mg.new.test",
                                                 "csrf_token": token}).status_code == 403
        assert client.post(f"/app/domains/{domain}/delete",
                           data={"confirm": domain, "csrf_token": token}).status_code == 403
    add_user(services, account[0], email="dev@acme.test", role="developer")
    with live.client() as client:
        http_log_in(client, "dev@acme.test")
        assert client.post("/app/domains", data={"name": "mg.new.test"}).status_code == 403
        assert client.post(f"/app/domains/{domain}/delete",
                           data={"confirm": domain, "csrf_token": "forged"}).status_code == 403
        assert client.get(f"/app/domains/{domain}").status_code == 200  # not deleted
