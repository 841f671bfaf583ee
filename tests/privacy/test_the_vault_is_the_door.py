"""Issue 11: a request's extension reason is sealed for its subject, and an unsubscribe
link's consent withdrawal goes through the privacy service, audit entry and all."""

from __future__ import annotations

import dataclasses
import json
from urllib.parse import urlsplit

from sqlalchemy import select

from mailhaven.audit import service as audit
from mailhaven.audit.models import AuditEntry
from tests.support import Sink, deliver_due
from tests.vault.raw import holds

REASON = "Zelda's paper file is in the Leeds archive, box 77"


def test_an_extension_reason_is_sealed_for_its_subject(api, live, services, domain) -> None:
    with Sink() as sink, live.client() as anonymous:
        assert anonymous.post("/v1/privacy/requests", data={
            "type": "access", "email": "zelda@example.com", "domain": domain}
        ).status_code == 202
        [opened] = api.get("/v1/privacy/requests").json()["items"]
        extended = api.post(f"/v1/privacy/requests/{opened['id']}/extend",
                            data={"months": "1", "reason": REASON}).json()
        assert extended["extension"]["reason"] == REASON
        deliver_due(services, sink)
    [told] = [m.message for m in sink.received
              if m.message["Subject"] == "Your privacy request needs more time"]
    assert REASON in told.get_content()  # the subject is told why
    assert api.get(f"/v1/privacy/requests/{opened['id']}").json()["extension"]["reason"] \
        == REASON
    assert not holds(services, "Leeds archive")
    assert holds(services, domain)  # the check sees what is stored in clear

    assert api.delete("/v1/privacy/recipients/zelda%40example.com").status_code == 200
    kept = api.get(f"/v1/privacy/requests/{opened['id']}").json()
    assert kept["state"] == "extended" and kept["extension"]["notified_at"]
    assert kept["extension"]["reason"] is None  # unreadable with the subject's key gone


def test_an_unsubscribe_link_withdraws_consent_with_an_audit_entry(api, live, services,
                                                                   account, domain) -> None:
    api.put(f"/v3/domains/{domain}/tracking/unsubscribe", data={"active": "yes"})
    with Sink() as sink:
        assert api.post(f"/v3/{domain}/messages", data={
            "from": f"news@{domain}", "to": "Ann@Example.org", "subject": "News",
            "text": "Hello"}).status_code == 200
        deliver_due(dataclasses.replace(
            services, settings=services.settings.with_(public_url=live.base_url)), sink)
    url = sink.received[0].message["List-Unsubscribe"].strip("<>")
    one_click = api.post(urlsplit(url).path, content=b"List-Unsubscribe=One-Click",
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert one_click.status_code == 200

    with services.db.sessions() as session:
        [entry] = session.scalars(select(AuditEntry).where(
            AuditEntry.action == "privacy.consent.withdrawn")).all()
        assert entry.actor == "subject"
        assert entry.subject_index == services.vault.blind_index(account[0], "ann@example.org")
        assert json.loads(entry.details or "{}")["source"] == "unsubscribe-link"
        assert "ann@" not in (entry.details or "").lower()
        assert audit.verify(session, services.vault) == []
    consents = api.get("/v1/privacy/consents", params={"email": "ANN@example.org "}).json()
    assert [(c["purpose"], c["granted"], c["source"]) for c in consents["items"]] == [
        ("marketing-email", False, "unsubscribe-link")]
