"""Rendering is isolated: one account's heavy messages hold up neither the API nor others'
mail, and a render past its budget is stopped and fails its copy for good."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from tests.delivery.sinks import events, outcomes, send
from tests.support import LiveServer, Sink, another_tenant, deliver_due

# A legitimate message whose stored view is slow to build: 1,000 recipients in its To field,
# which the email package parses in time that grows faster than its length (~0.4 s here).
CROWD = [f"Recipient Number {i} <recipient.number.{i}@example-{i}.org>" for i in range(1000)]


def _storage_url(client, domain: str) -> str:  # type: ignore[no-untyped-def]
    [accepted] = client.get(f"/v3/{domain}/events", params={"event": "accepted",
                                                            "limit": 1}).json()["items"]
    return accepted["storage"]["url"]


# Threads and processes, not the database, are what is shared here: SQLite alone.
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_tenants_heavy_stored_message_gets_hold_up_no_other_tenant(
        api, live, services, account, domain) -> None:
    reply = api.post(f"/v3/{domain}/messages", data={
        "from": f"News <news@{domain}>", "to": CROWD, "subject": "All", "text": "Hello"})
    assert reply.status_code == 200, reply.text
    heavy = _storage_url(api, domain)
    answered: list[tuple[float, int]] = []

    def get_heavy() -> None:
        with live.client(account[1]) as client:
            status = client.get(heavy).status_code
            answered.append((time.monotonic(), status))

    with another_tenant(services, live) as bee:
        send(bee, "mg.bee.test", {"from": "Bee <hi@mg.bee.test>"})
        mine = _storage_url(bee, "mg.bee.test")
        # A asks for its heavy message 10 times at once: more than the API has threads.
        getters = [threading.Thread(target=get_heavy) for _ in range(10)]
        for getter in getters:
            getter.start()
        time.sleep(0.5)  # they are rendering now
        # B's send and events are answered while A's GETs wait for renderers, not after.
        send(bee, "mg.bee.test", {"from": "Bee <hi@mg.bee.test>"})
        assert len(events(bee, "mg.bee.test")) == 2
        others_answered = time.monotonic()
        # B's own stored message takes the next free renderer, ahead of A's waiting GETs.
        assert bee.get(mine).status_code == 200
        mine_answered = time.monotonic()
        for getter in getters:
            getter.join()
    assert [status for _, status in answered] == [200] * 10
    assert sum(at > others_answered for at, _ in answered) >= 5
    # ...not after them: most of A's were still to come (in turn, B's would have been last).
    assert sum(at > mine_answered for at, _ in answered) >= 5


BIG_HTML = ("<p>" + "é" * 1000 + "</p>\n") * 1000  # 2 MB, quoted-printable: ~0.1 s to render
TIGHT = 0.01  # seconds: a render budget that message cannot meet


def test_a_render_past_its_budget_fails_its_copy_for_good_and_the_rest_goes_on(
        api, live, services, account, domain) -> None:
    send(api, domain, {"to": "ann@example.org", "subject": "Huge", "html": BIG_HTML})
    with another_tenant(services, live) as bee:
        send(bee, "mg.bee.test", {"from": "Bee <hi@mg.bee.test>", "to": "carol@example.net"})
        tight = dataclasses.replace(services, settings=services.settings.with_(
            render_seconds=TIGHT))
        with Sink() as sink:
            deliver_due(tight, sink)
            assert [r.rcpt_tos for r in sink.received] == [["carol@example.net"]]
            [failed] = outcomes(api, domain)
            status = failed["delivery-status"]
            assert (failed["event"], failed["severity"], failed["reason"]) == (
                "failed", "permanent", "generic")
            assert (status["code"], status["attempt-no"]) == (554, 1)
            assert status["message"] == f"Message could not be rendered within {TIGHT:g} seconds"
            assert api.get(f"/v3/{domain}/bounces").json()["items"] == []  # not Ann's fault
            # The stored message's GET is cut off the same way, with a clear error.
            with LiveServer(tight) as server, server.client(account[1]) as tight_api:
                reply = tight_api.get(_storage_url(api, domain).replace(live.base_url,
                                                                        server.base_url))
            assert reply.status_code == 413, reply.text
            assert reply.json() == {
                "message": f"Message could not be rendered within {TIGHT:g} seconds"}
            # The killed renderer was replaced: the next message renders (normal budget).
            send(api, domain, {"to": "dan@example.org", "html": "<p>Hi Dan</p>"})
            deliver_due(services, sink)
            assert sink.received[-1].rcpt_tos == ["dan@example.org"]
