"""Every step of a request is in the audit log; personal values only sealed (N3, N14)."""

from __future__ import annotations

from sqlalchemy import select

from mailhaven.audit import service as audit
from mailhaven.audit.models import AuditEntry
from tests.support import Sink, deliver_due


def _trail(services) -> list[AuditEntry]:  # type: ignore[no-untyped-def]
    with services.db.sessions() as session:
        return list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def test_a_recipient_request_leaves_a_verifiable_trail(api, live, services, domain) -> None:
    import re
    with Sink() as sink, live.client() as anonymous:
        anonymous.post("/v1/privacy/requests", data={"type": "objection",
                                                     "email": "ann@example.org",
                                                     "domain": domain})
        deliver_due(services, sink)
        [link] = re.findall(r"/v1/privacy/verify/\S+", sink.received[0].message.get_content())
        anonymous.post(link)
    trail = _trail(services)
    assert [e.action for e in trail] == ["privacy.request.received",
                                         "privacy.request.verified",
                                         "privacy.request.completed"]
    assert {e.actor for e in trail} == {"subject"}
    assert all("ann@example.org" not in (e.details or "") for e in trail)
    with services.db.sessions() as session:
        assert audit.verify(session, services.vault) == []


def test_a_rectification_keeps_before_and_after_sealed_until_erasure(api, services,
                                                                     domain) -> None:
    api.post(f"/v3/{domain}/unsubscribes", data={"address": "ann@example.org"})
    api.post("/v1/privacy/requests", data={"type": "rectification", "email": "ann@example.org",
                                           "new_email": "ann@example.net"})
    completed = _trail(services)[-1]
    assert completed.action == "privacy.request.completed"
    assert completed.actor.startswith("account:")
    with services.db.sessions() as session:
        assert audit.open_sealed(session, services.vault, completed) == {
            "before": {"email": "ann@example.org"}, "after": {"email": "ann@example.net"}}
    assert api.delete("/v1/privacy/recipients/ann%40example.org").status_code == 200
    with services.db.sessions() as session:
        assert audit.open_sealed(session, services.vault, completed) is None
        assert audit.verify(session, services.vault) == []
    assert _trail(services)[-1].action == "privacy.erasure"


def test_consents_and_account_deletion_are_journalled(api, services, account) -> None:
    api.post("/v1/privacy/consents", data={"email": "ann@example.org", "purpose": "tracking",
                                           "granted": "yes", "source": "signup-form"})
    api.delete("/v1/privacy/account", params={"confirm": account[0]})
    assert [e.action for e in _trail(services)] == ["privacy.consent.granted",
                                                    "privacy.account.deleted"]
    with services.db.sessions() as session:
        assert audit.verify(session, services.vault) == []
