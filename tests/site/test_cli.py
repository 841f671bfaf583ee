"""`mailhaven site contacts|records`, as the operator runs them."""

from __future__ import annotations

import json

from mailhaven.site.contact import CONSENT_VERSION, submit_contact
from tests.test_cli import _cli


def test_the_operator_lists_contact_messages_and_the_platforms_records(settings,  # type: ignore[no-untyped-def]
                                                                        services) -> None:
    with services.db.transaction() as session:
        submit_contact(session, services, name="Zelda Quist", email="zq@prospect.example",
                       company="", topic="sales", message="A quote, please.",
                       consent_text_version=CONSENT_VERSION, client="192.0.2.7")
    env = {"MAILHAVEN_DATABASE_URL": settings.database_url,
           "MAILHAVEN_DATA_DIR": str(settings.data_dir), "MAILHAVEN_HOSTNAME": "mx.test",
           "MAILHAVEN_SYSTEM_FROM": "Mailhaven <no-reply@mx.mailhaven.test>"}

    listed = _cli(env, "site", "contacts", "--json")
    assert listed.returncode == 0, listed.stderr
    [entry] = json.loads(listed.stdout)
    assert (entry["name"], entry["email"], entry["message"]) == (
        "Zelda Quist", "zq@prospect.example", "A quote, please.")
    shown = _cli({**env, "COLUMNS": "200"}, "site", "contacts")
    assert "zq@prospect.example" in shown.stdout and "sales" in shown.stdout

    made = _cli(env, "site", "records", "--json")
    assert made.returncode == 0, made.stderr
    body = json.loads(made.stdout)
    assert body["domain"]["name"] == "mx.mailhaven.test"
    assert any(r["name"].endswith("._domainkey.mx.mailhaven.test")
               for r in body["sending_dns_records"])

    unusable = _cli({**env, "MAILHAVEN_SYSTEM_FROM": "", "MAILHAVEN_HOSTNAME": "laptop"},
                    "site", "records")
    assert unusable.returncode == 2 and "MAILHAVEN_SYSTEM_FROM" in unusable.stderr
