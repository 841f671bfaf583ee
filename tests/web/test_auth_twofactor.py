"""Turning the second factor off takes the password or a code, never the session alone;
it is audited, and the next login asks for the password only."""

from __future__ import annotations

import re

import pyotp
from sqlalchemy import select

from mailhaven.audit.models import AuditEntry
from tests.web.helpers import PASSWORD, add_user, csrf_of, http_log_in


def test_two_factor_is_turned_on_and_off_with_proof(live, services, account) -> None:  # type: ignore[no-untyped-def]
    add_user(services, account[0], email="ann@acme.test")
    now = services.clock.now()
    with live.client() as client:
        assert client.get("/app/settings/2fa").status_code == 303  # signed in only
        http_log_in(client, "ann@acme.test")
        token = csrf_of(client.get("/app/settings/2fa").text)
        assert client.post("/app/settings/2fa/start", data={}).status_code == 403  # CSRF
        for wrong in ({}, {"password": "not the password at all"}):  # the session alone: no
            refused = client.post("/app/settings/2fa/start", data={**wrong, "csrf_token": token})
            assert refused.status_code == 400 and "current password is not right" in \
                refused.text
            assert 'id="totp-secret"' not in client.get("/app/settings/2fa").text
        client.post("/app/settings/2fa/start", data={"password": PASSWORD, "csrf_token": token})
        enrol = client.get("/app/settings/2fa").text
        found = re.search(r'id="totp-secret">([A-Z2-7]+)<', enrol)
        assert found is not None
        code = pyotp.TOTP(found.group(1))
        shown = client.post("/app/settings/2fa/confirm",
                            data={"code": code.at(now), "csrf_token": token})
        assert shown.status_code == 200 and shown.text.count('class="secret"') == 10
        assert shown.headers["cache-control"] == "no-store"

        for proof in ({"password": "not the password at all"}, {"code": code.at(now)}, {}):
            refused = client.post("/app/settings/2fa/disable", data={**proof,
                                                                     "csrf_token": token})
            assert refused.status_code == 400 and "Neither the password nor the code" in \
                refused.text
        off = client.post("/app/settings/2fa/disable", data={"password": PASSWORD,
                                                             "csrf_token": token})
        assert off.status_code == 303
        assert "Two-factor authentication is off" in client.get("/app/settings/2fa").text

    with live.client() as client:
        assert http_log_in(client, "ann@acme.test").headers["location"] == "/app"
        assert client.get("/app").status_code == 200
    with services.db.sessions() as session:
        actions = session.scalars(select(AuditEntry.action)).all()
    assert "web.2fa_enabled" in actions and "web.2fa_disabled" in actions
