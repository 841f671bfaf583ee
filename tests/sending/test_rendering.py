"""Rendering is isolated: one account's heavy messages hold up neither the API nor others'
mail, and a render past its budget is stopped and fails its copy for good."""

from __future__ import annotations

import threading
import time

import pytest

from tests.delivery.sinks import events, send
from tests.support import another_tenant

# A legitimate message that is slow to render: 1,000 recipients in its To field, which the
# email package folds in time that grows faster than its length (about a second here).
CROWD = [f"Recipient Number {i} <recipient.number.{i}@example-{i}.org>" for i in range(1000)]
LOOSE = 2.0  # seconds: what the other account's calls may take while those render


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
        took = {}
        for name, call in {
            "send": lambda: send(bee, "mg.bee.test", {"from": "Bee <hi@mg.bee.test>"}),
            "events": lambda: events(bee, "mg.bee.test"),
        }.items():
            started = time.monotonic()
            call()
            took[name] = time.monotonic() - started
        # B's own stored message takes the next free renderer, ahead of A's waiting GETs.
        assert bee.get(mine).status_code == 200
        mine_answered = time.monotonic()
        for getter in getters:
            getter.join()
    assert [status for _, status in answered] == [200] * 10
    assert max(took.values()) < LOOSE, took
    # ...not after them: most of A's were still to come (in turn, B's would have been last).
    assert sum(at > mine_answered for at, _ in answered) >= 5
