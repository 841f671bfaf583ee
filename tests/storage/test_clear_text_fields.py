"""Fields a customer fills that are kept in clear — a tag's description, a webhook's URL and
description — refuse an email address with Mailgun's 400 shape, and keep nothing of it
(issue 11: only the vault can erase personal data)."""

from __future__ import annotations

ADDRESS = "zelda@example.com"


def test_a_tag_description_or_name_with_an_address_is_refused(api, domain) -> None:
    reply = api.put(f"/v3/{domain}/tags/weekly", data={"description": f"for {ADDRESS}"})
    assert reply.status_code == 400
    assert "description can't hold an email address" in reply.json()["message"]
    reply = api.put(f"/v3/{domain}/tags/customer:{ADDRESS}", data={"description": "x"})
    assert reply.status_code == 400
    assert "tag can't hold an email address" in reply.json()["message"]
    assert ADDRESS not in api.get(f"/v3/{domain}/tags").text
    assert api.put(f"/v3/{domain}/tags/weekly", data={"description": "news"}).status_code == 200


def test_a_webhook_url_with_an_address_is_refused_on_every_dialect(api, domain) -> None:
    url = f"https://hooks.example.net/in?owner={ADDRESS}"
    v3 = api.post(f"/v3/domains/{domain}/webhooks", data={"id": "delivered", "url": url})
    v4 = api.post(f"/v4/domains/{domain}/webhooks", data={"event_types": "delivered",
                                                           "url": url})
    v1 = api.post("/v1/webhooks", data={"url": url, "event_types": "delivered"})
    for reply in (v3, v4, v1):
        assert reply.status_code == 400, reply.text
        assert "can't hold an email address" in reply.text
    assert ADDRESS not in api.get(f"/v3/domains/{domain}/webhooks").text
    assert ADDRESS not in api.get("/v1/webhooks").text


def test_a_webhook_description_with_an_address_is_refused(api) -> None:
    reply = api.post("/v1/webhooks", data={"url": "https://hooks.example.net/in",
                                           "event_types": "delivered",
                                           "description": f"owner {ADDRESS}"})
    assert reply.status_code == 400
    assert "description can't hold an email address" in reply.json()["message"]
    created = api.post("/v1/webhooks", data={"url": "https://hooks.example.net/in",
                                             "event_types": "delivered",
                                             "description": "billing"})
    assert created.status_code == 200, created.text
    hook = created.json()["webhook_id"]
    reply = api.put(f"/v1/webhooks/{hook}", data={"description": f"owner {ADDRESS}"})
    assert reply.status_code == 400
    assert ADDRESS not in api.get(f"/v1/webhooks/{hook}").text
