"""The holder's privacy center (/app/privacy): their data to download, the requests of the
account's recipients with deadlines and overdue marks, consents, the record of processing,
the audit log's verification, the sub-processors — and only the account's own."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

from sqlalchemy import func, select

from mailhaven.audit.models import AuditEntry
from mailhaven.exports.registry import ACCOUNT_HOLDER
from tests.audit.tampering import edit_details
from tests.web.helpers import add_user, csrf_of, http_log_in


def _recipient_asks(live, domain: str, right: str = "objection") -> None:  # type: ignore[no-untyped-def]
    with live.client() as anonymous:
        asked = anonymous.post("/v1/privacy/requests", data={
            "type": right, "email": "ann@example.org", "domain": domain})
        assert asked.status_code == 202


def test_the_holder_downloads_their_data_and_sees_requests_and_deadlines(
        page, live, services, api, domain, clock, signed_in) -> None:
    _recipient_asks(live, domain)
    assert api.post("/v1/privacy/consents", data={
        "email": "bob@example.org", "purpose": "marketing-email", "granted": "yes",
        "source": "signup-form"}).status_code == 201
    clock.advance(35 * 86400)  # past the month the recipient's request had
    signed_in(role="admin")
    page.goto(f"{live.base_url}/app/privacy")
    rows = page.locator("#requests ~ .table-wrap tbody tr")
    assert rows.count() == 1
    row = rows.first.inner_text()
    assert "objection" in row and "a recipient" in row and "overdue" in row
    [due] = api.get("/v1/privacy/requests").json()["items"]
    assert due["due_at"][:10] in row
    consents = page.locator("#consents ~ .table-wrap").first.inner_text()
    assert "marketing email\t1\t0" in consents
    page.get_by_role("button", name="Verify the chain").click()
    page.wait_for_load_state()
    assert "chain intact" in page.locator("#audit ~ p[role=status]").inner_text()
    assert "website visitor" in page.locator("#inventory ~ .table-wrap").inner_text()
    assert "None" in page.locator("#subprocessors + p").inner_text()

    with page.expect_download() as download:
        page.get_by_role("button", name="Download my data").click()
    assert download.value.suggested_filename == "account-export.zip"
    archive = zipfile.ZipFile(io.BytesIO(Path(download.value.path()).read_bytes()))
    with archive:
        exported = json.loads(archive.read("export.json"))
    assert exported["subject"]["kind"] == ACCOUNT_HOLDER
    page.goto(f"{live.base_url}/app/privacy")
    listed = page.locator("#requests ~ .table-wrap tbody").inner_text()
    assert "access" in listed and "the account holder" in listed and "completed" in listed
    assert all(u.startswith(live.base_url) for u in page.requested), page.requested


def test_a_role_without_privacy_sees_no_requests_and_cannot_export(live, services, account,
                                                                  domain) -> None:
    _recipient_asks(live, domain)
    add_user(services, account[0], email="ana@acme.test", role="analyst")
    with live.client() as client:
        http_log_in(client, "ana@acme.test")
        shown = client.get("/app/privacy")
        assert shown.status_code == 200
        assert "does not allow seeing the account's privacy requests" in shown.text
        assert "objection" not in shown.text
        refused = client.post("/app/privacy/export", data={"csrf_token": csrf_of(shown.text)})
        assert refused.status_code == 403
        assert client.get("/app/privacy/inventory.md").text.startswith("# Record of processing")


def test_another_accounts_requests_are_not_shown(live, services, account, domain,
                                                  second_account) -> None:
    _recipient_asks(live, domain)
    add_user(services, second_account.account_id, email="bee@bee.test", role="admin")
    with live.client() as client:
        http_log_in(client, "bee@bee.test")
        shown = client.get("/app/privacy")
        assert "No requests so far" in shown.text and "objection" not in shown.text
        exported = client.post("/app/privacy/export", data={"csrf_token": csrf_of(shown.text)})
        assert exported.status_code == 200
        with zipfile.ZipFile(io.BytesIO(exported.content)) as archive:
            document = json.loads(archive.read("export.json"))
    assert document["subject"]["kind"] == ACCOUNT_HOLDER
    assert account[0] not in json.dumps(document)


def test_the_panel_page_needs_a_login(live) -> None:
    with live.client() as client:
        assert client.get("/app/privacy").status_code == 303
        assert client.post("/app/privacy/export").status_code in (303, 403)


def test_a_tampered_audit_log_is_shown_as_such(live, services, account, domain) -> None:
    _recipient_asks(live, domain)
    add_user(services, account[0], email="ann@acme.test", role="billing")
    with services.db.sessions() as session:
        first = session.scalar(select(func.min(AuditEntry.id)))
    edit_details(services, first)
    with live.client() as client:
        http_log_in(client, "ann@acme.test")
        assert "Verify the chain" in client.get("/app/privacy").text
        checked = client.get("/app/privacy", params={"verify": "audit"})
    assert "The audit log does not verify" in checked.text
    assert f"row {first}: changed" in checked.text
