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


def _accepted_urls(api, domain: str) -> list[str]:  # type: ignore[no-untyped-def]
    reply = api.get(f"/v3/{domain}/events", params={"event": "accepted", "ascending": "yes"})
    return [event["storage"]["url"] for event in reply.json()["items"]]


def test_variables_that_are_not_a_json_object_read_as_none(api, domain) -> None:
    """An `h:X-Mailgun-Variables` is the client's text: the stored message still reads."""
    odd = ["notjson", "[1, 2]", "[" * 5000]  # the last too deep for the JSON parser
    for value in odd:
        reply = api.post(f"/v3/{domain}/messages", data={
            "from": f"Shop <shop@{domain}>", "to": "ann@example.org", "text": "Hi",
            "h:X-Mailgun-Variables": value})
        assert reply.status_code == 200, reply.text
    urls = _accepted_urls(api, domain)
    assert len(urls) == len(odd)
    for url in urls:
        stored = api.get(url)
        assert stored.status_code == 200, stored.text
        assert stored.json()["X-Mailgun-Variables"] == {}
        assert stored.json()["body-plain"].strip() == "Hi"


ODD_MIME = (b"From: Shop <shop@mg.acme.test>\r\nTo: ann@example.org\r\nSubject: Odd\r\n"
            b"X-Mailgun-Variables: notjson\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/alternative; boundary="b"\r\n\r\n'
            b"--b\r\nContent-Type: text/plain; charset=x-unknown\r\n\r\nplain \xff text\r\n"
            b"--b\r\nContent-Type: text/html; charset=x-unknown\r\n\r\n<p>\xc3\xa9t\xc3\xa9</p>\r\n"
            b"--b--\r\n")


def test_a_mime_message_in_an_unknown_charset_reads_with_replacement(api, domain) -> None:
    reply = api.post(f"/v3/{domain}/messages.mime", data={"to": "ann@example.org"},
                     files={"message": ("m.eml", ODD_MIME, "message/rfc822")})
    assert reply.status_code == 200, reply.text
    [url] = _accepted_urls(api, domain)
    stored = api.get(url)
    assert stored.status_code == 200, stored.text
    body = stored.json()
    assert body["subject"] == "Odd"
    assert body["body-plain"].strip() == "plain \ufffd text"
    assert body["body-html"].strip() == "<p>été</p>"
    assert body["X-Mailgun-Variables"] == {}
