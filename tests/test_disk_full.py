"""A full disk under the data directory (its SQLite database, key, backups): the API answers
503 with Retry-After in Mailgun's shape, SMTP submission 452 4.3.1, the CLI one clear line
and a non-zero exit; nothing is accepted that was not stored, nothing is corrupted
(`PRAGMA integrity_check`), and everything works again once space returns. The data
directory is a small tmpfs the test mounts (as root)."""

from __future__ import annotations

import base64
import errno
import os
import shutil
import smtplib
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailhaven.accounts.service import create_account
from mailhaven.clock import FrozenClock
from mailhaven.config import Settings
from mailhaven.credentials import service as credentials
from mailhaven.domains.service import create_domain
from mailhaven.services import Services
from tests.conftest import REQUIRE_PG
from tests.outage_support import sqlite_integrity, stored
from tests.submission.conftest import RunningSubmission
from tests.support import LiveServer

CLI = [sys.executable, "-c", "from mailhaven.cli import app; app()"]
MESSAGE = {"from": "news@mg.acme.test", "to": "ann@example.org", "subject": "Hi",
           "text": "A long letter.\r\n" * 20_000}  # pages more than a few: the disk must grow
PASSWORD = "s3cret-pass-123"  # the test's own SMTP login


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A 32 MB tmpfs to fill."""
    folder = Path(tempfile.mkdtemp(prefix="mailhaven-full-"))
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(folder)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        folder.rmdir()
        reason = f"can't mount a tmpfs to fill (needs root): {mounted.stderr.strip()}"
        if REQUIRE_PG:  # the full run: every fault is tested
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)
        folder.rmdir()


@pytest.fixture
def services(data_dir: Path, sqlite_schema: Path) -> Iterator[tuple[Services, str]]:
    """Mailhaven with everything in the data directory, an account (its API key), a domain
    and an SMTP login for it."""
    shutil.copyfile(sqlite_schema, data_dir / "mailhaven.db")
    clock = FrozenClock()
    started = Services.start(Settings(data_dir=data_dir, hostname="127.0.0.1",
                                      require_verified_domains=False), clock, migrate=False)
    try:
        with started.db.transaction() as session:
            issued = create_account(session, started.vault, name="Acme",
                                    email="ops@acme.test", clock=clock)
            domain = create_domain(session, started.vault, issued.account_id,
                                   {"name": "mg.acme.test"}, clock)
            credentials.create(session, started.vault, domain, "mailer@mg.acme.test",
                               PASSWORD, clock)
        yield started, issued.api_key
    finally:
        started.close()


def test_the_api_and_smtp_refuse_for_now_on_a_full_disk_and_work_when_space_returns(
        services: tuple[Services, str], data_dir: Path) -> None:
    running, api_key = services
    with (LiveServer(running) as live, live.client(api_key) as api,
          RunningSubmission(running) as smtp):
        before = stored(running)
        with _full(data_dir):
            refused = api.post("/v3/mg.acme.test/messages", data=MESSAGE)
            assert refused.status_code == 503, refused.text
            assert refused.headers["Retry-After"] == "5"
            assert set(refused.json()) == {"message"}
            code, reply = _submit(smtp)
            assert (code, reply[:5]) == (452, "4.3.1"), reply
            assert stored(running) == before  # nothing accepted that was not stored
        assert sqlite_integrity(data_dir / "mailhaven.db") == "ok"
        assert api.post("/v3/mg.acme.test/messages", data=MESSAGE).status_code == 200
        assert _submit(smtp)[0] == 250
        assert stored(running)[0] == before[0] + 2
    assert sqlite_integrity(data_dir / "mailhaven.db") == "ok"


def test_the_cli_says_the_disk_is_full_exits_non_zero_and_works_when_space_returns(
        services: tuple[Services, str], data_dir: Path) -> None:
    env = {**os.environ, "MAILHAVEN_DATA_DIR": str(data_dir)}
    env.pop("MAILHAVEN_DATABASE_URL", None)
    create = [*CLI, "accounts", "create", "--name", "Initech", "--email", "it@initech.test"]
    backup = [*CLI, "backup", "create", str(data_dir / "backup.mhbak")]
    with _full(data_dir):
        files = set(data_dir.iterdir())
        made = subprocess.run(create, env=env, capture_output=True, text=True, timeout=120)
        assert made.returncode == 75, made.stderr
        assert "no space left" in made.stderr and "Traceback" not in made.stderr
        saved = subprocess.run(backup, env=env, capture_output=True, text=True, timeout=120)
        assert saved.returncode != 0 and "No space left" in saved.stderr, saved.stderr
        assert "Traceback" not in saved.stderr
        assert set(data_dir.iterdir()) == files  # no half-written backup left behind
    assert sqlite_integrity(data_dir / "mailhaven.db") == "ok"
    assert subprocess.run(create, env=env, capture_output=True, timeout=120).returncode == 0
    assert subprocess.run(backup, env=env, capture_output=True, timeout=120).returncode == 0
    assert sqlite_integrity(data_dir / "mailhaven.db") == "ok"


class _full:
    """The filesystem under `folder` filled to its last byte, until the block ends. SQLite's
    write-ahead log is emptied first, so that a write must grow a file."""

    def __init__(self, folder: Path) -> None:
        self.filler = folder / "filler"
        self.folder = folder

    def __enter__(self) -> None:
        with sqlite3.connect(self.folder / "mailhaven.db") as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT)
        try:
            for size in (1 << 20, 4096, 1):
                try:
                    while True:
                        os.write(fd, b"\0" * size)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
        finally:
            os.close(fd)

    def __exit__(self, *exc: object) -> None:
        self.filler.unlink()


def _submit(smtp: RunningSubmission) -> tuple[int, str]:
    """AUTH and a message: DATA's reply (or the first that isn't a success)."""
    with smtplib.SMTP("127.0.0.1", smtp.port, timeout=30) as client:
        client.starttls(context=smtp.context())
        client.ehlo()
        login = base64.b64encode(f"\0mailer@mg.acme.test\0{PASSWORD}".encode()).decode()
        code, text = client.docmd("AUTH", f"PLAIN {login}")
        if code != 235:
            return code, text.decode()
        body = "Subject: Hi\r\nFrom: news@mg.acme.test\r\n\r\n" + MESSAGE["text"] + "\r\n"
        try:
            client.sendmail("news@mg.acme.test", ["ann@example.org"], body.encode())
        except smtplib.SMTPResponseException as refused:
            return refused.smtp_code, refused.smtp_error.decode()
        return 250, "queued"
