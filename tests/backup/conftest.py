"""A second, empty database to restore into, of either dialect."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from tests.conftest import PG_SERVER


@pytest.fixture
def empty_database(tmp_path: Path,
                   request: pytest.FixtureRequest) -> Iterator[Callable[[str], str]]:
    """`empty_database("sqlite" | "postgresql")` → the URL of a database with no tables;
    PostgreSQL ones are dropped at the end."""
    made: list[str] = []

    def make(dialect: str) -> str:
        if dialect == "sqlite":
            return f"sqlite:///{tmp_path / f'restored-{secrets.token_hex(3)}.db'}"
        server = request.getfixturevalue("pg_database")  # skips when PostgreSQL is absent
        name = f"mailhaven_restore_{secrets.token_hex(6)}"
        with psycopg.connect(PG_SERVER, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        return server.rsplit("/", 1)[0] + f"/{name}"

    yield make
    if made:
        with psycopg.connect(PG_SERVER, autocommit=True) as admin:
            for name in made:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
