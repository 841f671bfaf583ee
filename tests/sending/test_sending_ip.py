"""Choosing the sending IP (Mailgun's dedicated IPs and pools) is refused with a clear 400
until Mailhaven has IP pools — never silently ignored (issue 12)."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from mailhaven.sending.request import SENDING_IP_UNSUPPORTED


def _queued(api, domain: str) -> list[dict]:  # type: ignore[no-untyped-def]
    return [e for e in api.get(f"/v3/{domain}/events").json()["items"]
            if e["event"] == "accepted"]


@pytest.mark.parametrize("field", ["o:sending-ip", "o:sending-ip-pool",
                                   "h:X-Mailgun-Sending-Ip", "h:X-Mailgun-Sending-Ip-Pool"])
def test_a_send_that_chooses_its_ip_is_refused_and_nothing_is_queued(api, domain,
                                                                     field: str) -> None:
    form = {"from": f"news@{domain}", "to": "ann@example.com", "subject": "Hi", "text": "t",
            field: "198.51.100.7"}
    for reply in (api.post(f"/v3/{domain}/messages", data=form),
                  api.post(f"/v3/{domain}/messages", data=form, files={"x": ("", b"")})):
        assert (reply.status_code, reply.json()) == (
            400, {"message": SENDING_IP_UNSUPPORTED.format(field)})
    assert _queued(api, domain) == []


def test_a_mime_send_that_chooses_its_pool_is_refused(api, domain) -> None:
    mime = EmailMessage()
    mime["From"], mime["To"], mime["Subject"] = f"news@{domain}", "ann@example.com", "Hi"
    mime.set_content("t")
    reply = api.post(f"/v3/{domain}/messages.mime",
                     data={"to": "ann@example.com", "o:sending-ip-pool": "pool-1"},
                     files={"message": ("message.mime", mime.as_bytes(), "message/rfc822")})
    assert (reply.status_code, reply.json()) == (
        400, {"message": SENDING_IP_UNSUPPORTED.format("o:sending-ip-pool")})
    assert _queued(api, domain) == []


def test_an_empty_sending_ip_is_as_if_not_given(api, domain) -> None:
    reply = api.post(f"/v3/{domain}/messages", data={
        "from": f"news@{domain}", "to": "ann@example.com", "subject": "Hi", "text": "t",
        "o:sending-ip": ""})
    assert reply.status_code == 200, reply.text
    assert len(_queued(api, domain)) == 1
