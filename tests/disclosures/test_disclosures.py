"""The disclosure log (SPEC N10): recorded by the CLI and the API, found in the holder's and
the recipient's exports (and in no other account's), and Article 19 notifications POSTed,
signed with each party's key, to a loopback receiver."""

from __future__ import annotations

import hashlib
import json
from urllib.parse import quote

from sqlalchemy import select

from mailhaven.disclosures.models import Notification
from mailhaven.disclosures.poster import NotificationSender, verify_body
from mailhaven.disclosures.register import SIGNING_LABEL, Subprocessor
from mailhaven.exports.service import export_account
from mailhaven.services import Services
from mailhaven.storage.base import new_id
from mailhaven.webhooks.poster import RETRY_DELAYS
from tests.exports.archive import read, validate
from tests.support import Hook, WebhookReceiver, run_loop
from tests.test_cli import _cli

ALICE, BOB = "alice@example.org", "bob@example.org"


def notify_due(services: Services) -> int:
    """Run one Article 19 sender until nothing is due now; how many POSTs it made."""
    async def run() -> int:
        sender = NotificationSender(services)
        total = 0
        try:
            while handled := await sender.run_once():
                total += handled
        finally:
            await sender.close()
        return total

    return run_loop(run())


def verified(key: str, hook: Hook, body: bytes | None = None) -> bool:
    """Whether the POST's signature headers check out for `key` over `body` (default: the
    body received), as a party checks them."""
    headers = {k.lower(): v for k, v in hook.headers.items()}
    return verify_body(key, headers["x-mailhaven-timestamp"], headers["x-mailhaven-token"],
                       hook.body if body is None else body, headers["x-mailhaven-signature"])


def add_subprocessor(services: Services, name: str, endpoint: str | None = None,
                     key: str | None = None, *, region: str | None = None,
                     categories: tuple[str, ...] = ("email address",)) -> None:
    """A sub-processor in the register (the main database), active since long ago."""
    vault = services.platform.directory_vault
    with services.main_db.transaction() as session:
        session.add(Subprocessor(
            id=new_id(), name=name, purpose="hosting", data_categories=json.dumps(categories),
            location="Frankfurt, Germany", region=region, transfer_mechanism="adequacy",
            contract_date="2026-01-01", notification_endpoint=endpoint,
            signing_key_sealed=vault.seal_secret(SIGNING_LABEL, key.encode()) if key else None,
            added_at=0.0, effective_at=0.0))


def hold(api, address: str) -> None:  # type: ignore[no-untyped-def]
    """Make the account hold something about `address`: a bounce on its domain."""
    answer = api.post("/v3/mg.acme.test/bounces", data={"address": address})
    assert answer.status_code == 200, answer.text


