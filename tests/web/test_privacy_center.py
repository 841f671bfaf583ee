"""The recipients' privacy center: a request for an address and the domain that mailed it,
confirmed by a link mailed from that domain; the same answer whether or not anything is
held."""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

from tests.support import Sink, deliver_due
from tests.web.helpers import csrf_of


def _ask(page, base_url: str, right: str, email: str, domain: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{base_url}/privacy-center")
    page.get_by_label("What do you want?").select_option(right)
    page.get_by_label("Your e-mail address").fill(email)
    page.get_by_label("The domain that mailed you").fill(domain)
    page.get_by_role("button", name="Send me the link").click()
    page.wait_for_load_state()


def test_a_recipient_asks_for_their_data_confirms_by_mail_and_downloads_it(
        page, live, services, api, domain) -> None:
    sent = api.post(f"/v3/{domain}/messages", data={
        "from": f"news@{domain}", "to": "ann@example.org", "subject": "Spring sale",
        "text": "Hello"})
    assert sent.status_code == 200
    with Sink() as sink:
        deliver_due(services, sink)
        sink.received.clear()
        _ask(page, live.base_url, "access", "ann@example.org", domain)
        assert "Check your mail" in page.content()
        deliver_due(services, sink)
    [mail] = [r.message for r in sink.received]
    assert mail["Subject"] == "Confirm your privacy request"
    assert mail["From"] == f"Privacy <privacy@{domain}>" and mail["To"] == "ann@example.org"
    [token] = re.findall(r"/v1/privacy/verify/(\S+)", mail.get_content())

    page.goto(f"{live.base_url}/v1/privacy/verify/{token}")
    assert "Confirm your request" in page.content()
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_load_state()
    assert "Request completed" in page.content()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download your data").click()
    with zipfile.ZipFile(io.BytesIO(Path(download.value.path()).read_bytes())) as archive:
        exported = json.loads(archive.read("export.json"))
    assert exported["subject"]["kind"] == "recipient"
    assert any(exported["categories"].get("events") or [])
    [request] = api.get("/v1/privacy/requests").json()["items"]
    assert (request["type"], request["state"]) == ("access", "completed")
    assert all(u.startswith(live.base_url) for u in page.requested), page.requested


def test_the_answer_is_the_same_whether_or_not_data_is_held(live, services, api,
                                                            domain) -> None:
    with Sink() as sink, live.client() as client:
        token = csrf_of(client.get("/privacy-center").text)
        answers = [client.post("/privacy-center", data={
            "type": "erasure", "email": "nobody@example.org", "domain": name,
            "csrf_token": token}) for name in (domain, "not-a-customer.example")]
        deliver_due(services, sink)
    assert [a.status_code for a in answers] == [200, 200]
    bodies = [re.sub(r'value="[^"]+"', "", a.text) for a in answers]
    assert bodies[0] == bodies[1] and "Check your mail" in bodies[0]
    # Only the customer's domain mails a link; the other leaves nothing behind.
    assert [r.rcpt_tos for r in sink.received] == [["nobody@example.org"]]
    assert [r["state"] for r in api.get("/v1/privacy/requests").json()["items"]] == [
        "identity_unverified"]


def test_mistakes_are_shown_on_the_form(live) -> None:
    with live.client() as client:
        token = csrf_of(client.get("/privacy-center").text)
        no_domain = client.post("/privacy-center", data={
            "type": "objection", "email": "ann@example.org", "domain": "",
            "csrf_token": token})
        assert no_domain.status_code == 400 and "domain is required" in no_domain.text
        assert 'value="ann@example.org"' in no_domain.text
        bad_type = client.post("/privacy-center", data={
            "type": "everything", "email": "ann@example.org", "domain": "mg.acme.test",
            "csrf_token": token})
        assert bad_type.status_code == 400 and "type must be one of" in bad_type.text
        assert client.post("/privacy-center", data={
            "type": "access", "email": "ann@example.org",
            "domain": "mg.acme.test"}).status_code == 403  # no CSRF token
