"""The disclosure log's fixes: the CLI in the account's region, bad input refused (never a
500), Article 19 POSTs only to parties that received the subject's data, signed over the
body, and the parties told reported by every erasure."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import select

from mailhaven.config import Settings
from mailhaven.disclosures import service
from mailhaven.disclosures.register import Subprocessor
from mailhaven.errors import BadRequest
from mailhaven.services import Platform
from tests.disclosures.test_disclosures import (
    ALICE,
    BOB,
    add_subprocessor,
    disclose,
    hold,
    notify_due,
)
from tests.regions.test_region_data import _account, _cli
from tests.support import WebhookReceiver
from tests.test_cli import _cli as cli

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


def _docs_verify():  # type: ignore[no-untyped-def]
    """The verification recipe of docs/privacy.md, run as a party would run it."""
    text = (Path(__file__).parents[2] / "docs" / "privacy.md").read_text()
    snippet = text.split("X-Mailhaven-Signature")[-1].split("```python\n", 1)[1]
    found: dict = {}
    exec(snippet.split("```", 1)[0], found)  # our own documentation
    return found["verify"]


def test_the_signature_covers_the_body_and_the_documented_recipe_checks_it(
        api, services) -> None:  # type: ignore[no-untyped-def]
    verify = _docs_verify()
    with WebhookReceiver() as party:
        key = disclose(api, recipient="Police of Utopia", subjects=[ALICE],
                       endpoint=party.url)["signing_key"]
        answer = api.post("/v1/privacy/requests", data={"type": "erasure", "email": ALICE})
        assert answer.status_code == 201, answer.text
        assert notify_due(services) == 1
    [hook] = party.received
    forever = 10**12  # the clock is frozen in the past
    assert verify(key, hook.headers, hook.body, max_age=forever)
    assert not verify("another key", hook.headers, hook.body, max_age=forever)
    tampered = hook.body.replace(b'"erasure"', b'"rectification"')
    assert tampered != hook.body
    assert not verify(key, hook.headers, tampered, max_age=forever)


def test_a_disclosure_endpoint_is_https_unless_private_targets_are_allowed(
        services, account) -> None:  # type: ignore[no-untyped-def]
    def record(url: str, allow_http: bool) -> None:
        with services.db.transaction() as session:
            service.record(session, services.vault, account_id=account[0],
                           recipient="Police", kind="authority", legal_basis="law",
                           purpose="order", categories=["email address"], subjects=[],
                           decided_by="operator", now=services.clock.now(), endpoint=url,
                           allow_http=allow_http)

    with pytest.raises(BadRequest, match="https"):
        record("http://police.example/notify", allow_http=False)
    record("https://police.example/notify", allow_http=False)
    record("http://police.example/notify", allow_http=True)


def test_only_sub_processors_of_the_region_and_categories_are_told_and_only_of_held_data(
        api, services) -> None:  # type: ignore[no-untyped-def]
    with WebhookReceiver() as hosting, WebhookReceiver() as euro, \
            WebhookReceiver() as billing:
        add_subprocessor(services, "Hosting AG", hosting.url, "k1", categories=("Addresses",))
        add_subprocessor(services, "Euro Host", euro.url, "k2", region="eu")
        add_subprocessor(services, "Billing Ltd", billing.url, "k3",
                         categories=("payment details",))
        for address in (BOB, "nobody@example.org"):  # nothing held: nobody is told
            answer = api.delete(f"/v1/privacy/recipients/{quote(address, safe='')}")
            assert answer.status_code == 200, answer.text
            answer = api.post("/v1/privacy/requests", data={"type": "erasure",
                                                            "email": address})
            assert answer.status_code == 201 and "notified" not in answer.json()["result"]
        assert notify_due(services) == 0
        hold(api, ALICE)
        answer = api.post("/v1/privacy/requests", data={"type": "restriction", "email": ALICE})
        assert answer.json()["result"]["notified"] == [{"party": "Hosting AG",
                                                        "state": "pending"}]
        api.delete(f"/v1/privacy/recipients/{quote(ALICE, safe='')}")
        assert notify_due(services) == 2
        assert len(hosting.received) == 2 and euro.received == billing.received == []


def test_the_processor_erasure_record_and_the_cli_list_the_parties_told(
        api, services, settings, account) -> None:  # type: ignore[no-untyped-def]
    with WebhookReceiver() as hosting:
        add_subprocessor(services, "Hosting AG", hosting.url, "k1")
        hold(api, ALICE)
        answer = api.delete(f"/v1/privacy/recipients/{quote(ALICE, safe='')}")
        assert answer.status_code == 200, answer.text
        told = [{"party": "Hosting AG", "state": "pending"}]
        assert answer.json()["record"]["notified"] == told
        hold(api, BOB)
        env = {"MAILHAVEN_DATABASE_URL": settings.database_url,
               "MAILHAVEN_DATA_DIR": str(settings.data_dir)}
        done = cli(env, "privacy", "erase", BOB, "--account", account[0])
        assert done.returncode == 0, done.stderr
        with services.main_db.sessions() as session:
            first = session.scalar(select(Subprocessor.id))
        assert (f"parties told (Article 19): Hosting AG (subprocessor {first}, pending)"
                in done.stdout)
        done = cli(env, "privacy", "erase", "nobody@example.org", "--account", account[0],
                   "--json")
        assert json.loads(done.stdout)["notified"] == []

        # Three parties of one name are told apart by their kind and id
        with WebhookReceiver() as other, WebhookReceiver() as third:
            add_subprocessor(services, "Hosting AG", other.url, "k2")
            disclose(api, recipient="Hosting AG", subjects=[ALICE], endpoint=third.url)
            hold(api, ALICE)
            done = cli(env, "privacy", "erase", ALICE, "--account", account[0], "--json")
            assert done.returncode == 0, done.stderr
        told = json.loads(done.stdout)["notified"]
        assert {n["party"] for n in told} == {"Hosting AG"} and len(told) == 3
        assert sorted(n["kind"] for n in told) == ["disclosure", "subprocessor",
                                                   "subprocessor"]
        assert len({(n["kind"], n["id"]) for n in told}) == 3
        assert first in {n["id"] for n in told}
