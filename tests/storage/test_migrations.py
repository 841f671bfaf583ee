"""Migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import text

from mailhaven.accounts.service import issue_key
from mailhaven.config import Settings
from mailhaven.domains.dkim import DkimKeyPair, generate_rsa
from mailhaven.models import metadata
from mailhaven.services import Services
from mailhaven.storage.base import new_id
from mailhaven.storage.db import MIGRATIONS, Database
from tests.conftest import PG_SERVER
from tests.delivery.dkim_check import from_records, verify_each
from tests.delivery.sinks import send
from tests.support import LiveServer, Sink, deliver_due


def test_the_migrated_schema_matches_the_models(services) -> None:
    with services.db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_migrating_twice_is_harmless(services) -> None:
    services.db.migrate()
    assert services.db.ping()


# -- 0006: DKIM keys move to their own table ----------------------------------------------
@pytest.fixture
def blank_url(backend: str, tmp_path, request: pytest.FixtureRequest) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """An empty database of this test's own (the shared test database is at head)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    base = request.getfixturevalue("pg_database").rsplit("/", 1)[0]
    name = f"mailhaven_migration_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(PG_SERVER, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{base}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _downgrade(db: Database, revision: str, vault: object = None) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with db.migrating() as conn:
        config.attributes["connection"] = conn
        config.attributes["vault"] = vault
        command.downgrade(config, revision)


def _domain_before_0006(services: Services, account_id: str, pair: DkimKeyPair) -> str:
    """A domain as stored before revision 0006: key in its columns, verified, with stats."""
    domain_id = new_id()
    status = {"spf": {"valid": "valid", "cached": ["v=spf1 a:mx.mailhaven.test ~all"]},
              "dkim": {"valid": "valid", "cached": [f"k=rsa; p={pair.public_b64}"]}}
    with services.db.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO domains (id, account_id, name, state, spam_action, wildcard,"
            " require_tls, skip_verification, web_prefix, web_scheme, dkim_selector,"
            " dkim_key_size, dkim_private_key, dkim_public_key, dns_status, dns_checked_at,"
            " created_at) VALUES (:id, :account, 'old.example.com', 'active', 'disabled',"
            " false, false, false, 'email', 'http', 's2019', 1024, :private, :public,"
            " :status, :now, :now)"), {
                "id": domain_id, "account": account_id, "public": pair.public_b64,
                "private": services.vault.seal_secret(f"dkim:{domain_id}", pair.private_pem),
                "status": json.dumps(status), "now": services.clock.now()})
        conn.execute(text(
            "INSERT INTO stat_counts (domain_id, tag, hour, event, kind, count)"
            " VALUES (:id, '', 0, 'accepted', 'outgoing', 7)"), {"id": domain_id})
    return domain_id


def test_a_domain_from_before_revision_0006_keeps_its_key_records_and_rows(
        blank_url, tmp_path, clock) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(data_dir=tmp_path, database_url=blank_url,
                        hostname="mx.mailhaven.test", lease_seconds=60)
    services = Services.start(settings, clock, migrate=False)
    try:
        services.db.migrate("0005")
        account_id = new_id()
        with services.db.engine.begin() as conn:  # an account as revision 0005 stored it
            conn.execute(text("INSERT INTO accounts (id, region, created_at)"
                              " VALUES (:id, 'us', 0)"), {"id": account_id})
        pair = generate_rsa(1024)
        domain_id = _domain_before_0006(services, account_id, pair)

        services.db.migrate(vault=services.vault)
        with services.db.transaction() as session:
            api_key = issue_key(session, account_id)
        record = f"k=rsa; p={pair.public_b64}"
        with LiveServer(services) as live, live.client(api_key) as api:
            body = api.get("/v3/domains/old.example.com").json()
            assert body["domain"]["state"] == "active"
            [dkim] = [r for r in body["sending_dns_records"] if "._domainkey." in r["name"]]
            assert dkim == {"record_type": "TXT", "name": "s2019._domainkey.old.example.com",
                            "value": record, "valid": "valid", "cached": [record],
                            "is_active": True}
            send(api, "old.example.com")
            with Sink() as sink:
                deliver_due(services, sink)
        [got] = sink.received
        assert verify_each(got.data, from_records([dkim])) == [("rsa-sha256", "s2019", True)]
        with services.db.engine.connect() as conn:  # the rebuild-free migration kept children
            assert conn.execute(text("SELECT count FROM stat_counts")).scalar() == 7
            assert conn.execute(text("SELECT count(*) FROM events")).scalar() == 2

        _downgrade(services.db, "0005", services.vault)
        with services.db.engine.connect() as conn:
            row = conn.execute(text("SELECT dkim_selector, dkim_public_key, dns_status"
                                    " FROM domains WHERE id = :i"), {"i": domain_id}).one()
            assert (row[0], row[1]) == ("s2019", pair.public_b64)
            assert json.loads(row[2])["dkim"]["valid"] == "valid"
            assert conn.execute(text("SELECT count(*) FROM events")).scalar() == 2
        services.db.migrate(vault=services.vault)
        with services.db.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM dkim_keys")).scalar() == 1
    finally:
        services.close()


# -- 0043: room for HOT updates in vault_keys -----------------------------------------------
@pytest.mark.postgres_only  # SQLite has no fillfactor
def test_vault_keys_leaves_room_on_each_page_on_postgresql(services) -> None:
    """An erasure's destroyed content keys are new versions of their rows: with room on
    the page, PostgreSQL writes them there and no index entry (`Vault.destroy`)."""
    with services.db.engine.connect() as conn:
        options = conn.execute(text(
            "SELECT reloptions FROM pg_class WHERE relname = 'vault_keys'")).scalar()
    assert "fillfactor=60" in (options or [])
