"""Erasing one recipient who has 100,000 events, on a small and on a large events table.

What is measured, first (the goal): the wall time of the processor API's erasure,
`privacy.service.erase` in one `db.transaction()` as `DELETE /v1/privacy/recipients/{address}`
runs it (without the HTTP request around it): the subject's vault key and the content keys
of their messages destroyed, queued copies cancelled, other recipients' events of those
messages redacted, allowlist entries deleted, the ledger row and file written, the audit
entry and the signed completion record made, the commit. From then on nothing of theirs is
readable. Then (reported, no goal): the background deletion of their rows
(`privacy.erasure.run_pending`, what the `ErasureDeleter` job runs): their deliveries and
events deleted, the bodies emptied and the destroyed keys' rows deleted, in batches of
`erasure.BATCH` rows per transaction.

The subject: one message really sent to them through `sending.service.send` (its message,
delivery, `accepted` event and the subject's key), then copied in SQL to --messages messages
(each with its own content key), one delivery each (delivered) and two events each (accepted
and delivered): 100,000 events over 30 days by default; on PostgreSQL the tables are then
VACUUM ANALYZEd, as autovacuum would. Other recipients: one message sent
to 200 of them, then their events copied (as bench/events.py loads its filler) to
--small and then --large events in the table. The subject is built and erased once at each
size (a new subject each time). Goal (issue 5): < 1 s, independent of table size: the
figure is the time at the large size, its ratio to the small size's time is printed.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy import Connection, Table, func, select, text

from common import (
    DOMAIN,
    Column,
    Figure,
    backend_name,
    bench_arguments,
    bench_settings,
    record,
    seed,
    table,
    throwaway_database,
)
from events import Layout, bulk_engine, load
from mailhaven.config import Settings
from mailhaven.delivery.models import Delivery
from mailhaven.domains.service import owned_domain
from mailhaven.events.models import Event
from mailhaven.messages.models import Message
from mailhaven.privacy import erasure
from mailhaven.privacy import service as privacy
from mailhaven.privacy.models import Erasure
from mailhaven.sending.service import send
from mailhaven.services import Services
from mailhaven.vault.models import DESTROYED, VaultKey

DAYS = 30
OTHERS = 200  # real recipients of the other recipients' message


def send_one(services: Services, account_id: str, to: list[str]) -> str:
    """A real send (its message, deliveries, `accepted` events, keys); its storage key."""
    fields = [("from", f"Bench Shop <orders@{DOMAIN}>"), ("to", ", ".join(to)),
              ("subject", "Your order has shipped"),
              ("text", "Your order has shipped and should arrive within three days.\n" * 12),
              ("o:tag", "shipping")]
    return send(services.db, services.vault, account_id, DOMAIN, fields, [], mime=False,
                clock=services.clock).storage_key


def _copy(conn: Connection, table: Table, template_id: object, overrides: dict[str, str],
          params: dict) -> None:
    """One INSERT ... SELECT: a row per bench_n row, the template's values but `overrides`
    (SQL expressions over bench_n n)."""
    columns = [c.name for c in table.columns if not (c.primary_key and c.autoincrement is True
                                                      and c.name == "id")]
    values = [overrides.get(c, f"t.{c}") for c in columns]
    conn.execute(text(f"INSERT INTO {table.name} ({', '.join(columns)}) "
                      f"SELECT {', '.join(values)} FROM bench_n n CROSS JOIN {table.name} t "
                      f"WHERE t.id = :template"), {**params, "template": template_id})


def build_subject(services: Services, settings: Settings, account_id: str, address: str,
                  messages: int, tag: str) -> float:
    """The subject's real message copied to `messages` (copies, events, content keys);
    seconds taken."""
    started = time.monotonic()
    storage_key = send_one(services, account_id, [address])
    with services.db.sessions() as session:
        message = session.get(Message, storage_key)
        delivery = session.scalar(select(Delivery.id).where(Delivery.message_id == storage_key))
        event = session.scalar(select(Event.id).where(Event.storage_key == storage_key))
    assert message is not None and delivery is not None and event is not None
    now = services.clock.now()
    params = {"t0": now - DAYS * 86400, "step": DAYS * 86400 / messages}
    services.db.dispose()  # SQLite changes its journal mode only with no one else connected
    engine = bulk_engine(settings)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TEMP TABLE bench_n (i INTEGER, key_id VARCHAR(24), "
                                 "message_id VARCHAR(24))")
            conn.execute(text("INSERT INTO bench_n VALUES (:i, :k, :m)"), [
                {"i": i, "k": f"k{tag}{i:021d}", "m": f"m{tag}{i:021d}"}
                for i in range(1, messages)])
            _copy(conn, VaultKey.__table__, message.content_key_id,
                  {"id": "n.key_id"}, params)
            _copy(conn, Message.__table__, storage_key,
                  {"id": "n.message_id", "content_key_id": "n.key_id",
                   "created_at": ":t0 + n.i * :step"}, params)
            _copy(conn, Delivery.__table__, delivery,
                  {"message_id": "n.message_id", "status": "'delivered'",
                   "created_at": ":t0 + n.i * :step", "updated_at": ":t0 + n.i * :step"},
                  params)
            for kind, suffix in (("accepted", "a"), ("delivered", "d")):
                _copy(conn, Event.__table__, event,
                      {"event_id": f"n.message_id || '{suffix}'", "event": f"'{kind}'",
                       "storage_key": "n.message_id", "message_id_index": "n.message_id",
                       "timestamp": ":t0 + n.i * :step"}, params)
            conn.exec_driver_sql("DROP TABLE bench_n")
        if not settings.resolved_database_url.startswith("sqlite"):
            # As autovacuum would after this many inserts (an erasure comes long after the
            # subject's mail): statistics for the planner, hint bits and visibility set.
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE vault_keys, messages, deliveries, events")
    finally:
        engine.dispose()
    wal(settings)
    return time.monotonic() - started


def wal(settings: Settings) -> None:
    """SQLite back in WAL mode after a bulk step, as Mailhaven runs it."""
    url = settings.resolved_database_url
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.execute("PRAGMA journal_mode=WAL")


def grow(services: Services, settings: Settings, account_id: str, first: int,
         count: int) -> float:
    """Other recipients' events, `count` more (copies of the real ones); seconds taken."""
    started = time.monotonic()
    with services.db.sessions() as session:
        domain_id = owned_domain(session, account_id, DOMAIN).id
    now = services.clock.now()
    step = DAYS * 86400 / max(1, first + count)
    services.db.dispose()  # SQLite changes its journal mode only with no one else connected
    engine = bulk_engine(settings)
    try:
        load(engine, account_id, domain_id,
             Layout(count, now - DAYS * 86400, step, tag_cut=now + 1, first=first))
    finally:
        engine.dispose()
    wal(settings)
    return time.monotonic() - started


