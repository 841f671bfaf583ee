"""Every right, end to end through the HTTP API, for an account holder and a recipient."""

from __future__ import annotations

import re

import pytest

from mailhaven.accounts.models import Account
from mailhaven.exports.registry import ACCOUNT_HOLDER, RECIPIENT
from tests.support import Sink, deliver_due

RIGHTS = ("access", "portability", "rectification", "erasure", "restriction", "objection",
          "withdraw-consent")


def _send(api, domain: str, to: str = "ann@example.org", **extra: str):  # type: ignore[no-untyped-def]
    reply = api.post(f"/v3/{domain}/messages", data={
        "from": f"news@{domain}", "to": to, "subject": "Spring sale", "text": "Hello", **extra})
    assert reply.status_code == 200, reply.text
    return reply


def _failed(api, domain: str) -> list[dict]:  # type: ignore[no-untyped-def]
    return api.get(f"/v3/{domain}/events", params={"event": "failed",
                                                    "ascending": "yes"}).json()["items"]


def _confirm_by_mail(live, services, sink, anonymous) -> dict:  # type: ignore[no-untyped-def]
    """The recipient's side: the mail with the one-time link, the page, the button."""
    deliver_due(services, sink)
    mail = sink.received[-1].message
    assert mail["Subject"] == "Confirm your privacy request"
    assert "List-Unsubscribe" not in mail  # a service message
    [link] = re.findall(r"http://\S+/v1/privacy/verify/\S+", mail.get_content())
    path = "/v1/privacy/verify/" + link.rsplit("/", 1)[1]
    page = anonymous.get(path)
    assert page.status_code == 200 and '<form method="post">' in page.text
    done = anonymous.post(path)
    assert done.status_code == 200
    [status] = re.findall(r'href="(/v1/privacy/requests/[^"]+\?token=[^"]+)"', done.text)[-1:]
    return anonymous.get(status.replace("&amp;", "&")).json()


def _token_of(sink) -> str:  # type: ignore[no-untyped-def]
    mail = next(r.message for r in sink.received
                if r.message["Subject"] == "Confirm your privacy request")
    return re.findall(r"/v1/privacy/verify/(\S+)", mail.get_content())[0]


def _export_json(reply) -> dict:  # type: ignore[no-untyped-def]
    import io
    import json
    import zipfile
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(reply.content)) as archive:
        return json.loads(archive.read("export.json"))


@pytest.mark.parametrize("right", RIGHTS)
def test_a_recipient_exercises_each_right_by_a_mailed_link(api, live, services, domain,
                                                           right) -> None:
    extra = {"new_email": "ann.new@example.org"} if right == "rectification" else {}
    with Sink() as sink, live.client() as anonymous:
        if right == "rectification":
            # (not a bounce: a service message still reaches an unsubscribed address)
            api.post(f"/v3/{domain}/unsubscribes", data={"address": "ann@example.org"})
        asked = anonymous.post("/v1/privacy/requests", data={
            "type": right, "email": "ann@example.org", "domain": domain, **extra})
        assert asked.status_code == 202
        assert "confirm" in asked.json()["message"]
        pending = api.get("/v1/privacy/requests").json()["items"]
        assert [(r["type"], r["state"]) for r in pending] == [(right, "identity_unverified")]
        status = _confirm_by_mail(live, services, sink, anonymous)
        if right in ("access", "portability"):
            token = _token_of(sink)
            zipped = anonymous.get(f"/v1/privacy/requests/{status['id']}/export",
                                   params={"token": token})
            document = _export_json(zipped)
            assert document["subject"]["kind"] == RECIPIENT
            assert "events" in document["categories"]
            assert anonymous.get(f"/v1/privacy/requests/{status['id']}/export",
                                 params={"token": "forged"}).status_code == 404
    assert status["state"] == "completed" and status["type"] == right
    assert status["result"]["completion"]["signature"]
    seen = api.get(f"/v1/privacy/requests/{status['id']}").json()
    assert seen["state"] == "completed"
    if right == "rectification":  # the new address never proved it is hers (issue 10)
        assert status["result"]["rectified"] == []
        assert api.get(f"/v3/{domain}/unsubscribes/ann.new%40example.org").status_code == 404
        assert api.get(f"/v3/{domain}/unsubscribes/ann%40example.org").status_code == 200
    if right in ("restriction", "objection"):
        assert api.get("/v1/privacy/consents", params={"email": "ann@example.org"}).json()[
            "restricted" if right == "restriction" else "objected"] is True
    if right == "withdraw-consent":
        ledger = api.get("/v1/privacy/consents", params={"email": "ann@example.org"}).json()
        assert {(c["purpose"], c["granted"]) for c in ledger["items"]} == {
            ("marketing-email", False), ("tracking", False), ("analytics", False)}
        assert all(c["deadline"] - c["at"] == 10 * 86400 for c in ledger["items"])


def test_an_unknown_domain_gets_the_same_answer_and_no_mail(live) -> None:
    with live.client() as anonymous:
        asked = anonymous.post("/v1/privacy/requests", data={
            "type": "access", "email": "ann@example.org", "domain": "nobody.example"})
    assert asked.status_code == 202


