"""`/app/webhooks`: URLs set per event type in the panel, a signed test POST to a real
endpoint on loopback, and the delivery history of real events."""

from __future__ import annotations

from mailhaven.webhooks.service import verify
from tests.support import Sink, WebhookReceiver, deliver_due, send_webhooks
from tests.web.helpers import add_user, csrf_of, http_log_in


def test_a_webhook_is_set_tested_and_its_deliveries_shown(page, live, services, api, domain,
                                                         signed_in) -> None:
    signed_in()
    with WebhookReceiver() as receiver, Sink() as sink:
        page.goto(f"{live.base_url}/app/webhooks")
        page.get_by_label("URLs for delivered").fill(receiver.url)
        page.get_by_role("button", name="Save delivered").click()
        page.wait_for_load_state()
        assert "Webhook delivered saved." in page.content()
        assert api.get(f"/v3/domains/{domain}/webhooks/delivered").json() == {
            "webhook": {"urls": [receiver.url]}}

        page.get_by_role("button", name=f"Send a test delivered event to {receiver.url}").click()
        page.wait_for_load_state()
        assert "answered HTTP 200" in page.locator(".flash").inner_text()
        [hook] = receiver.received
        key = api.get("/v5/accounts/http_signing_key").json()["http_signing_key"]
        signature = hook.json["signature"]
        assert verify(key, signature["timestamp"], signature["token"], signature["signature"])
        assert hook.json["event-data"]["event"] == "delivered"

        api.post(f"/v3/{domain}/messages", data={"from": f"news@{domain}",
                                                  "to": "ann@example.org", "subject": "Hi",
                                                  "text": "Hello"})
        deliver_due(services, sink)
        assert send_webhooks(services) == 1
    page.reload()
    history = page.locator("table").nth(1).locator("tbody tr")
    assert history.count() == 1
    assert "delivered" in history.inner_text() and "127.0.0.1" in history.inner_text()
    assert "sent" in history.inner_text()

    page.get_by_label("URLs for delivered").fill("ftp://example.com/hook")
    page.get_by_role("button", name="Save delivered").click()
    page.wait_for_load_state()
    assert "invalid URL scheme" in page.locator(".error").inner_text()
    page.get_by_label("URLs for delivered").fill("")
    page.get_by_role("button", name="Save delivered").click()
    page.wait_for_load_state()
    assert "Webhook delivered removed." in page.content()
    assert api.get(f"/v3/domains/{domain}/webhooks").json() == {"webhooks": {}}
    assert all(u.startswith(live.base_url) for u in page.requested), page.requested


def test_only_roles_that_manage_sending_change_webhooks(live, services, api, account,
                                                       domain) -> None:
    add_user(services, account[0], email="sue@acme.test", role="support")
    with live.client() as client:
        http_log_in(client, "sue@acme.test")
        shown = client.get("/app/webhooks")
        assert shown.status_code == 200 and "Save delivered" not in shown.text
        token = csrf_of(shown.text)
        refused = client.post(f"/app/webhooks/{domain}/delivered",
                              data={"csrf_token": token, "urls": "https://example.com/h"})
        assert refused.status_code == 403
        assert client.post(f"/app/webhooks/{domain}/delivered/test",
                           data={"csrf_token": token, "url": "x"}).status_code == 403
        assert client.post(f"/app/webhooks/{domain}/delivered",
                           data={"urls": "https://example.com/h"}).status_code == 403  # CSRF
    assert api.get(f"/v3/domains/{domain}/webhooks").json() == {"webhooks": {}}


def test_another_account_gets_404_for_our_domain(live, services, api, domain,
                                                 second_account) -> None:
    api.post(f"/v3/domains/{domain}/webhooks", data={"id": "opened",
                                                      "url": "https://hooks.acme.test/o"})
    add_user(services, second_account.account_id, email="bea@bee.test")
    with live.client() as client:
        http_log_in(client, "bea@bee.test")
        own = client.get("/app/webhooks")
        assert own.status_code == 200 and "hooks.acme.test" not in own.text
        assert client.get(f"/app/webhooks?domain={domain}").status_code == 404
        token = csrf_of(own.text)
        assert client.post(f"/app/webhooks/{domain}/opened",
                           data={"csrf_token": token, "urls": ""}).status_code == 404
        assert client.post(f"/app/webhooks/{domain}/opened/test",
                           data={"csrf_token": token,
                                 "url": "https://hooks.acme.test/o"}).status_code == 404
    assert "opened" in api.get(f"/v3/domains/{domain}/webhooks").json()["webhooks"]
