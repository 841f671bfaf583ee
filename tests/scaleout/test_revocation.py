"""Revocations reach every node at once: two `mailhaven serve` processes on one database,
a key, an account or a domain ended through one, refused by the other within a second or
two — not after the caches' 10 s (API keys) or 30 s (the MX's domains). On PostgreSQL, a
node whose LISTEN connection was cut clears its caches when it is back, so what was revoked
while it was not listening is refused too."""

from __future__ import annotations

import smtplib
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from mailhaven.accounts.service import KeyCache, account_keys, revoke_key
from mailhaven.inbound.service import DOMAIN_CACHE_SECONDS
from mailhaven.services import Services
from mailhaven.storage.revocations import application_name
from tests.scaleout.nodes import Cluster, Node
from tests.support import Tenant, create_tenant

# What docs/operations.md promises ("within a second or two"); well under the caches'
# lifetimes, so a refusal this soon was not their expiry.
SOON = 2.0
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
    acme, bee, cee, dee = (create_tenant(services, name=name, domain=f"mg.{name.lower()}.test")
                           for name in ("Acme", "Bee", "Cee", "Dee"))
    a, b = Node(services, tmp_path / "a"), Node(services, tmp_path / "b")
    with Cluster(a, b):
        an_account_deleted_through_one_node_is_refused_by_the_other(a, b, acme)
        a_key_revoked_by_another_process_is_refused_by_both_nodes(services, a, b, bee)
        a_domain_deleted_through_one_node_receives_and_sends_no_more_on_the_other(a, b, cee)
        if not services.db.is_sqlite:
            a_key_revoked_while_a_node_was_not_listening_is_refused_when_it_is_back(
                services, b, dee)


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


def a_key_revoked_while_a_node_was_not_listening_is_refused_when_it_is_back(
        services: Services, b: Node, tenant: Tenant) -> None:
    """B's LISTEN connection is ended by the server (found by its application_name) and B
    kept from connecting again until the key is revoked: the NOTIFY reaches no one of B's.
    Back, B clears its caches: the key is refused before its cached entry would expire."""
    url = services.db.engine.url
    database = url.database  # not connectable while B is kept out: the server's own instead
    conninfo = url.set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False)
    assert b.process is not None
    with b.client(tenant.api_key) as on_b, psycopg.connect(conninfo, autocommit=True) as admin:
        assert on_b.get("/v3/domains").status_code == 200  # B now holds the key in its cache
        cached = time.monotonic()
        admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        try:
            ended = admin.execute(
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity"
                " WHERE datname = %s AND application_name = %s",
                (database, application_name(b.process.pid))).fetchall()
            assert ended == [(True,)], "B's LISTEN connection not found"
            with services.db.transaction() as session:  # a connection of the pool's
                key = account_keys(session, tenant.account_id)[0]
                revoke_key(session, tenant.account_id, key.id, clock=services.clock)
        finally:
            admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        _refused_within(lambda: on_b.get("/v3/domains").status_code == 401)
    assert time.monotonic() - cached < KeyCache.TTL, "refused only as the cache expired"
    assert "listening again; caches cleared" in b.output()
