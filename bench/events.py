"""Events API page latency on a domain with 10 million events, filtered by recipient and by tag.

What is measured: `GET /v3/{domain}/events?recipient=...&limit=300` and
`GET /v3/{domain}/events?tags=...&limit=300` (Basic auth api:KEY, as the Mailgun SDKs send
it), answered by the real app (`mailhaven.app.create_app`) on uvicorn in a child process,
one request at a time on a keep-alive connection. The reference, in the same run: the same
SELECT the API issues (`events.query.page_statement`: the same WHERE, ORDER BY and LIMIT,
the same columns of the same 300 rows), compiled for the backend and run directly with the raw
driver (sqlite3 or psycopg) in this process. API and SQL requests alternate, so noise from
the shared machine falls on both. Reported per filter: p50 and p95 of each, and API p95 /
SQL p95. Goal (issue 5): within 2x. The query plan of each backend is printed (EXPLAIN).

The panel's pages on the same data (issue 14's goal: < 200 ms p95), signed in as a user
of the account (session cookie): the logs page filtered by recipient and by tag (50 events
a page, newest first) against the Events API page of the same filter and size
(`limit=50&ascending=no`), and the overview (`/app`: five series of counters, failure
reasons, DNS and privacy summaries) against the API's `stats/total` of the same five events
over 30 days. Page and API requests alternate on two keep-alive connections.

The data: one domain with --events events over 30 days. About a thousand are real: recorded
through `events.service.record_each`, each sealed under its recipient's vault key:
- the queried recipient's ~300 events, at random times over the whole 30 days (every
  recipient of the domain has about as many: --events / 300 recipients);
- the newest 600 events carrying the queried tag, `tag-07`, one recipient each. 33 tags
  share the domain's events, so `tag-07` is on 3% of them over the whole 30 days.
The rest are written by one INSERT ... SELECT (generate_series on PostgreSQL, a recursive
CTE on SQLite), with the events table's secondary indexes dropped during the load and
rebuilt after it. Each copies the payload (its realistic size), key id and event type of a
real row, with its own event id, timestamp, storage key, message id, synthetic recipient
index and tag. A copied payload does not open under its new event id (the event id is the
sealing context), so the measured pages must only return real rows: they do (the queried
recipient has only real rows; the tag's newest 600 are real), and the script checks that
each API page holds 300 events, the same ids in the same order as the direct SQL.
On PostgreSQL the table is ANALYZEd after the load, as autovacuum would; on SQLite not, as
Mailhaven never runs ANALYZE there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine

from common import (
    DOMAIN,
    Column,
    Figure,
    RawConnection,
    backend_name,
    basic_auth,
    bench_arguments,
    bench_settings,
    percentile,
    record,
    script_server,
    seed,
    table,
    throwaway_database,
)
from mailhaven.config import Settings
from mailhaven.domains.service import owned_domain
from mailhaven.events.models import Event
from mailhaven.events.query import EventQuery, page_statement, parse_query
from mailhaven.events.service import Recipient, record_each
from mailhaven.messages.content import MessageFacts
from mailhaven.services import Services

DAYS = 30
LIMIT = 300
EVENTS_PER_RECIPIENT = 300
TAGS = 33  # tag-00 .. tag-32, each on ~3% of the events
QUERIED_TAG = "tag-07"
REAL_TAGGED = 600
SUBJECT = "subject@example.com"
INSERT_COLUMNS = ("event_id, account_id, domain_id, storage_key, event, timestamp, severity, "
                  "message_id_index, tags, recipient_index, key_id, payload")


# -- the server (child process) ----------------------------------------------------------
def serve(port: int, data_dir: Path, database_url: str | None) -> None:
    """The real app on uvicorn, until SIGTERM."""
    import uvicorn

    from mailhaven.app import create_app

    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    settings = bench_settings(data_dir, database_url, http_port=port)
    services = Services.start(settings, migrate=False)  # the parent migrated and loaded
    server = uvicorn.Server(uvicorn.Config(create_app(services), host="127.0.0.1", port=port,
                                           log_config=None, access_log=False, lifespan="off"))
    try:
        server.run()
    finally:
        services.close()


# -- the data ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """Where the filler events are: event i, for i in first .. first + count - 1, is at
    t0 + i * step."""

    count: int
    t0: float
    step: float
    tag_cut: float  # from here on, only real rows carry the queried tag
    first: int = 0

    @classmethod
    def of(cls, events: int, now: float) -> Layout:
        count = events - EVENTS_PER_RECIPIENT - REAL_TAGGED
        step = DAYS * 86400 / events
        return cls(count, now - DAYS * 86400, step, now - REAL_TAGGED * TAGS * step)

    @property
    def recipients(self) -> int:
        return max(1, self.count // EVENTS_PER_RECIPIENT)


def facts(i: int, tags: list[str]) -> MessageFacts:
    return MessageFacts(
        storage_key=f"s{i:023d}", message_id=f"20261101000000.{i:016x}@{DOMAIN}",
        headers={"to": f"Customer {i} <customer{i}@example.com>",
                 "from": f"Bench Shop <orders@{DOMAIN}>",
                 "message-id": f"20261101000000.{i:016x}@{DOMAIN}",
                 "subject": f"Your order #{i} has shipped"},
        attachments=[], size=2400 + i % 500, tags=tags,
        user_variables={"order-id": str(i), "campaign": "bench"}, testmode=False)


def record_real(services: Services, account_id: str, layout: Layout) -> int:
    """The rows the measured pages return, through the real code path."""
    rng = random.Random(5)
    now = layout.t0 + DAYS * 86400
    with services.db.transaction() as session:
        domain = owned_domain(session, account_id, DOMAIN)
        addresses = [SUBJECT] + [f"customer{i}@example.com" for i in range(REAL_TAGGED)]
        keys = services.vault.subjects(session, account_id, addresses)
        plan = [(rng.uniform(layout.t0, now), SUBJECT, [f"tag-{rng.randrange(TAGS):02d}"])
                for _ in range(EVENTS_PER_RECIPIENT)]
        plan += [(rng.uniform(layout.tag_cut, now), address, [QUERIED_TAG])
                 for address in addresses[1:]]
        for i, (when, address, tags) in enumerate(plan):
            record_each(session, services.vault, account_id=account_id, domain_id=domain.id,
                        event=("delivered", "opened", "accepted")[i % 3],
                        copies=[(facts(i, tags), Recipient(address, keys[address]))],
                        timestamp=when)
        return len(plan)


def _filler_sql(dialect: str) -> str:
    """One INSERT ... SELECT of every filler row; parameters named as in `load`."""
    if dialect == "sqlite":
        return f"""
            WITH RECURSIVE n(i) AS (SELECT :first UNION ALL SELECT i + 1 FROM n
                                   WHERE i + 1 < :first + :count)
            INSERT INTO events ({INSERT_COLUMNS})
            SELECT printf('f%021d', i), :account, :domain, printf('%024x', i / 2), t.event,
                   :t0 + i * :step, t.severity, printf('%064x', i / 2),
                   CASE WHEN i % {TAGS} = 7 AND :t0 + i * :step >= :cut THEN '["tag-xx"]'
                        ELSE printf('["tag-%02d"]', i % {TAGS}) END,
                   printf('%064x', i % :recipients), t.key_id, t.payload
            FROM n JOIN bench_templates t ON t.k = i % :templates"""
    return f"""
        INSERT INTO events ({INSERT_COLUMNS})
        SELECT 'f' || lpad(i::text, 21, '0'), %(account)s, %(domain)s,
               lpad(to_hex(i / 2), 24, '0'), t.event, %(t0)s::float8 + i * %(step)s::float8,
               t.severity, lpad(to_hex(i / 2), 64, '0'),
               CASE WHEN mod(i, {TAGS}) = 7
                         AND %(t0)s::float8 + i * %(step)s::float8 >= %(cut)s::float8
                    THEN '["tag-xx"]'
                    ELSE '["tag-' || lpad(mod(i, {TAGS})::text, 2, '0') || '"]' END,
               lpad(to_hex(mod(i, %(recipients)s::bigint)), 64, '0'), t.key_id, t.payload
        FROM generate_series(%(first)s::bigint, %(first)s::bigint + %(count)s::bigint - 1) AS i
        JOIN bench_templates t ON t.k = mod(i, %(templates)s::bigint)"""


def load(engine: Engine, account_id: str, domain_id: str, layout: Layout) -> None:
    """The filler rows, with the secondary indexes of events dropped and rebuilt around them."""
    dialect = engine.dialect.name
    indexes = list(Event.__table__.indexes)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TEMP TABLE bench_templates AS SELECT "
                             "row_number() OVER (ORDER BY id) - 1 AS k, event, severity, "
                             "key_id, payload FROM events")
        templates = conn.exec_driver_sql("SELECT count(*) FROM bench_templates").scalar()
        conn.exec_driver_sql("CREATE UNIQUE INDEX bench_templates_k ON bench_templates (k)")
        for index in indexes:
            index.drop(conn)
        params = {"first": layout.first, "count": layout.count, "account": account_id,
                  "domain": domain_id, "t0": layout.t0, "step": layout.step, "cut": layout.tag_cut,
                  "recipients": layout.recipients, "templates": templates}
        started = time.monotonic()
        if dialect == "sqlite":
            conn.connection.driver_connection.execute(_filler_sql(dialect), params)
        else:
            conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
            # No foreign-key triggers per row: the filler's keys are copied from real rows.
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
            conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '1GB'")
            conn.exec_driver_sql(_filler_sql(dialect), params)
        inserted = time.monotonic()
        for index in indexes:
            index.create(conn)
        print(f"  {layout.count:,} events inserted in {inserted - started:.1f} s, "
              f"indexes rebuilt in {time.monotonic() - inserted:.1f} s", flush=True)
        conn.exec_driver_sql("DROP TABLE bench_templates")
    if dialect == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE events")


def bulk_engine(settings: Settings) -> Engine:
    """An engine for the load only; on SQLite without WAL (a 10 GB WAL would be written
    twice) and without fsync: a crash during the load just fails the run."""
    url = settings.resolved_database_url
    if not url.startswith("sqlite"):
        return create_engine(url)
    path = url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=DELETE")
    engine = create_engine(url)

    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _fast(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_conn.execute("PRAGMA synchronous=OFF")
        dbapi_conn.execute("PRAGMA cache_size=-1048576")  # 1 GB
        dbapi_conn.execute("PRAGMA temp_store=MEMORY")  # the index builds' sorts
        dbapi_conn.execute("PRAGMA threads=2")  # ... on both cores
    return engine


def build(settings: Settings, database_url: str | None, events: int) -> tuple[str, str, dict]:
    """Seed, record the real rows, load the filler; (api key, domain id, timings)."""
    account_id, api_key = seed(settings)
    layout = Layout.of(events, time.time())
    started = time.monotonic()
    services = Services.start(settings, migrate=False)
    try:
        real = record_real(services, account_id, layout)
        with services.db.sessions() as session:
            domain_id = owned_domain(session, account_id, DOMAIN).id
    finally:
        services.close()
    recorded = time.monotonic()
    engine = bulk_engine(settings)
    try:
        load(engine, account_id, domain_id, layout)
    finally:
        engine.dispose()
    if database_url is None:  # back to how Mailhaven runs it
        with sqlite3.connect(settings.resolved_database_url.removeprefix("sqlite:///")) as c:
            c.execute("PRAGMA journal_mode=WAL")
    loaded = time.monotonic()
    return account_id, api_key, {"real": real, "filler": layout.count,
                                 "record_s": recorded - started, "load_s": loaded - recorded}


# -- the measurement -------------------------------------------------------------------------
class Direct:
    """The reference: the API's SELECT, compiled with its values, run with the raw driver."""

    def __init__(self, settings: Settings, database_url: str | None) -> None:
        self.engine = create_engine(settings.resolved_database_url)  # to compile, not to run
        if database_url is None:
            self.conn = sqlite3.connect(settings.resolved_database_url.removeprefix("sqlite:///"))
        else:
            import psycopg

            self.conn = psycopg.connect(self.engine.url.set(drivername="postgresql")
                                        .render_as_string(hide_password=False), autocommit=True)

    def sql(self, query: EventQuery, account_id: str, domain_id: str) -> str:
        statement = page_statement(query, account_id, domain_id)
        # The named paramstyle: with no parameters, the driver's own would double each %.
        dialect = type(self.engine.dialect)(paramstyle="named")
        return str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))

    def rows(self, sql: str) -> list[tuple]:
        return self.conn.execute(sql).fetchall()

    def explain(self, sql: str) -> list[str]:
        if isinstance(self.conn, sqlite3.Connection):
            return [row[-1] for row in self.conn.execute(f"EXPLAIN QUERY PLAN {sql}")]
        return [row[0] for row in self.conn.execute(f"EXPLAIN {sql}")]

    def close(self) -> None:
        self.conn.close()
        self.engine.dispose()


