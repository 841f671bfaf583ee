"""`mailhaven audit verify` and `list` as a real subprocess, against a log tampered with SQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

import pytest

from mailhaven import audit
from tests.audit.tampering import delete_row, edit_details, swap_rows

CLI = [sys.executable, "-c", "from mailhaven.cli import app; app()"]


def _cli(settings, *args: str) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def]
    env = {**os.environ, "MAILHAVEN_DATABASE_URL": settings.database_url,
           "MAILHAVEN_DATA_DIR": str(settings.data_dir)}
    return subprocess.run([*CLI, "audit", *args], env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def five_steps(services) -> None:  # type: ignore[no-untyped-def]
    for step in range(1, 6):
        with services.db.transaction() as session:
            audit.append(session, services.vault, actor="cli", action="test.step",
                         target=f"req-{step}", details={"step": step},
                         now=services.clock.now())
        services.clock.advance(1)


def test_verify_passes_an_intact_log_and_list_shows_the_newest_rows(
        settings, five_steps) -> None:
    verified = _cli(settings, "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "intact" in verified.stdout and "5 rows" in verified.stdout

    listed = _cli(settings, "list", "--limit", "2", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["id"], r["target"], r["details"]) for r in rows] == [
        (5, "req-5", {"step": 5}), (4, "req-4", {"step": 4})]
    assert rows[0]["prev_hash"] == rows[1]["hash"]
    table = _cli(settings, "list")
    assert table.returncode == 0 and "req-3" in table.stdout


TAMPERING: dict[str, tuple[Callable, int]] = {
    "a row's details edited": (lambda s: edit_details(s, 3), 3),
    "a middle row deleted": (lambda s: delete_row(s, 3), 4),
    "two rows' order swapped": (lambda s: swap_rows(s, 2, 4), 2),
    "the newest row deleted": (lambda s: delete_row(s, 5), 5),
}


@pytest.mark.parametrize("case", list(TAMPERING))
def test_verify_exits_1_naming_the_first_bad_row(settings, services, five_steps,
                                                 case: str) -> None:
    tamper, first_bad = TAMPERING[case]
    tamper(services)
    verified = _cli(settings, "verify")
    assert verified.returncode == 1, verified.stdout + verified.stderr
    assert f"first bad row: {first_bad})" in verified.stdout
    assert f"row {first_bad}:" in verified.stdout

    as_json = json.loads(_cli(settings, "verify", "--json").stdout)
    assert (as_json["intact"], as_json["first_bad_row"]) == (False, first_bad)
