"""`mailhaven privacy …` run as a user runs it: the record of processing (N1), retention (N7)."""

from __future__ import annotations

import json
import re

from mailhaven.models import metadata
from tests.test_cli import _cli


def _tables() -> dict[str, list[str]]:
    return {t.name: [c.name for c in t.columns] for t in metadata.sorted_tables}


def test_the_json_inventory_lists_every_table_and_column_classified() -> None:
    done = _cli({}, "privacy", "inventory", "--format", "json")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["schema"] == "mailhaven.record-of-processing/1"
    listed = {t["table"]: [c["column"] for c in t["columns"]] for t in record["tables"]}
    assert listed == _tables()
    for table in record["tables"]:
        for col in table["columns"]:
            assert col["category"] in ("personal", "non-personal")
            assert col["data_subject"] and col["purposes"] and col["legal_basis"]
            assert col["retention"]
    subjects = {s["data_subject"]: s for s in record["data_subjects"]}
    assert set(subjects) == {"recipient", "account holder", "recipient or account holder",
                             "SMTP user", "sender", "list member", "people a route names",
                             "website visitor", "account user"}
    recipient = [c for p in subjects["recipient"]["processing"] for c in p["columns"]]
    assert "messages.content_sealed" in recipient and "deliveries.address_sealed" in recipient


def test_the_markdown_inventory_has_a_section_for_every_table_with_all_its_columns() -> None:
    done = _cli({}, "privacy", "inventory")  # Markdown is the default
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert text.startswith("# Record of processing activities (GDPR Article 30)")
    sections = dict(re.findall(r"^### `([a-z_]+)`\n(.*?)(?=^### |\Z)", text, re.M | re.S))
    assert set(sections) == set(_tables())
    for table, columns in _tables().items():
        rows = re.findall(r"^\| `([a-z_]+)` \| (personal|non-personal) \|", sections[table],
                          re.M)
        assert [name for name, _ in rows] == columns, table
    assert "### Recipient" in text and "### Account holder" in text


def test_retention_run_counts_with_dry_run_then_purges(api, services, settings, domain,
                                                      clock) -> None:
    from tests.delivery.sinks import send
    from tests.support import Sink, deliver_due

    clock.advance(-40 * 86_400)  # the CLI runs on the real clock: this mail is 40 days old
    with Sink() as sink:
        send(api, domain)
        deliver_due(services, sink)
    env = {"MAILHAVEN_DATABASE_URL": settings.database_url,
           "MAILHAVEN_DATA_DIR": str(settings.data_dir)}
    expected = {"events": 2, "message_bodies": 1, "webhook_deliveries": 0, "requests": 0,
                "inbound_messages": 0, "route_posts": 0, "contact_messages": 0}

    dry = _cli(env, "privacy", "retention", "run", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout) == {"dry_run": True, "expired": expected}
    assert len(api.get(f"/v3/{domain}/events").json()["items"]) == 2

    done = _cli(env, "privacy", "retention", "run")
    assert done.returncode == 0, done.stderr
    assert re.search(r"events\s+│\s+2\b", done.stdout), done.stdout
    assert api.get(f"/v3/{domain}/events").json()["items"] == []
    again = _cli(env, "privacy", "retention", "run", "--json")
    assert json.loads(again.stdout)["purged"] == dict.fromkeys(expected, 0)
