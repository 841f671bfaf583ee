"""A PostgreSQL cluster of the test's own (initdb + pg_ctl), to stop and start under a live
Mailhaven: what the outage tests share."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from mailhaven.accounts.service import create_account
from mailhaven.clock import FrozenClock
from mailhaven.config import Settings
from mailhaven.delivery.models import Delivery
from mailhaven.domains.models import Domain
from mailhaven.domains.service import create_domain
from mailhaven.events.models import Event
from mailhaven.messages.models import Message
from mailhaven.runner import Runner
from mailhaven.services import Services
from tests.conftest import REQUIRE_PG
from tests.support import free_port


class Cluster:
    """A private PostgreSQL cluster: started, stopped, started again."""

    def __init__(self, folder: Path) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        if not found:
            if REQUIRE_PG:
                pytest.fail("PostgreSQL's server binaries (pg_ctl, initdb) are required")
            pytest.skip("PostgreSQL's server binaries (pg_ctl, initdb) are not installed")
        self.bin = Path(found[-1]).parent
        self.data = folder / "cluster"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        # PostgreSQL refuses to run as root: as the system's postgres user then
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        folder.mkdir(parents=True, exist_ok=True)
        if self.as_user:
            shutil.chown(folder, "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "-E", "UTF8", "--no-sync")

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self.as_user, str(self.bin / tool), *args], check=True,
                       capture_output=True, timeout=120)

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-w", "-l", str(self.data / "log"),
                  "-o", f"-p {self.port} -c listen_addresses=127.0.0.1 "
                        f"-c unix_socket_directories='' -c fsync=off", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-w", "-m", "fast", "stop")


def private_cluster() -> Iterator[Cluster]:
    """A started cluster, stopped and removed after the test (each test module's `cluster`
    fixture yields from it)."""
    # Not under pytest's temporary folders: their parents are closed to the postgres user
    folder = Path(tempfile.mkdtemp(prefix="mailhaven-pg-"))
    try:
        made = Cluster(folder)
        made.start()
        try:
            yield made
        finally:
            with contextlib.suppress(subprocess.CalledProcessError):  # stopped already
                made.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def on_cluster(cluster: Cluster, tmp_path: Path, clock: FrozenClock,
                **settings: Any) -> tuple[Services, str, Domain]:
    """Mailhaven on the cluster, with an account (its API key) and its domain."""
    services = Services.start(Settings(data_dir=tmp_path, database_url=cluster.url,
                                       require_verified_domains=False,
                                       **settings), clock)
    with services.db.transaction() as session:
        issued = create_account(session, services.vault, name="Acme", email="ops@acme.test",
                                clock=clock)
        domain = create_domain(session, services.vault, issued.account_id,
                               {"name": "mg.acme.test"}, clock)
    return services, issued.api_key, domain


async def run_until(runner: Runner, done: Callable[[], bool]) -> None:
    """The runner's own loop (as `mailhaven worker` runs it, rounds that fail retried) until
    `done` holds, or 60 seconds."""
    stop = asyncio.Event()
    running = asyncio.create_task(runner.run(stop))
    try:
        for _ in range(600):
            await asyncio.sleep(0.1)
            if await asyncio.to_thread(_holds, done):
                break
    finally:
        stop.set()
        await running


def _holds(done: Callable[[], bool]) -> bool:
    try:
        return done()
    except Exception:  # the database is still away
        return False


def stored(services: Services) -> tuple[int, int, int]:
    """Messages, deliveries and events stored."""
    with services.db.sessions() as session:
        return (session.scalar(select(func.count()).select_from(Message)) or 0,
                session.scalar(select(func.count()).select_from(Delivery)) or 0,
                session.scalar(select(func.count()).select_from(Event)) or 0)


def sqlite_integrity(path: Path) -> str:
    """`PRAGMA integrity_check` of the SQLite file at `path`: "ok" when sound."""
    with sqlite3.connect(path) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
