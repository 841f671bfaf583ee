"""Stored messages: the `storage.url` of an event gives the message back, to its owner only."""

from __future__ import annotations

from mailhaven.accounts.service import create_account


def _stored_url(api, domain: str) -> str:  # type: ignore[no-untyped-def]
    reply = api.post(f"/v3/{domain}/messages", data={
        "from": f"Shop <shop@{domain}>", "to": "ann@example.org", "subject": "Receipt",
        "text": "Thanks for your order", "html": "<p>Thanks</p>", "v:order": "42"})
    assert reply.status_code == 200
    [event] = api.get(f"/v3/{domain}/events").json()["items"]
    return event["storage"]["url"]


def test_the_storage_url_returns_the_message(api, domain) -> None:
    url = _stored_url(api, domain)
    stored = api.get(url)
    assert stored.status_code == 200, stored.text
    body = stored.json()
    assert body["subject"] == "Receipt" and body["recipients"] == "ann@example.org"
    assert body["body-plain"].strip() == "Thanks for your order"
    assert body["body-html"].strip() == "<p>Thanks</p>"
    assert body["X-Mailgun-Variables"] == {"order": "42"}
    mime = api.get(url, headers={"Accept": "message/rfc2822"}).json()
    assert "Subject: Receipt" in mime["body-mime"]


def test_a_stored_message_is_404_for_other_accounts_and_unknown_keys(api, live, services,
                                                                     domain) -> None:
    url = _stored_url(api, domain)
    assert api.get(url.rsplit("/", 1)[0] + "/nope").json() == {"message": "Message not found"}
    with services.db.transaction() as session:
        other = create_account(session, services.vault, name="O", email="o@o.test")
    with live.client(other.api_key) as intruder:
        reply = intruder.get(url)
    assert reply.status_code == 404
