"""The scale-out topology on one PostgreSQL: two API nodes (`serve`) and two workers
(`worker`), each a process with a data directory of its own. Mail sent through both nodes
reaches the recipient once; the periodic jobs run once among the processes; behind a proxy,
a node sees the client's address only when it trusts the proxy."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, text

from mailhaven.accounts.throttle import AUTH_FAILURES_PER_MINUTE
from mailhaven.config import Settings
from mailhaven.delivery.models import Delivery
from mailhaven.models import metadata
from mailhaven.services import Services
from mailhaven.storage.periodic import JobRun
from tests.scaleout.nodes import Cluster, Node
from tests.support import Sink, Tenant, create_tenant

MESSAGES = 60
DEADLINE_SECONDS = 120
# Every recorded start of a periodic job, kept by a trigger of the test's own
STARTS = """
CREATE TABLE test_job_starts (name text NOT NULL, started_at double precision NOT NULL);
CREATE FUNCTION test_job_started() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.last_started_at IS NOT NULL
       AND NEW.last_started_at IS DISTINCT FROM OLD.last_started_at THEN
        INSERT INTO test_job_starts VALUES (NEW.name, NEW.last_started_at);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER test_job_started AFTER UPDATE ON job_runs
    FOR EACH ROW EXECUTE FUNCTION test_job_started();
"""
UNDO_STARTS = """
DROP TRIGGER IF EXISTS test_job_started ON job_runs;
DROP FUNCTION IF EXISTS test_job_started();
DROP TABLE IF EXISTS test_job_starts;
"""
CLIENT, OTHER_CLIENT = "203.0.113.7", "198.51.100.9"  # in networks of their own


@dataclass
class Topology:
    services: Services
    tenant: Tenant
    sink: Sink
    trusting: Node  # its proxy (loopback) is trusted, as by default
    direct: Node  # MAILHAVEN_FORWARDED_ALLOW_IPS="": no proxy is trusted
    workers: tuple[Node, Node]


@pytest.fixture(scope="module")
def topology(pg_database: str, tmp_path_factory: pytest.TempPathFactory,
             ) -> Iterator[Topology]:
    folder: Path = tmp_path_factory.mktemp("scaleout")
    settings = Settings(data_dir=folder, database_url=pg_database,
                        hostname="mx.mailhaven.test", require_verified_domains=False)
    services = Services.start(settings, migrate=False)
    try:
        with services.db.engine.begin() as conn:
            conn.execute(text(UNDO_STARTS))
            conn.execute(text(STARTS))
        tenant = create_tenant(services, name="Acme", domain="mg.acme.test")
        with Sink() as sink:
            nodes = (Node(services, folder / "api-1", relay=sink.port),
                     Node(services, folder / "api-2", relay=sink.port,
                          forwarded_allow_ips=""),
                     Node(services, folder / "worker-1", "worker", relay=sink.port),
                     Node(services, folder / "worker-2", "worker", relay=sink.port))
            with Cluster(*nodes):
                yield Topology(services, tenant, sink, nodes[0], nodes[1],
                               (nodes[2], nodes[3]))
    finally:
        with services.db.engine.begin() as conn:
            conn.execute(text(UNDO_STARTS))
            conn.execute(text("SET LOCAL session_replication_role = replica"))
            for table in metadata.sorted_tables:
                conn.execute(table.delete())
        services.close()


def test_mail_sent_through_two_nodes_and_delivered_by_four_workers_arrives_once(
        topology: Topology) -> None:
    """Each `serve` runs a delivery worker too: four take copies from one queue."""
    api = topology.tenant.api_key
    clients = [topology.trusting.client(api), topology.direct.client(api)]
    try:
        for seq in range(MESSAGES):
            sent = clients[seq % 2].post(f"/v3/{topology.tenant.domain}/messages", data={
                "from": f"ops@{topology.tenant.domain}", "to": f"r{seq}@example.org",
                "subject": f"message {seq}", "text": "hello", "h:X-Seq": str(seq)})
            assert sent.status_code == 200, sent.text
    finally:
        for client in clients:
            client.close()
    deadline = time.monotonic() + DEADLINE_SECONDS
    db = topology.services.db
    while _settled(db) < MESSAGES:
        assert time.monotonic() < deadline, f"{_settled(db)} of {MESSAGES} settled"
        time.sleep(0.2)
    seqs = sorted(int(r.message["X-Seq"]) for r in list(topology.sink.received))
    assert seqs == list(range(MESSAGES)), "a message delivered twice, or not at all"


def _settled(db) -> int:  # type: ignore[no-untyped-def]
    with db.sessions() as session:
        return session.scalar(select(func.count()).select_from(Delivery)
                              .where(Delivery.status == "delivered")) or 0


def test_each_periodic_job_ran_once_among_the_processes(topology: Topology) -> None:
    """Both API nodes started at once and raced for every job (the workers run none)."""
    with topology.services.db.sessions() as session:
        jobs = set(session.scalars(select(JobRun.name)))
        starts = session.execute(text(
            "SELECT name, count(*) FROM test_job_starts GROUP BY name")).all()
    assert {"retention", "panel-sweep", "notices"} <= jobs
    assert dict(starts) == dict.fromkeys(jobs, 1)


def _throttled_after_failures(node: Node, forwarded_for: str, then: str) -> int:
    """Fail as `forwarded_for` until refused; the status a wrong key from `then` gets."""
    with httpx.Client(base_url=node.url, auth=("api", "key-wrong"), timeout=30) as client:
        for _ in range(AUTH_FAILURES_PER_MINUTE):
            client.get("/v3/domains", headers={"X-Forwarded-For": forwarded_for})
        refused = client.get("/v3/domains", headers={"X-Forwarded-For": forwarded_for})
        assert refused.status_code == 429
        return client.get("/v3/domains", headers={"X-Forwarded-For": then}).status_code


def test_a_trusted_proxy_names_the_client_and_an_untrusted_one_does_not(
        topology: Topology) -> None:
    # Trusted: the throttle counted the client the proxy named, not the proxy
    assert _throttled_after_failures(topology.trusting, CLIENT, OTHER_CLIENT) == 401
    # Not trusted: the header is ignored, every failure is the peer's (loopback)
    assert _throttled_after_failures(topology.direct, CLIENT, OTHER_CLIENT) == 429


def test_a_spoofed_forwarded_for_from_a_peer_outside_a_non_empty_allow_list_is_ignored(
        topology: Topology, tmp_path: Path) -> None:
    """Proxies trusted by network (as a container network is), the test's loopback peer
    not among them: the X-Forwarded-For it makes up is ignored, every failure is its own."""
    guarded = Node(topology.services, tmp_path / "api-3",
                   forwarded_allow_ips="192.0.2.0/24,2001:db8::/32")
    with Cluster(guarded):
        assert _throttled_after_failures(guarded, CLIENT, OTHER_CLIENT) == 429
