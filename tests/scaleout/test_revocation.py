"""Revocations reach every node at once: two `mailhaven serve` processes on one database,
a key, an account or a domain ended through one, refused by the other within a second —
not after the caches' 10 s (API keys) or 30 s (the MX's domains)."""

from __future__ import annotations

import smtplib
import time
from collections.abc import Callable
from pathlib import Path

from mailhaven.accounts.service import KeyCache, account_keys, revoke_key
from mailhaven.inbound.service import DOMAIN_CACHE_SECONDS
from mailhaven.services import Services
from tests.scaleout.nodes import Cluster, Node
from tests.support import Tenant, create_tenant

# Well under the caches' lifetimes: a refusal this soon was not their expiry. (The promise is
# a second; the margin is for a loaded 2-core machine.)
SOON = 5.0
assert SOON < KeyCache.TTL and SOON < DOMAIN_CACHE_SECONDS


def _refused_within(check: Callable[[], bool], limit: float = 2 * KeyCache.TTL) -> float:
    """Seconds until `check` says refused (polled; at most `limit`)."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < limit, "still accepted"
        time.sleep(0.05)
    return time.monotonic() - started


def test_keys_accounts_and_domains_ended_on_one_node_are_refused_by_the_other_at_once(
        services: Services, tmp_path: Path) -> None:
    """One pair of nodes for the three checks: starting them is most of the time."""
    acme, bee, cee = (create_tenant(services, name=name, domain=f"mg.{name.lower()}.test")
                      for name in ("Acme", "Bee", "Cee"))
    a, b = Node(services, tmp_path / "a"), Node(services, tmp_path / "b")
    with Cluster(a, b):
        an_account_deleted_through_one_node_is_refused_by_the_other(a, b, acme)
        a_key_revoked_by_another_process_is_refused_by_both_nodes(services, a, b, bee)
        a_domain_deleted_through_one_node_receives_and_sends_no_more_on_the_other(a, b, cee)


def an_account_deleted_through_one_node_is_refused_by_the_other(a: Node, b: Node,
                                                               tenant: Tenant) -> None:
    with a.client(tenant.api_key) as on_a, b.client(tenant.api_key) as on_b:
        assert on_b.get("/v3/domains").status_code == 200  # B now holds the key in its cache
        deleted = on_a.delete("/v1/privacy/account", params={"confirm": tenant.account_id})
        assert deleted.status_code == 200, deleted.text
        took = _refused_within(lambda: on_b.get("/v3/domains").status_code == 401)
    assert took < SOON, f"node B took {took:.1f} s"


def a_key_revoked_by_another_process_is_refused_by_both_nodes(
        services: Services, a: Node, b: Node, tenant: Tenant) -> None:
    """The key revoked in this process (as the panel of a third node would)."""
    with a.client(tenant.api_key) as on_a, b.client(tenant.api_key) as on_b:
        assert on_a.get("/v3/domains").status_code == 200
        assert on_b.get("/v3/domains").status_code == 200
        with services.db.transaction() as session:
            key = account_keys(session, tenant.account_id)[0]
            revoke_key(session, tenant.account_id, key.id, clock=services.clock)
        took = _refused_within(lambda: on_a.get("/v3/domains").status_code == 401
                               and on_b.get("/v3/domains").status_code == 401)
    assert took < SOON, f"the nodes took {took:.1f} s"


def _rcpt(node: Node, address: str) -> int:
    with smtplib.SMTP("127.0.0.1", node.mx, timeout=30) as smtp:
        smtp.ehlo("sender.example.org")
        smtp.mail("someone@example.org")
        code, _ = smtp.rcpt(address)
        return code


def a_domain_deleted_through_one_node_receives_and_sends_no_more_on_the_other(
        a: Node, b: Node, tenant: Tenant) -> None:
    address = f"info@{tenant.domain}"
    assert _rcpt(b, address) == 250  # B's MX now holds the domain in its cache
    with a.client(tenant.api_key) as on_a, b.client(tenant.api_key) as on_b:
        assert on_a.delete(f"/v3/domains/{tenant.domain}").status_code == 200
        took = _refused_within(lambda: _rcpt(b, address) >= 500,
                               limit=2 * DOMAIN_CACHE_SECONDS)
        sent = on_b.post(f"/v3/{tenant.domain}/messages", data={
            "from": f"ops@{tenant.domain}", "to": "r@example.org", "subject": "hi",
            "text": "hello"})
    assert took < SOON, f"node B's MX took {took:.1f} s"
    assert sent.status_code == 404, sent.text
