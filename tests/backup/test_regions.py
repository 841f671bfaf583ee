"""`backup restore` into the wrong database of a split installation: the refusal says
where the backup belongs, or which region's key setting to look at, never the unsplit one."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from mailhaven.cli import app
from mailhaven.config import Settings
from mailhaven.services import Platform
from mailhaven.vault import Keyring


def _cli(settings: Settings, *args: str, **extra: str):  # type: ignore[no-untyped-def]
    env = {"MAILHAVEN_DATA_DIR": str(settings.data_dir),
           "MAILHAVEN_DATABASE_URL": settings.database_url,
           "MAILHAVEN_REGIONS": ",".join(settings.regions),
           "MAILHAVEN_HOSTNAME": settings.hostname, "MAILHAVEN_SITE_REGION": ""}
    for name, url in settings.region_database_urls:
        env[f"MAILHAVEN_REGION_{name.upper()}_DATABASE_URL"] = url
    return CliRunner().invoke(app, list(args), env={**env, **extra})


def test_a_backup_restored_into_another_region_is_told_where_it_belongs(
        platform: Platform, regions_settings: Settings, tmp_path: Path) -> None:
    archive = tmp_path / "eu.zip"
    made = _cli(regions_settings, "backup", "create", str(archive), "--region", "eu")
    assert made.exit_code == 0, made.stderr

    wrong = _cli(regions_settings, "backup", "restore", str(archive), "--region", "us",
                 "--replace")
    said = " ".join(wrong.stderr.split())
    assert wrong.exit_code == 2, said
    assert "belongs to region eu" in said and "--region eu" in said
    assert "set MAILHAVEN_MASTER_KEY_FILE" not in said

    into_main = _cli(regions_settings, "backup", "restore", str(archive), "--region", "main",
                     "--replace")
    assert "belongs to region eu" in " ".join(into_main.stderr.split())

    # Another installation's backup (no database here has its key): the region's setting
    foreign = tmp_path / "foreign.zip"
    other_key = tmp_path / "other.key"
    other_key.write_text(Keyring.generate().to_json())
    made = _cli(regions_settings, "backup", "create", str(foreign), "--region", "eu",
                MAILHAVEN_REGION_EU_MASTER_KEY_FILE=str(other_key))
    assert made.exit_code == 0, made.stderr
    refused = _cli(regions_settings, "backup", "restore", str(foreign), "--region", "us",
                   "--replace")
    said = " ".join(refused.stderr.split())
    assert refused.exit_code == 2, said
    assert "MAILHAVEN_REGION_US_MASTER_KEY_FILE" in said
    assert "another region, database or installation" in said