@dataclass(frozen=True)
class Result:
    name: str
    api_ms: list[float]
    sql_ms: list[float]
    plan: list[str]

    @property
    def ratio(self) -> float:
        return percentile(self.api_ms, 95) / percentile(self.sql_ms, 95)


async def measure(port: int, api_key: str, direct: Direct, name: str, params: dict,
                  query: EventQuery, account_id: str, domain_id: str, samples: int,
                  deadline: float) -> Result:
    conn = RawConnection(port, basic_auth(api_key))
    request = conn.prepare("GET", f"/v3/{DOMAIN}/events?{urlencode(params)}")
    sql = direct.sql(query, account_id, domain_id)
    api_ms, sql_ms = [], []
    event_id = list(page_statement(query, account_id, domain_id).selected_columns.keys()
                    ).index("event_id")
    try:
        for i in range(samples + 5):  # the first 5 of each warm caches, untimed
            if time.monotonic() > deadline:
                raise TimeoutError("--max-seconds reached")
            started = time.perf_counter()
            status, body = await conn.request(request)
            api = time.perf_counter() - started
            started = time.perf_counter()
            rows = direct.rows(sql)
            reference = time.perf_counter() - started
            if status != 200:
                raise RuntimeError(f"events API answered {status}: {body[:300]!r}")
            if i < 5:
                ids = [item["id"] for item in json.loads(body)["items"]]
                if len(ids) != LIMIT or ids != [row[event_id] for row in rows]:
                    raise RuntimeError(f"{name}: the API's {len(ids)} events are not the "
                                       f"{len(rows)} rows of the direct SQL")
                continue
            api_ms.append(1000 * api)
            sql_ms.append(1000 * reference)
    finally:
        await conn.close()
    return Result(name, api_ms, sql_ms, direct.explain(sql))