def disclose(api, **fields) -> dict:  # type: ignore[no-untyped-def]
    body = {"kind": "authority", "legal_basis": "legal obligation",
            "purpose": "a court order", "data_categories": ["email address"], **fields}
    answer = api.post("/v1/privacy/disclosures", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_a_disclosure_recorded_by_cli_and_api_is_in_both_exports_and_no_other_account(
        api, second_api, services, settings, account, tmp_path) -> None:
    by_api = disclose(api, recipient="Police of Utopia", subjects=[ALICE],
                      reference="case 2026-17")
    assert by_api["disclosure"]["subjects"] == 1 and by_api["signing_key"] is None
    disclose(api, recipient="Bob's insurer", kind="third party", subjects=[BOB])
    env = {"MAILHAVEN_DATABASE_URL": settings.database_url,
           "MAILHAVEN_DATA_DIR": str(settings.data_dir)}
    done = _cli(env, "disclosures", "record", "--account", account[0], "--recipient",
                "Auditor GmbH", "--kind", "third party", "--basis", "legitimate interest",
                "--purpose", "audit", "--category", "message metadata", "--subject", ALICE,
                "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["disclosure"]["recipient"] == "Auditor GmbH"
    listed = _cli(env, "disclosures", "list", "--account", account[0], "--json")
    assert {d["recipient"] for d in json.loads(listed.stdout)["items"]} == {
        "Police of Utopia", "Bob's insurer", "Auditor GmbH"}
    add_subprocessor(services, "Hosting AG")

    page = api.get("/v1/privacy/disclosures", params={"limit": 2}).json()
    assert len(page["items"]) == 2 and page["paging"]["next"]

    export_account(services.db, services.vault, account[0], tmp_path / "holder.zip",
                   clock=services.clock, directory=services.main_db)
    holder = read(tmp_path / "holder.zip").document
    validate(holder)
    rows = holder["categories"]["disclosures"]
    assert {r["recipient"] for r in rows if not r["standing"]} == {
        "Police of Utopia", "Bob's insurer", "Auditor GmbH"}
    assert [r["recipient"] for r in rows if r["standing"]] == ["Hosting AG"]

    answer = api.get(f"/v1/privacy/recipients/{quote(ALICE, safe='')}")
    assert answer.status_code == 200, answer.text
    alice = read(answer.content).document
    validate(alice)
    mine = alice["categories"]["disclosures"]
    assert {r["recipient"] for r in mine} == {"Police of Utopia", "Auditor GmbH", "Hosting AG"}
    [police] = [r for r in mine if r["recipient"] == "Police of Utopia"]
    assert police["reference"] == "case 2026-17" and police["kind"] == "authority"

    # Another account sees none of it, by list or by export.
    assert second_api.get("/v1/privacy/disclosures").json()["items"] == []
    assert second_api.get(f"/v1/privacy/recipients/{quote(ALICE, safe='')}"
                          ).status_code == 404


def test_an_erasure_notifies_the_party_signed_a_500_is_retried_and_the_record_lists_it(
        api, services, clock) -> None:
    with WebhookReceiver(lambda n: 500 if n == 1 else 200) as party, \
            WebhookReceiver() as bystander:
        key = disclose(api, recipient="Police of Utopia", subjects=[ALICE],
                       endpoint=party.url)["signing_key"]
        disclose(api, recipient="Carol's lawyer", subjects=["carol@example.org"],
                 endpoint=bystander.url)
        answer = api.post("/v1/privacy/requests", data={"type": "erasure", "email": ALICE})
        assert answer.status_code == 201, answer.text
        request = answer.json()
        notified = [{"party": "Police of Utopia", "state": "pending"}]
        assert request["result"]["notified"] == notified
        assert request["result"]["completion"]["record"]["result"]["notified"] == notified

        assert notify_due(services) == 1  # answered 500: tried again later
        assert notify_due(services) == 0
        clock.advance(RETRY_DELAYS[0])
        assert notify_due(services) == 1
        assert len(party.received) == 2 and bystander.received == []

    body = json.loads(party.received[-1].body)
    assert body["event"] == "erasure" and body["request_id"] == request["id"]
    assert body["subject"] == {"sha256": hashlib.sha256(ALICE.encode()).hexdigest()}
    assert "signature" not in body
    assert verified(key, party.received[-1])
    assert not verified("another key", party.received[-1])
    forged = json.dumps({**body, "event": "rectification"}).encode()
    assert not verified(key, party.received[-1], forged)  # the signature fits one body
    shown = api.get(f"/v1/privacy/requests/{request['id']}").json()
    assert shown["result"]["notified"] == [{"party": "Police of Utopia", "state": "sent"}]
    with services.db.sessions() as session:  # sent: the subject's hash is no longer kept
        [row] = session.scalars(select(Notification)).all()
        assert row.subject_sealed is None and row.attempts == 2


def test_a_406_stops_and_sub_processors_are_told_with_their_own_key(api, services,
                                                                     clock) -> None:
    with WebhookReceiver(lambda _n: 406) as party, WebhookReceiver() as host:
        disclose(api, recipient="Police of Utopia", subjects=[ALICE], endpoint=party.url)
        add_subprocessor(services, "Hosting AG", host.url, "sub-processor key")
        add_subprocessor(services, "Silent AG")  # no endpoint: nothing to send
        hold(api, ALICE)
        answer = api.post("/v1/privacy/requests", data={"type": "restriction",
                                                        "email": ALICE})
        assert answer.status_code == 201, answer.text
        assert {n["party"] for n in answer.json()["result"]["notified"]} == {
            "Police of Utopia", "Hosting AG"}
        assert notify_due(services) == 2
        for delay in RETRY_DELAYS:
            clock.advance(delay)
            assert notify_due(services) == 0
        assert len(party.received) == 1 and len(host.received) == 1
    body = json.loads(host.received[0].body)
    assert body["event"] == "restriction"
    assert verified("sub-processor key", host.received[0])
    shown = api.get(f"/v1/privacy/requests/{answer.json()['id']}").json()
    assert {n["party"]: n["state"] for n in shown["result"]["notified"]} == {
        "Police of Utopia": "refused", "Hosting AG": "sent"}


def test_a_subject_no_disclosure_names_causes_no_post_to_that_party(api, services) -> None:
    with WebhookReceiver() as party:
        disclose(api, recipient="Police of Utopia", subjects=[ALICE], endpoint=party.url)
        answer = api.post("/v1/privacy/requests", data={"type": "erasure", "email": BOB})
        assert answer.status_code == 201, answer.text
        assert "notified" not in answer.json()["result"]
        assert notify_due(services) == 0
    assert party.received == []


def test_a_disclosure_is_refused_without_its_facts_or_with_an_address_in_clear(api) -> None:
    for fields in ({"recipient": ""}, {"kind": "friend"}, {"data_categories": []},
                   {"reference": "alice@example.org"}, {"endpoint": "ftp://x.test/"}):
        body = {"recipient": "Police", "kind": "authority", "legal_basis": "legal obligation",
                "purpose": "order", "data_categories": ["email address"], **fields}
        answer = api.post("/v1/privacy/disclosures", json=body)
        assert answer.status_code == 400, (fields, answer.text)
        assert "message" in answer.json()
