"""`mailhaven backup create|restore` as an operator runs them, in a subprocess."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.backup.support import ANN, BOB, BODY, api_view, send_and_deliver
from tests.support import LiveServer

from mailhaven.services import Services
from mailhaven.vault import Keyring

CLI = [sys.executable, "-c", "from mailhaven.cli import app; app()"]


def _cli(settings, *args: str, url: str | None = None,  # type: ignore[no-untyped-def]
         **env: str) -> subprocess.CompletedProcess:
    env = {"MAILHAVEN_DATABASE_URL": url or settings.database_url,
           "MAILHAVEN_DATA_DIR": str(settings.data_dir), **env}
    return subprocess.run([*CLI, "backup", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120)


def test_create_then_restore_into_an_empty_database(api, services, domain, account, settings,
                                                    empty_database, backend, tmp_path) -> None:
    send_and_deliver(api, services, domain)
    before = api_view(api, domain)
    path = tmp_path / "nightly.zip"
    made = _cli(settings, "create", str(path))
    assert made.returncode == 0, made.stderr
    assert "events" in made.stdout and "master key file is not in the backup" in made.stdout
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        assert "manifest.json" in names and "tables/events.jsonl" in names
        everything = b"".join(archive.read(n) for n in names)
    keyring = Keyring.from_json(settings.resolved_master_key_file.read_text())
    for secret in (keyring.kek, keyring.index_key):
        assert secret not in everything and base64.b64encode(secret) not in everything

    again = _cli(settings, "create", str(path))
    assert again.returncode == 2 and "exists; pass --force" in again.stderr
    assert _cli(settings, "create", "--force", "--json", str(path)).returncode == 0

    url = empty_database(backend)
    restored = _cli(settings, "restore", "--json", str(path), url=url)
    assert restored.returncode == 0, restored.stderr
    summary = json.loads(restored.stdout)
    assert summary["tables"]["events"] == len(before["events"]) and summary["erasures"] == 0

    target = Services.start(settings.with_(database_url=url), services.clock)
    try:
        with LiveServer(target) as live, live.client(account[1]) as restored_api:
            assert api_view(restored_api, domain) == before
    finally:
        target.close()

    refused = _cli(settings, "restore", str(path), url=url)
    assert refused.returncode == 2 and "not empty; pass --replace" in refused.stderr


def test_restore_over_the_database_erases_again_and_prints_counts_only(
        api, services, domain, settings, tmp_path) -> None:
    send_and_deliver(api, services, domain)
    path = tmp_path / "before.zip"
    assert _cli(settings, "create", str(path)).returncode == 0
    assert api.delete("/v1/privacy/recipients/ann%40example.org").status_code == 200

    restored = _cli(settings, "restore", "--replace", str(path))
    assert restored.returncode == 0, restored.stderr
    assert "Erasure ledger re-applied (1 erasures)" in restored.stdout
    printed = restored.stdout + restored.stderr
    assert ANN not in printed and BODY not in printed
    recipients = {e["recipient"] for e in api.get(f"/v3/{domain}/events").json()["items"]}
    assert recipients == {BOB}


def test_restore_refuses_what_it_cannot_restore_faithfully(api, services, domain, settings,
                                                           tmp_path) -> None:
    path = tmp_path / "b.zip"
    assert _cli(settings, "create", str(path)).returncode == 0

    newer = _rewrite_manifest(path, tmp_path / "newer.zip", revision="9999")
    said = _cli(settings, "restore", "--replace", str(newer))
    assert said.returncode == 2 and "newer than this Mailhaven" in said.stderr

    older = _rewrite_manifest(path, tmp_path / "older.zip", revision="0007")
    said = _cli(settings, "restore", "--replace", str(older))
    assert said.returncode == 2 and "older than this Mailhaven" in said.stderr

    other_key = tmp_path / "other.key"
    other_key.write_text(Keyring.generate().to_json())
    said = _cli(settings, "restore", "--replace", str(path),
                MAILHAVEN_MASTER_KEY_FILE=str(other_key))
    assert said.returncode == 2 and "another master key" in said.stderr

    said = _cli(settings, "restore", "--replace", str(path),
                MAILHAVEN_MASTER_KEY_FILE=str(tmp_path / "missing.key"))
    assert said.returncode == 2 and "No master key file" in said.stderr
    assert not (tmp_path / "missing.key").exists()  # never made up: it would open nothing

    not_a_backup = tmp_path / "notes.zip"
    with zipfile.ZipFile(not_a_backup, "w") as archive:
        archive.writestr("notes.txt", "hello")
    said = _cli(settings, "restore", "--replace", str(not_a_backup))
    assert said.returncode == 2 and "not a Mailhaven backup" in said.stderr
    assert api.get("/v3/domains").json()["items"][0]["name"] == domain  # nothing was touched


def _rewrite_manifest(source: Path, target: Path, **changes: str) -> Path:
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for name in old.namelist():
            data = old.read(name)
            if name == "manifest.json":
                data = json.dumps({**json.loads(data), **changes}).encode()
            new.writestr(name, data)
    return target


def test_create_into_a_missing_folder_is_one_line(services, settings, tmp_path) -> None:
    path = tmp_path / "backups" / "nightly.zip"
    refused = _cli(settings, "create", str(path))
    assert refused.returncode == 2, refused.stderr
    assert f"mkdir -p {path.parent}" in refused.stderr and "Traceback" not in refused.stderr
    assert not path.parent.exists()