def run(port: int, api_key: str, settings: Settings, database_url: str | None,
        account_id: str, samples: int, deadline: float) -> list[Result]:
    services = Services.start(settings, migrate=False)
    try:
        with services.db.sessions() as session:
            domain_id = owned_domain(session, account_id, DOMAIN).id
        vault = services.vault  # the filters' blind indexes, as the API computes them
    finally:
        services.close()
    direct = Direct(settings, database_url)
    try:
        results = []
        for name, params in (("recipient", {"recipient": SUBJECT, "limit": LIMIT}),
                             ("tags", {"tags": QUERIED_TAG, "limit": LIMIT})):
            query = parse_query({k: str(v) for k, v in params.items()}, vault, account_id)
            results.append(asyncio.run(measure(port, api_key, direct, name, params, query,
                                               account_id, domain_id, samples, deadline)))
        return results
    finally:
        direct.close()


PANEL_USER = "bench-admin@example.com"
PANEL_PASSWORD = "bench panel password"  # a throwaway user's
PANEL_PAGE = 50
PANEL_PAGES = (
    ("logs by recipient", f"/app/logs?recipient={SUBJECT}",
     f"/v3/{DOMAIN}/events?recipient={SUBJECT}&limit={PANEL_PAGE}&ascending=no"),
    ("logs by tag", f"/app/logs?tag={QUERIED_TAG}",
     f"/v3/{DOMAIN}/events?tags={QUERIED_TAG}&limit={PANEL_PAGE}&ascending=no"),
    ("overview", "/app", f"/v3/{DOMAIN}/stats/total?" + urlencode(
        [("event", e) for e in ("accepted", "delivered", "failed", "opened", "clicked")]
        + [("duration", "30d")])),
)