@dataclass(frozen=True)
class Run:
    table_events: int  # events in the table before the erasure
    build_s: float
    erase_s: float  # the request's transaction
    delete_s: float  # the background deletion that follows
    summary: dict


def erase(services: Services, account_id: str, address: str) -> tuple[float, dict]:
    """What `DELETE /v1/privacy/recipients/{address}` does, timed; (seconds, counts)."""
    ctx = privacy.Context.of(services, f"account:{account_id}")
    started = time.perf_counter()
    with services.db.transaction() as session:
        done = privacy.erase(session, ctx, account_id, address)
    return time.perf_counter() - started, asdict(done.record.counts)


def measure(services: Services, settings: Settings, account_id: str, address: str,
            messages: int, tag: str) -> Run:
    build_s = build_subject(services, settings, account_id, address, messages, tag)
    with services.db.sessions() as session:
        events = session.scalar(select(func.count()).select_from(Event))
    seconds, counts = erase(services, account_id, address)
    index = services.vault.blind_index(account_id, address)
    if counts["events"] != 2 * messages - 1 or counts["copies"] != messages:
        raise RuntimeError(f"erasure's counts {counts}")
    with services.db.sessions() as session:  # nothing readable from the commit on
        entry = session.scalars(select(Erasure).order_by(Erasure.id.desc()).limit(1)).one()
        readable = services.vault.keys(session, json.loads(entry.key_ids))
        destroyed = session.scalar(select(func.count()).select_from(VaultKey).where(
            VaultKey.wrapped_key == DESTROYED))
    if readable or destroyed != messages + 1:
        raise RuntimeError(f"after the erasure, {len(readable)} of the ledger's keys are "
                           f"readable, {destroyed} keys destroyed")
    started = time.perf_counter()
    deleted = erasure.run_pending(services.db, services.clock)
    delete_s = time.perf_counter() - started
    with services.db.sessions() as session:
        left = session.scalar(select(func.count()).select_from(Event).where(
            Event.recipient_index == index))
        keys = session.scalar(select(func.count()).select_from(VaultKey).where(
            VaultKey.wrapped_key == DESTROYED))
    if left or keys:
        raise RuntimeError(f"the background deletion left {left} events, {keys} keys")
    print(f"  {events:,} events in the table: erased {counts} in {seconds:.3f} s; "
          f"{deleted:,} rows deleted in the background in {delete_s:.3f} s", flush=True)
    return Run(events, build_s, seconds, delete_s, counts)


