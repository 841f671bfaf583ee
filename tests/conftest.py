"""Fixtures: every database test runs on SQLite and on PostgreSQL (its own throwaway DB)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import text

from mailhaven.accounts.service import create_account
from mailhaven.clock import FrozenClock
from mailhaven.config import Settings
from mailhaven.domains.service import create_domain
from mailhaven.models import metadata
from mailhaven.services import Services
from tests.support import LiveServer

PG_SERVER = os.environ.get("MAILHAVEN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REQUIRE_PG = os.environ.get("MAILHAVEN_REQUIRE_POSTGRES") == "1"
BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A database of this run's own, created now and dropped at the end."""
    name = f"mailhaven_test_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        admin = psycopg.connect(PG_SERVER, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL is required (MAILHAVEN_REQUIRE_POSTGRES=1) but not "
                        f"reachable at {PG_SERVER}: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {PG_SERVER}; set MAILHAVEN_TEST_PG")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        base = PG_SERVER.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
        yield f"{base}/{name}"
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def settings(backend: str, tmp_path, request: pytest.FixtureRequest) -> Settings:  # type: ignore[no-untyped-def]
    url = (f"sqlite:///{tmp_path / 'mailhaven.db'}" if backend == "sqlite"
           else request.getfixturevalue("pg_database"))
    return Settings(data_dir=tmp_path, database_url=url, hostname="mx.mailhaven.test",
                    lease_seconds=60, webhook_allow_private=True,
                    require_verified_domains=False)


@pytest.fixture
def services(settings: Settings, clock: FrozenClock) -> Iterator[Services]:
    services = Services.start(settings, clock)
    try:
        yield services
    finally:
        if not services.db.is_sqlite:
            tables = ", ".join(t.name for t in metadata.sorted_tables)
            with services.db.engine.begin() as conn:
                conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
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
    with services.db.transaction() as session:
        create_domain(session, services.vault, account[0], {"name": "mg.acme.test"},
                      services.clock)
    return "mg.acme.test"


@pytest.fixture
def api(live: LiveServer, account: tuple[str, str], domain: str) -> Iterator:
    with live.client(account[1]) as client:
        yield client