def add_panel_user(settings: Settings, account_id: str) -> None:
    from mailhaven.users.service import create_user, hash_password

    services = Services.start(settings, migrate=False)
    try:
        hashed = hash_password(PANEL_PASSWORD)
        with services.db.transaction() as session:
            create_user(session, services.vault, account_id=account_id, name="Bench Admin",
                        email=PANEL_USER, password_hash=hashed, role="admin",
                        clock=services.clock, confirmed=True)
    finally:
        services.close()


def panel_session(port: int) -> str:
    """Logged in through the login form, as a browser would: the session cookie."""
    import re

    import httpx

    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
        assert token is not None
        answer = client.post("/login", data={"email": PANEL_USER, "password": PANEL_PASSWORD,
                                             "csrf_token": token.group(1)})
        if answer.status_code != 303 or "mh_session" not in client.cookies:
            raise RuntimeError(f"panel login failed: {answer.status_code}")
        return str(client.cookies["mh_session"])


async def measure_page(port: int, api_key: str, cookie: str, name: str, path: str,
                       reference: str, samples: int, deadline: float) -> Result:
    """The page (signed in) and the API request of the same work, alternating."""
    browser = RawConnection(port, basic_auth(api_key))
    browser.head += f"Cookie: mh_session={cookie}\r\n"
    api = RawConnection(port, basic_auth(api_key))
    page_request, api_request = browser.prepare("GET", path), api.prepare("GET", reference)
    page_ms, api_ms = [], []
    try:
        for i in range(samples + 5):
            if time.monotonic() > deadline:
                raise TimeoutError("--max-seconds reached")
            started = time.perf_counter()
            status, body = await browser.request(page_request)
            shown = time.perf_counter() - started
            started = time.perf_counter()
            api_status, api_body = await api.request(api_request)
            answered = time.perf_counter() - started
            if status != 200 or api_status != 200:
                raise RuntimeError(f"{name}: page {status} {body[:200]!r}, API {api_status} "
                                   f"{api_body[:200]!r}")
            if i < 5:
                if name.startswith("logs") and body.count(b'<tr class="log-row') < PANEL_PAGE:
                    raise RuntimeError(f"{name}: the page does not show {PANEL_PAGE} events")
                continue
            page_ms.append(1000 * shown)
            api_ms.append(1000 * answered)
    finally:
        await browser.close()
        await api.close()
    return Result(name, page_ms, api_ms, [])


