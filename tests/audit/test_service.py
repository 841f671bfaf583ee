"""The audit log's chain: appends, concurrency, append-only triggers, sealed details, anchor."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest
from sqlalchemy import delete, func, select, text
from sqlalchemy.exc import DBAPIError

from mailhaven import audit
from mailhaven.audit import AuditEntry, HeadAnchor
from mailhaven.audit.service import GENESIS
from mailhaven.vault import VaultKey
from tests.audit.tampering import delete_row, edit_details


def _append(services, step: int, **fields) -> AuditEntry:  # type: ignore[no-untyped-def]
    with services.db.transaction() as session:
        return audit.append(session, services.vault, actor="system", action="test.step",
                            details={"step": step}, now=services.clock.now(), **fields)


def _anchor(services) -> HeadAnchor:  # type: ignore[no-untyped-def]
    return HeadAnchor(services.settings.data_dir / audit.HEAD_FILE)


def _verify(services) -> list[str]:  # type: ignore[no-untyped-def]
    with services.db.sessions() as session:
        return [str(p) for p in audit.verify(session, services.vault, _anchor(services))]


def _ids(services) -> list[int]:  # type: ignore[no-untyped-def]
    with services.db.sessions() as session:
        return list(session.scalars(select(AuditEntry.id).order_by(AuditEntry.id)))


def test_each_row_names_its_predecessor_and_the_head_is_anchored_after_commit(
        services) -> None:
    first, second = _append(services, 1), _append(services, 2, target="req-42")
    assert (first.id, first.prev_hash) == (1, GENESIS)
    assert (second.id, second.prev_hash) == (2, first.hash)
    assert _anchor(services).read() == (2, second.hash)
    with services.db.sessions() as session:
        [row] = audit.recent(session, 1)
    assert (row.target, json.loads(row.details)) == ("req-42", {"step": 2})
    assert _verify(services) == []


def test_a_rolled_back_step_leaves_no_row_and_no_anchor(services) -> None:
    _append(services, 1)
    with pytest.raises(RuntimeError), services.db.transaction() as session:
        audit.append(session, services.vault, actor="cli", action="test.step",
                     now=services.clock.now())
        raise RuntimeError("the step itself failed")
    assert _ids(services) == [1]
    assert _anchor(services).read().id == 1
    assert _append(services, 2).id == 2
    assert _verify(services) == []


def test_appends_from_many_threads_never_fork_the_chain(services) -> None:
    def work() -> None:
        for step in range(10):
            _append(services, step)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert _ids(services) == list(range(1, 81))
    assert _verify(services) == []
    assert _anchor(services).read().id == 80


APPENDER = """
from mailhaven import audit
from mailhaven.config import Settings
from mailhaven.services import Services

services = Services.start(Settings.from_env())
for step in range(15):
    with services.db.transaction() as session:
        audit.append(session, services.vault, actor="system", action="test.process",
                     details={"step": step}, now=services.clock.now())
services.close()
"""


def test_appends_from_two_processes_never_fork_the_chain(settings, services) -> None:
    env = {**os.environ, "MAILHAVEN_DATABASE_URL": settings.database_url,
           "MAILHAVEN_DATA_DIR": str(settings.data_dir)}
    procs = [subprocess.Popen([sys.executable, "-c", APPENDER], env=env,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read() if proc.stderr else ""
        if proc.stderr:
            proc.stderr.close()
    assert _ids(services) == list(range(1, 31))
    assert _verify(services) == []
    assert _anchor(services).read().id == 30


@pytest.mark.parametrize("statement", [
    "UPDATE audit_log SET details = '{}'",
    "UPDATE audit_log SET key_id = NULL",
    "DELETE FROM audit_log",
])
def test_the_database_refuses_to_change_or_delete_a_row(services, statement: str) -> None:
    _append(services, 1)
    with pytest.raises(DBAPIError, match="append-only"), services.db.transaction() as session:
        session.execute(text(statement))
    with pytest.raises(DBAPIError, match="append-only"), services.db.transaction() as session:
        session.execute(delete(AuditEntry).where(AuditEntry.id == 1))
    assert _ids(services) == [1]
    assert _verify(services) == []


def test_erasing_the_subjects_key_leaves_the_row_unreadable_and_the_chain_intact(
        services, account) -> None:
    vault = services.vault
    with services.db.transaction() as session:
        key = vault.subjects(session, account[0], ["ann@example.org"])["ann@example.org"]
        entry = audit.append(session, vault, actor=f"account:{account[0]}",
                             action="privacy.rectification.done", target="req-7",
                             details={"field": "address"},
                             sealed={"before": "ann@example.org", "after": "ann@new.example"},
                             key=key, now=services.clock.now())
    _append(services, 2)
    assert b"ann@" not in entry.details_sealed
    assert entry.subject_index == key.blind_index
    with services.db.sessions() as session:
        stored = session.get(AuditEntry, entry.id)
        assert audit.open_sealed(session, vault, stored) == {
            "before": "ann@example.org", "after": "ann@new.example"}

    with services.db.transaction() as session:  # erasure: the subject's key row goes
        session.execute(delete(VaultKey).where(VaultKey.id == key.id))
    vault.forget(key.id)

    with services.db.sessions() as session:
        stored = session.get(AuditEntry, entry.id)
        assert stored.key_id == key.id and stored.details_sealed == entry.details_sealed
        assert audit.open_sealed(session, vault, stored) is None
    assert _verify(services) == []


@pytest.mark.parametrize("fields", [
    {"details": {"recipient": "ann@example.org"}},
    {"target": "ann@example.org"},
    {"details": {"nested": ["Ann <ann@example.org>"]}},
])
def test_an_address_in_the_clear_parts_is_refused(services, fields: dict) -> None:
    with pytest.raises(ValueError, match="sealed"), services.db.transaction() as session:
        audit.append(session, services.vault, actor="cli", action="test.step",
                     now=services.clock.now(), **fields)
    assert _ids(services) == []


def test_sealed_details_need_a_key(services) -> None:
    with pytest.raises(ValueError, match="key"), services.db.transaction() as session:
        audit.append(session, services.vault, actor="cli", action="test.step",
                     sealed={"name": "Ann"}, now=services.clock.now())


def test_an_edited_row_is_found_by_verify(services) -> None:
    for step in range(1, 4):
        _append(services, step)
    edit_details(services, 2)
    assert _verify(services) == [
        "row 2: changed: its hash does not match its contents and position"]


def test_the_anchor_does_not_move_past_rows_cut_off_the_end(services) -> None:
    for step in range(1, 4):
        _append(services, step)
    recorded = _anchor(services).read()
    delete_row(services, 3)
    again = _append(services, 30)  # a later step takes the removed row's id
    _append(services, 4)
    assert again.id == 3 and again.hash != recorded.hash
    assert _anchor(services).read() == recorded
    assert _verify(services) == [
        f"row 3: replaced: not the row {_anchor(services).path} recorded as the head"]
    with services.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(AuditEntry)) == 4
