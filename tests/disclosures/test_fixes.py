"""The disclosure log's fixes: the CLI in the account's region, bad input refused (never a
500), Article 19 POSTs only to parties that received the subject's data, signed over the
body, and the parties told reported by every erasure."""

from __future__ import annotations

import json

from sqlalchemy import select

from mailhaven.config import Settings
from mailhaven.disclosures.register import Subprocessor
from mailhaven.services import Platform
from tests.disclosures.test_disclosures import add_subprocessor
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


def test_bad_paging_an_unknown_subprocessor_and_non_addresses_are_refused_not_500(
        api, services) -> None:  # type: ignore[no-untyped-def]
    for params in ({"skip": str(10**30)}, {"skip": "-1"}, {"limit": str(10**30)},
                   {"skip": "10**30"}, {"limit": "0"}):
        answer = api.get("/v1/privacy/disclosures", params=params)
        assert answer.status_code == 400, (params, answer.text)
        assert "message" in answer.json()
    add_subprocessor(services, "Hosting AG")
    with services.main_db.sessions() as session:
        [hosting] = session.scalars(select(Subprocessor.id)).all()
    base = {"recipient": "Hosting AG", "kind": "subprocessor",
            "legal_basis": "contract", "purpose": "hosting",
            "data_categories": ["email address"]}
    answer = api.post("/v1/privacy/disclosures", json={**base, "subprocessor_id": "nosuchid"})
    assert answer.status_code == 404, answer.text
    answer = api.post("/v1/privacy/disclosures", json={**base, "kind": "third party",
                                                       "subprocessor_id": hosting})
    assert answer.status_code == 400, answer.text
    answer = api.post("/v1/privacy/disclosures", json={**base, "subprocessor_id": hosting})
    assert answer.status_code == 201, answer.text
    for subject in ("@", "x@", "@example.org", "not an address", "a@b.test, c@d.test"):
        answer = api.post("/v1/privacy/disclosures", json={**base, "subjects": [subject]})
        assert answer.status_code == 400, (subject, answer.text)
        assert "message" in answer.json()
    answer = api.post("/v1/privacy/disclosures",
                      json={**base, "subjects": ["Alice <Alice@Example.org>"]})
    assert answer.status_code == 201 and answer.json()["disclosure"]["subjects"] == 1