def run_panel(port: int, api_key: str, samples: int, deadline: float) -> list[Result]:
    cookie = panel_session(port)
    return [asyncio.run(measure_page(port, api_key, cookie, name, path, reference, samples,
                                     deadline))
            for name, path, reference in PANEL_PAGES]


def report_panel(results: list[Result], backend: str, events: int) -> tuple[str, list[Figure]]:
    columns = [Column("page", 18, ""), Column("page p50", 9, ".2f"),
               Column("page p95", 9, ".2f"), Column("API p50", 9, ".2f"),
               Column("API p95", 9, ".2f"), Column("p95 ratio", 10, ".2f"),
               Column("goal < 200 ms", 14, "")]
    rows = [[r.name, percentile(r.api_ms, 50), percentile(r.api_ms, 95),
             percentile(r.sql_ms, 50), percentile(r.sql_ms, 95), r.ratio,
             "met" if percentile(r.api_ms, 95) < 200 else "not met"] for r in results]
    summary = "\n".join([
        f"panel pages, {backend}: {events:,} events, signed in; {len(results[0].api_ms)} "
        f"requests per page; the reference is the API request of the same work; times in ms",
        table(columns, rows)])
    figures = [Figure(figure=f"panel page: {r.name}, {events:,} events",
                      value=percentile(r.api_ms, 95), unit="ms p95",
                      reference="the API request of the same work",
                      reference_value=percentile(r.sql_ms, 95), ratio=r.ratio,
                      goal="< 200 ms", met=percentile(r.api_ms, 95) < 200)
               for r in results]
    return summary, figures


