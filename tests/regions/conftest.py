"""Fixtures for an installation split into regions us and eu: a main database (the
directory) and one database per region, on SQLite files or on PostgreSQL databases of this
test's own (created, migrated and dropped here)."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from mailhaven.clock import FrozenClock
from mailhaven.config import Settings
from mailhaven.services import Platform
from tests.conftest import PG_SERVER, REQUIRE_PG, _migrated

REGIONS = ("us", "eu")


@pytest.fixture
def pg_databases() -> Iterator[dict[str, str]]:
    """Three throwaway PostgreSQL databases: main (the directory), us, eu."""
    try:
        admin = psycopg.connect(PG_SERVER, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL is required but not reachable at {PG_SERVER}: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {PG_SERVER}; set MAILHAVEN_TEST_PG")
    base = PG_SERVER.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    stem = f"mailhaven_test_{os.getpid()}_{secrets.token_hex(3)}"
    names = {part: f"{stem}_{part}" for part in ("main", *REGIONS)}
    with admin:
        try:
            for name in names.values():
                admin.execute(f'CREATE DATABASE "{name}"')
                _migrated(f"{base}/{name}")
            yield {part: f"{base}/{name}" for part, name in names.items()}
        finally:
            for name in names.values():
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def regions_settings(backend: str, tmp_path: Path,
                     request: pytest.FixtureRequest) -> Settings:
    """Settings for regions us (home) and eu, each in a database of its own."""
    common = {"data_dir": tmp_path, "hostname": "mx.mailhaven.test", "lease_seconds": 60,
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
