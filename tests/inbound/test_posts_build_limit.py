"""A route POST whose body can't be built within its budget (a hostile message) is a
failed attempt, retried on the schedule and then given up: never claimed forever, never
built on the threads the API and the MX share. The stored-message GET is cut off too."""

from __future__ import annotations

import asyncio
import dataclasses
from urllib.parse import urlsplit

from mailhaven.inbound.posts import RoutePostSender
from mailhaven.routes.expressions import RouteAction
from mailhaven.webhooks.sender import RETRY_DELAYS
from tests.inbound.test_actions_support import a_message, run_actions, store_inbound
from tests.support import LiveServer, WebhookReceiver

RECIPIENT = "support@mg.acme.test"
ROUTE = "5f1d2c3b4a5968778695a4b3"
TIGHT = 1e-9  # seconds: no message can be built within it


def send_tight(services) -> int:  # type: ignore[no-untyped-def]
    async def run() -> int:
        sender = RoutePostSender(services, build_seconds=TIGHT)
        try:
            return await sender.run_once()
        finally:
            await sender.close()
    return asyncio.run(run())


def test_a_post_not_built_in_time_is_an_attempt_and_ends_given_up(
        services, clock, account, domain, api) -> None:
    key = store_inbound(services, account[0], domain, a_message(), to=[RECIPIENT])
    with WebhookReceiver() as receiver:
        run_actions(services, key, RECIPIENT, [RouteAction(ROUTE, "forward", receiver.url)])
        assert send_tight(services) == 1
        item, = api.get(f"/v1/admin/domains/{domain}/route_posts").json()["items"]
        assert item["status"] == "pending" and len(item["attempts"]) == 1
        assert item["attempts"][0]["error"].startswith("the POST could not be built")
        for delay in RETRY_DELAYS:
            clock.advance(delay)
            assert send_tight(services) == 1
        clock.advance(86400)
        assert send_tight(services) == 0  # given up: never claimed again
    assert receiver.received == []
    item, = api.get(f"/v1/admin/domains/{domain}/route_posts").json()["items"]
    assert item["status"] == "gave-up" and len(item["attempts"]) == len(RETRY_DELAYS) + 1


def test_a_stored_messages_view_past_the_render_budget_is_a_clear_error(
        services, account, domain, api) -> None:
    key = store_inbound(services, account[0], domain, a_message(), to=[RECIPIENT])
    path = f"/v3/domains/{domain}/messages/{key}"
    assert api.get(path).json()["subject"] == "Order 77"  # the normal budget
    tight = dataclasses.replace(services, settings=services.settings.with_(
        render_seconds=TIGHT))
    with LiveServer(tight) as server, server.client(account[1]) as tight_api:
        reply = tight_api.get(urlsplit(path).path)
    assert reply.status_code == 413, reply.text
    assert reply.json() == {"message": f"Message could not be rendered within {TIGHT:g} seconds"}