def report(runs: list[Run], backend: str, messages: int, grow_s: list[float]) -> None:
    small, large = runs
    ratio = large.erase_s / small.erase_s
    columns = [Column("events in table", 16, ","), Column("subject events", 15, ","),
               Column("erase s", 9, ".3f"), Column("goal < 1 s", 11, ""),
               Column("deletion s", 11, ".3f")]
    rows = [[r.table_events, r.summary["events"], r.erase_s,
             "met" if r.erase_s < 1 else "not met", r.delete_s] for r in runs]
    summary = "\n".join([
        f"erasure, {backend}: one recipient with {2 * messages - 1:,} events, "
        f"{messages:,} copies and messages (built in {small.build_s:.1f} s and "
        f"{large.build_s:.1f} s; others' events loaded in "
        f"{' + '.join(f'{s:.1f}' for s in grow_s)} s)",
        table(columns, rows),
        f"large / small: {ratio:.2f} (independent of table size: close to 1); "
        f"erase s: the request (the goal); deletion s: the background job after it"])
    print()
    print(summary)
    record("erasure", backend, [
        Figure(figure=f"erase a recipient with {2 * messages - 1:,} events, "
                      f"{large.table_events:,} events in the table",
               value=large.erase_s, unit="s",
               reference=f"the same with {small.table_events:,} events in the table",
               reference_value=small.erase_s, ratio=ratio, goal="< 1 s",
               met=large.erase_s < 1),
        Figure(figure=f"then delete their rows in the background, {large.table_events:,} "
                      "events in the table",
               value=large.delete_s, unit="s",
               reference=f"the same with {small.table_events:,} events in the table",
               reference_value=small.delete_s, ratio=large.delete_s / small.delete_s,
               goal="", met=None)], summary)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=50_000,
                        help="the subject's messages (two events each)")
    parser.add_argument("--small", type=int, default=200_000,
                        help="other recipients' events in the table at the small size")
    parser.add_argument("--large", type=int, default=2_000_000,
                        help="... and at the large size")
    bench_arguments(parser, max_seconds=600)
    args = parser.parse_args()
    if args.messages < 2 or not 0 < args.small < args.large:
        parser.error("--messages must be at least 2 and 0 < --small < --large")

    started = time.monotonic()
    backend = backend_name(args.database_url)
    with tempfile.TemporaryDirectory(prefix="mailhaven-bench-") as tmp, \
            throwaway_database(args.database_url) as database_url:
        settings = bench_settings(Path(tmp), database_url)
        account_id, _ = seed(settings)
        services = Services.start(settings, migrate=False)
        try:
            send_one(services, account_id, [f"other{i}@example.com" for i in range(OTHERS)])
            print(f"erasure on {backend}", flush=True)
            runs, grow_s = [], []
            for n, (first, size) in enumerate(((0, args.small), (args.small, args.large))):
                grow_s.append(grow(services, settings, account_id, first, size - first))
                runs.append(measure(services, settings, account_id,
                                    f"subject{n}@example.com", args.messages, str(n)))
                if time.monotonic() - started > args.max_seconds:
                    raise SystemExit("stopped: --max-seconds reached")
        finally:
            services.close()
        report(runs, backend, args.messages, grow_s)
    print(f"total {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