def report(results: list[Result], backend: str, events: int, timings: dict,
           panel: list[Result]) -> None:
    columns = [Column("filter", 10, ""), Column("API p50", 9, ".2f"),
               Column("API p95", 9, ".2f"), Column("SQL p50", 9, ".2f"),
               Column("SQL p95", 9, ".2f"), Column("p95 ratio", 10, ".2f"),
               Column("goal <= 2", 10, "")]
    rows = [[r.name, percentile(r.api_ms, 50), percentile(r.api_ms, 95),
             percentile(r.sql_ms, 50), percentile(r.sql_ms, 95), r.ratio,
             "met" if r.ratio <= 2 else "not met"] for r in results]
    lines = [f"events API, {backend}: {events:,} events on one domain ({timings['real']} "
             f"recorded through the service in {timings['record_s']:.1f} s, "
             f"{timings['filler']:,} loaded in {timings['load_s']:.1f} s); limit={LIMIT}, "
             f"{len(results[0].api_ms)} requests per filter; times in ms",
             table(columns, rows)]
    for r in results:
        lines.append(f"plan ({r.name}): " + " | ".join(r.plan))
    panel_summary, panel_figures = report_panel(panel, backend, events)
    summary = "\n".join([*lines, "", panel_summary])
    print()
    print(summary)
    record("events", backend, [
        *(Figure(figure=f"events page (limit={LIMIT}), {events:,} events, by {r.name}",
                 value=percentile(r.api_ms, 95), unit="ms p95",
                 reference="the same SELECT run directly (raw driver)",
                 reference_value=percentile(r.sql_ms, 95), ratio=r.ratio, goal="<= 2x",
                 met=r.ratio <= 2)
          for r in results), *panel_figures], summary)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000,
                        help="events on the domain (at least 10,000)")
    parser.add_argument("--samples", type=int, default=200,
                        help="timed requests per filter (and as many direct queries)")
    bench_arguments(parser, max_seconds=600, child=True)
    args = parser.parse_args()
    if args.serve:  # the child
        serve(args.port, args.data_dir, args.database_url)
        return
    if args.events < 10_000 or args.samples < 1:
        parser.error("--events must be at least 10000 and --samples positive")

    started = time.monotonic()
    deadline = started + args.max_seconds
    backend = backend_name(args.database_url)
    with tempfile.TemporaryDirectory(prefix="mailhaven-bench-") as tmp, \
            throwaway_database(args.database_url) as database_url:
        data_dir = Path(tmp)
        settings = bench_settings(data_dir, database_url)
        account_id, api_key, timings = build(settings, database_url, args.events)
        add_panel_user(settings, account_id)
        print(f"events on {backend}: {args.events:,} events in "
              f"{timings['record_s'] + timings['load_s']:.1f} s", flush=True)
        with script_server(__file__, data_dir, database_url) as (_, port):
            results = run(port, api_key, settings, database_url, account_id, args.samples,
                          deadline)
            panel = run_panel(port, api_key, args.samples, deadline)
        report(results, backend, args.events, timings, panel)
    print(f"total {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    try:
        main()
    except TimeoutError as exc:
        raise SystemExit(f"stopped: {str(exc) or '--max-seconds reached'}") from None
