"""Fixtures: every database test runs on SQLite and on PostgreSQL (its own throwaway DB)."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import text

from mailhaven.accounts.service import create_account
from mailhaven.clock import FrozenClock
from mailhaven.config import Settings
from mailhaven.domains.service import create_domain
from mailhaven.models import metadata
from mailhaven.services import Platform, Services
from mailhaven.storage.db import Database
from mailhaven.wiring import wire
from tests.support import DatabaseDump, LiveServer, Tenant, create_tenant, dump_database

PG_SERVER = os.environ.get("MAILHAVEN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REQUIRE_PG = os.environ.get("MAILHAVEN_REQUIRE_POSTGRES") == "1"
# The tests start `mailhaven` as a subprocess hundreds of times: where the environment says
# not to write bytecode, each of them would compile the package anew (~0.5 s a start).
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
BACKENDS = ["sqlite", "postgresql"]
wire()  # as every entry point does: statistics and webhooks hear of recorded events


PG_BASE = PG_SERVER.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
REGIONS = ("us", "eu")


def _pg_admin() -> psycopg.Connection:
    try:
        return psycopg.connect(PG_SERVER, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL is required (MAILHAVEN_REQUIRE_POSTGRES=1) but not "
                        f"reachable at {PG_SERVER}: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {PG_SERVER}; set MAILHAVEN_TEST_PG")


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A database of this run's own, created now and dropped at the end."""
    name = f"mailhaven_test_{os.getpid()}_{secrets.token_hex(4)}"
    with _pg_admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        _migrated(f"{PG_BASE}/{name}")  # once: each test truncates the tables it used
        yield f"{PG_BASE}/{name}"
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A migrated database to copy (CREATE DATABASE … TEMPLATE): a region's database in a
    second, not a migration's run each."""
    name = f"mailhaven_template_{os.getpid()}_{secrets.token_hex(4)}"
    with _pg_admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        _migrated(f"{PG_BASE}/{name}")
        yield name
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_databases(pg_template: str) -> Iterator[dict[str, str]]:
    """Three throwaway PostgreSQL databases of this test's own: main (the directory), us, eu."""
    stem = f"mailhaven_test_{os.getpid()}_{secrets.token_hex(3)}"
    names = {part: f"{stem}_{part}" for part in ("main", *REGIONS)}
    with _pg_admin() as admin:
        try:
            for name in names.values():
                admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
            yield {part: f"{PG_BASE}/{name}" for part, name in names.items()}
        finally:
            for name in names.values():
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _migrated(url: str) -> None:
    db = Database(url)
    try:
        db.migrate()
    finally:
        db.dispose()


@pytest.fixture(scope="session")
def sqlite_schema(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test: migrating ten revisions per test would
    cost more than most tests themselves."""
    path = tmp_path_factory.mktemp("schema") / "mailhaven.db"
    _migrated(f"sqlite:///{path}")
    return path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test marked postgres_only is not collected for SQLite (rather than skipped there)."""
    sqlite_only = [item for item in items if item.get_closest_marker("postgres_only")
                   and getattr(item, "callspec", None) is not None
                   and item.callspec.params.get("backend") == "sqlite"]
    if sqlite_only:
        config.hook.pytest_deselected(items=sqlite_only)
        items[:] = [item for item in items if item not in sqlite_only]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def settings(backend: str, tmp_path, request: pytest.FixtureRequest) -> Settings:  # type: ignore[no-untyped-def]
    if backend == "sqlite":
        shutil.copyfile(request.getfixturevalue("sqlite_schema"), tmp_path / "mailhaven.db")
        url = f"sqlite:///{tmp_path / 'mailhaven.db'}"
    else:
        url = request.getfixturevalue("pg_database")
    return Settings(data_dir=tmp_path, database_url=url, hostname="mx.mailhaven.test",
                    lease_seconds=60, webhook_allow_private=True, allow_private_mx=True,
                    require_verified_domains=False)


@pytest.fixture
def regions_settings(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """An installation split into regions us (home) and eu, each in a database of its own
    beside the main one: SQLite files, or PostgreSQL databases of the test's own."""
    common: dict[str, Any] = {
        "data_dir": tmp_path, "hostname": "mx.mailhaven.test", "lease_seconds": 60,
        "webhook_allow_private": True, "allow_private_mx": True,
        "require_verified_domains": False, "regions": REGIONS}
    if backend == "sqlite":
        schema = request.getfixturevalue("sqlite_schema")
        for folder in (tmp_path, *(tmp_path / r for r in REGIONS)):
            folder.mkdir(exist_ok=True)
            shutil.copyfile(schema, folder / "mailhaven.db")
        return Settings(database_url=f"sqlite:///{tmp_path / 'mailhaven.db'}", **common)
    urls = request.getfixturevalue("pg_databases")
    return Settings(database_url=urls["main"],
                    region_database_urls=tuple((r, urls[r]) for r in REGIONS), **common)


@pytest.fixture
def platform(regions_settings: Settings, clock: FrozenClock) -> Iterator[Platform]:
    opened = Platform.start(regions_settings, clock, migrate=False)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def services(settings: Settings, clock: FrozenClock) -> Iterator[Services]:
    services = Services.start(settings, clock, migrate=False)  # migrated by `settings`
    try:
        yield services
    finally:
        if not services.db.is_sqlite:
            # DELETE is much faster than TRUNCATE on small tables; replica mode lets it run
            # in any order and past the audit log's append-only trigger (test set-up only).
            with services.db.engine.begin() as conn:
                conn.execute(text("SET LOCAL session_replication_role = replica"))
                for table in metadata.sorted_tables:
                    conn.execute(table.delete())
        services.close()


@pytest.fixture
def live(services: Services) -> Iterator[LiveServer]:
    with LiveServer(services) as server:
        yield server


@pytest.fixture
def account(services: Services) -> tuple[str, str]:
    """(account_id, api_key)"""
    with services.db.transaction() as session:
        issued = create_account(session, services.vault, name="Acme", email="ops@acme.test",
                                clock=services.clock)
    return issued.account_id, issued.api_key


@pytest.fixture
def domain(services: Services, account: tuple[str, str]) -> str:
    """mg.acme.test, with a 1024-bit DKIM key: the key size is not what the ~2000 tests that
    use it are about, and a 2048-bit key takes ~4 times as long to make."""
    with services.db.transaction() as session:
        create_domain(session, services.vault, account[0],
                      {"name": "mg.acme.test", "dkim_key_size": "1024"}, services.clock)
    return "mg.acme.test"


@pytest.fixture
def api(live: LiveServer, account: tuple[str, str], domain: str) -> Iterator:
    with live.client(account[1]) as client:
        yield client


@pytest.fixture
def second_account(services: Services) -> Tenant:
    """The second account, "Bee", with its own API key and sending domain (mg.bee.test):
    for tests that one account never sees or changes another's data."""
    return create_tenant(services)


@pytest.fixture
def second_api(live: LiveServer, second_account: Tenant) -> Iterator:
    with live.client(second_account.api_key) as client:
        yield client


@pytest.fixture
def raw_dump(services: Services) -> Callable[[], DatabaseDump]:
    """The raw-database dump, taken when called: every row of every table as stored, and
    the SQLite files with their WAL. For scans of what is kept in clear."""
    return lambda: dump_database(services)