@pytest.mark.parametrize("right", [r for r in RIGHTS if r != "erasure"])
def test_an_account_holder_exercises_each_right_with_their_login(api, services, account,
                                                                  right) -> None:
    fields = {"type": right}
    if right == "rectification":
        fields.update(name="Acme Corporation", email="privacy@acme.test")
    if right == "withdraw-consent":
        fields["purpose"] = "analytics"
    done = api.post("/v1/privacy/requests", data=fields)
    assert done.status_code == 201, done.text
    body = done.json()
    assert (body["type"], body["subject_type"], body["state"]) == (right, "holder",
                                                                   "completed")
    if right in ("access", "portability"):
        document = _export_json(api.get(body["result"]["export"]))
        assert document["subject"]["kind"] == ACCOUNT_HOLDER
        assert {"profile", "domains"} <= set(document["categories"])
    assert body["due_at"] > body["received_at"]
    if right == "rectification":
        with services.db.sessions() as session:
            row = session.get(Account, account[0])
            holder = services.vault.keys(session, [row.holder_key_id])[row.holder_key_id]
            assert services.vault.open_text(holder, row.name_sealed, "account.name") \
                == "Acme Corporation"
            assert services.vault.open_text(holder, row.email_sealed, "account.email") \
                == "privacy@acme.test"
    if right in ("restriction", "objection"):
        state = api.get("/v1/privacy/consents").json()
        assert state["restricted" if right == "restriction" else "objected"] is True
    if right == "withdraw-consent":
        assert [(c["purpose"], c["granted"]) for c in
                api.get("/v1/privacy/consents").json()["items"]] == [("analytics", False)]


def test_an_account_holder_s_erasure_deletes_the_account(api, live, services, account,
                                                         domain) -> None:
    _send(api, domain)
    done = api.post("/v1/privacy/requests", data={"type": "erasure",
                                                  "confirm": account[0]})
    assert done.status_code == 201
    record = done.json()["result"]["account_deleted"]
    assert record["legal_hold"]["name"] == "privacy-accountability"
    assert api.get("/v3/domains").status_code == 401  # the keys are revoked
    with services.db.sessions() as session:
        row = session.get(Account, account[0])
        assert row.deleted_at is not None and row.name_sealed is None


def test_deadlines_extension_denial_and_the_overdue_report(api, live, services, clock,
                                                           domain) -> None:
    with Sink() as sink, live.client() as anonymous:
        for right in ("access", "erasure", "objection"):
            anonymous.post("/v1/privacy/requests", data={
                "type": right, "email": "ann@example.org", "domain": domain})
        deliver_due(services, sink)
        access, erasure_req, objection = sorted(
            api.get("/v1/privacy/requests").json()["items"], key=lambda r: r["type"])
        assert api.post(f"/v1/privacy/requests/{access['id']}/extend",
                        data={"months": "2"}).status_code == 400  # a reason is required
        extended = api.post(f"/v1/privacy/requests/{access['id']}/extend",
                            data={"months": "2", "reason": "Archive restore needed"}).json()
        assert extended["state"] == "extended" and extended["extension"]["notified_at"]
        assert extended["due_at"] > access["due_at"]
        deliver_due(services, sink)
        told = sink.received[-1].message
        assert told["Subject"] == "Your privacy request needs more time"
        assert "Archive restore needed" in told.get_content()
        assert api.post(f"/v1/privacy/requests/{erasure_req['id']}/deny",
                        data={"reason": "because"}).status_code == 400
        denied = api.post(f"/v1/privacy/requests/{erasure_req['id']}/deny",
                          data={"reason": "legal-obligation"}).json()
        assert (denied["state"], denied["denied_reason"]) == ("denied", "legal-obligation")

        assert api.get("/v1/privacy/requests", params={"overdue": "yes"}).json()["items"] == []
        clock.advance(32 * 86400)
        late = api.get("/v1/privacy/requests", params={"overdue": "yes"}).json()["items"]
        assert [r["id"] for r in late] == [objection["id"]]  # extended and denied are not
        assert late[0]["overdue"] is True
        assert api.post(f"/v1/privacy/requests/{objection['id']}/extend", data={
            "months": "1", "reason": "late"}).status_code == 400  # after the first month


def test_another_account_cannot_see_or_act_on_a_request(api, live, services) -> None:
    from mailhaven.accounts.service import create_account
    done = api.post("/v1/privacy/requests", data={"type": "objection"}).json()
    with services.db.transaction() as session:
        other = create_account(session, services.vault, name="O", email="o@o.test")
    with live.client(other.api_key) as intruder:
        assert intruder.get(f"/v1/privacy/requests/{done['id']}").status_code == 404
        assert intruder.post(f"/v1/privacy/requests/{done['id']}/deny",
                             data={"reason": "excessive"}).status_code == 404
        assert intruder.get("/v1/privacy/requests").json()["items"] == []


def test_an_export_lists_the_subject_s_consents_and_requests(api) -> None:
    api.post("/v1/privacy/consents", data={"email": "ann@example.org", "purpose": "tracking",
                                           "granted": "yes", "source": "signup-form"})
    done = api.post("/v1/privacy/requests", data={"type": "access",
                                                  "email": "ann@example.org"}).json()
    document = _export_json(api.get(done["result"]["export"]))
    assert [(c["purpose"], c["state"], c["source"]) for c in
            document["categories"]["consents"]] == [("tracking", "given", "signup-form")]
    assert [(r["id"], r["right"], r["state"]) for r in document["categories"]["requests"]] \
        == [(done["id"], "access", "completed")]


def test_the_form_can_not_be_used_to_mail_bomb_an_address(api, live, services,
                                                          domain) -> None:
    with Sink() as sink, live.client() as anonymous:
        for _ in range(5):
            assert anonymous.post("/v1/privacy/requests", data={
                "type": "access", "email": "ann@example.org", "domain": domain}
            ).status_code == 202
        deliver_due(services, sink)
    assert len(sink.received) == 3  # at most three unconfirmed links a day
