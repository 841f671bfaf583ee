"""Fairness between accounts: one account's big batch must not hold up another's mail."""

from __future__ import annotations

import asyncio
import json

from mailhaven.delivery import queue
from mailhaven.delivery.worker import DeliveryWorker
from tests.support import Sink, another_tenant, with_relay

CONCURRENCY = 20


def test_another_accounts_mail_goes_out_in_the_first_claim_after_a_2000_copy_batch(
        api, live, services, domain) -> None:
    for part in range(2):  # account A: 2,000 copies queued first (two batches of 1,000)
        people = {f"user{part}{i:03d}@example.org": {"n": str(i)} for i in range(1000)}
        reply = api.post(f"/v3/{domain}/messages", data={
            "from": f"News <news@{domain}>", "to": list(people), "subject": "Sale",
            "text": "Hello %recipient.n%", "recipient-variables": json.dumps(people)})
        assert reply.status_code == 200, reply.text
    with another_tenant(services, live) as bee:  # account B: one copy, queued after
        reply = bee.post("/v3/mg.bee.test/messages", data={
            "from": "Bee <hi@mg.bee.test>", "to": "carol@example.net",
            "subject": "Password reset", "text": "Your code is 1234"})
        assert reply.status_code == 200, reply.text

    with Sink() as sink:
        async def run() -> int:
            worker = DeliveryWorker(with_relay(services, sink), concurrency=CONCURRENCY)
            rounds = 0
            try:
                while not any(r.rcpt_tos == ["carol@example.net"] for r in sink.received):
                    assert rounds < 100, "B's copy was never delivered"
                    await worker.run_once()
                    rounds += 1
            finally:
                await worker.close()
            return rounds

        asyncio.run(run())
    order = [r.rcpt_tos[0] for r in sink.received]
    # B's copy was in the worker's first claim (CONCURRENCY copies), not after A's 2,000.
    assert order.index("carol@example.net") < CONCURRENCY, order.index("carol@example.net")
    assert len(order) <= 2 * CONCURRENCY  # and A's batch did not go out ahead of it


def test_a_claim_counts_what_the_worker_already_holds_of_each_account(
        api, live, services, account, domain) -> None:
    """A's slow copies fill the worker: its next free slots go to B, not to more of A."""
    api.post(f"/v3/{domain}/messages", data={
        "from": f"News <news@{domain}>", "to": [f"u{i}@example.org" for i in range(30)],
        "subject": "Sale", "text": "Hello"})
    with another_tenant(services, live) as bee:
        bee.post("/v3/mg.bee.test/messages", data={
            "from": "Bee <hi@mg.bee.test>", "to": [f"c{i}@example.net" for i in range(30)],
            "subject": "Hi", "text": "Hello"})

    def claim(limit: int, held: dict[str, int]) -> list[str]:
        jobs = queue.claim(services.db, services.vault, owner="w", now=services.clock.now(),
                           limit=limit, lease_seconds=60, held=held, capacity=20)
        return sorted(job.domain_name for job in jobs)

    assert claim(20, {}) == [domain] * 10 + ["mg.bee.test"] * 10
    # The worker still holds A's ten, and none of B's (those were quick): of 4 free slots,
    # B gets all four, though A's copies are older.
    assert claim(4, {account[0]: 10}) == ["mg.bee.test"] * 4
    # B alone would take all; what nobody else wants goes to whoever has mail due.
    assert claim(40, {account[0]: 10}) == [domain] * 20 + ["mg.bee.test"] * 16
