"""The deployment files (deploy/) name only commands Mailhaven has, and parse."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from mailhaven.cli import app

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
MAILHAVEN = re.compile(r"\bmailhaven\s+(.+?)(?:['\"]|$)")


def _commands(line: str) -> list[str]:
    """`mailhaven` and its (sub)commands in a line, without options and arguments."""
    found = MAILHAVEN.search(line)
    if found is None:
        return []
    words = [w for w in shlex.split(found.group(1).strip("'\"")) if not w.startswith("-")]
    return words[:2]


def _exists(words: list[str]) -> bool:
    """Whether `mailhaven WORDS --help` succeeds: the command (and subcommand) is real."""
    result = CliRunner().invoke(app, [*words, "--help"])
    return result.exit_code == 0


def _unit_commands() -> list[tuple[str, list[str]]]:
    found = []
    for unit in sorted((DEPLOY / "systemd").glob("*.service")):
        for line in unit.read_text().splitlines():
            if line.startswith("ExecStart="):
                found.append((unit.name, _commands(line)))
    return found


def test_every_units_exec_start_is_a_mailhaven_command() -> None:
    commands = _unit_commands()
    assert {name for name, _ in commands} >= {"mailhaven-api.service",
                                              "mailhaven-worker@.service"}
    for name, words in commands:
        assert words and _exists(words), f"{name}: mailhaven {' '.join(words)}"
    assert (DEPLOY / "systemd" / "mailhaven-backup.timer").exists()


def test_the_compose_file_parses_and_its_commands_exist() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "api", "worker", "migrate", "proxy"} <= set(services)
    mailhaven = {name: s for name, s in services.items()
                 if "mailhaven" in str(s.get("image", ""))}
    assert set(mailhaven) >= {"api", "worker", "migrate"}
    for name, service in mailhaven.items():
        assert _exists(list(service["command"])), name
        assert "postgres" in service["environment"]["MAILHAVEN_DATABASE_URL"]


@pytest.mark.parametrize("instruction", ["ENTRYPOINT", "CMD"])
def test_the_containerfile_runs_a_mailhaven_command(instruction: str) -> None:
    lines = [line for line in (DEPLOY / "Containerfile").read_text().splitlines()
             if line.startswith(f"{instruction} ")]
    assert len(lines) == 1
    words = yaml.safe_load(lines[0].removeprefix(f"{instruction} "))  # a JSON array
    if instruction == "ENTRYPOINT":
        assert words == ["mailhaven"]
    else:
        assert _exists(words)
