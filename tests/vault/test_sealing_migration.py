"""Revision 0017 seals what revision 0016 kept in clear (client Message-IDs, extension
reasons) with the master key Mailhaven hands it, and refuses to run over such rows without."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from mailhaven.accounts.service import create_account
from mailhaven.config import Settings
from mailhaven.domains.service import create_domain
from mailhaven.services import Services
from tests.storage.test_migrations import _downgrade, blank_url  # noqa: F401 (a fixture)
from tests.support import LiveServer, Sink, deliver_due

CLIENT_ID = "order-77.zelda@shop.test"
REASON = "Zelda's file is in the Leeds archive"


def _dump(services: Services) -> str:
    """Every row, as text (the SQLite file itself may keep freed pages: not the point here)."""
    tables = ("messages", "events", "deliveries", "privacy_requests")
    with services.db.engine.connect() as conn:
        return "\n".join(str(tuple(row)) for table in tables
                         for row in conn.execute(text(f"SELECT * FROM {table}")))


def _in_clear(services: Services) -> bool:
    """Whether the client's Message-ID and the reason are in revision 0016's clear columns."""
    with services.db.engine.connect() as conn:
        messages = conn.execute(text("SELECT message_id FROM messages")).scalars().all()
        events = conn.execute(text("SELECT message_id FROM events")).scalars().all()
        reasons = conn.execute(text("SELECT extended_reason FROM privacy_requests")
                               ).scalars().all()
    return CLIENT_ID in messages and CLIENT_ID in events and reasons == [REASON]


def test_revision_0017_seals_clear_rows_with_the_key_and_refuses_without(
        blank_url, tmp_path, clock) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    settings = Settings(data_dir=tmp_path, database_url=blank_url,
                        hostname="mx.mailhaven.test", lease_seconds=60,
                        require_verified_domains=False)
    services = Services.start(settings, clock)  # at head: Mailhaven passes its key
    try:
        with services.db.transaction() as session:
            issued = create_account(session, services.vault, name="Acme",
                                    email="ops@acme.test", clock=services.clock)
            create_domain(session, services.vault, issued.account_id,
                          {"name": "mg.acme.test"}, services.clock)
        with LiveServer(services) as live, live.client(issued.api_key) as api, Sink() as sink:
            assert api.post("/v3/mg.acme.test/messages", data={
                "from": "shop@mg.acme.test", "to": "zelda@example.com", "subject": "Order",
                "text": "Shipped", "h:Message-ID": f"<{CLIENT_ID}>"}).status_code == 200
            deliver_due(services, sink)
            with live.client() as anonymous:  # open until the link is followed
                assert anonymous.post("/v1/privacy/requests", data={
                    "type": "access", "email": "zelda@example.com", "domain": "mg.acme.test"}
                ).status_code == 202
            [opened] = api.get("/v1/privacy/requests").json()["items"]
            assert api.post(f"/v1/privacy/requests/{opened['id']}/extend",
                            data={"months": "1", "reason": REASON}).status_code == 200

            # As revision 0016 kept them: in clear (a downgrade with the key opens them).
            _downgrade(services.db, "0016", services.vault)
            assert _in_clear(services)

            with pytest.raises(RuntimeError, match="needs the master key"):
                services.db.migrate()
            assert _in_clear(services)

            services.db.migrate(vault=services.vault)
            dump = _dump(services)
            assert "order-77" not in dump.lower() and "Leeds" not in dump
            assert "access" in dump  # the dump shows what is kept in clear
            found = api.get("/v3/mg.acme.test/events", params={"message-id": CLIENT_ID}).json()
            assert [e["event"] for e in found["items"]] == ["delivered", "accepted"]
            assert api.get(f"/v1/privacy/requests/{opened['id']}").json()["extension"][
                "reason"] == REASON
        with services.db.engine.connect() as conn:
            sealed = conn.execute(text("SELECT message_id_sealed FROM deliveries")).scalars()
            assert all(value is not None for value in sealed)
    finally:
        services.close()
