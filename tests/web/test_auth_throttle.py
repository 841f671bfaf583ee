"""Throttling the ways in: too many failures for an address refuse it (429) whatever the password;
too many from a network are told so, but a right password for an address that isn't
blocked still logs in. Counted in the database, as blind indexes only."""

from __future__ import annotations

import pyotp
from sqlalchemy import select

from mailhaven.users import throttle, totp
from mailhaven.users.models import AuthAttempt, User
from mailhaven.users.service import argon2_runs
from mailhaven.users.throttle import (
    MAIL_WINDOW,
    MAILS_PER_ADDRESS,
    MAILS_PER_NETWORK,
    PER_ADDRESS,
    PER_NETWORK,
    WINDOW,
)
from tests.web.auth_mail import mailed
from tests.web.helpers import add_user, csrf_of, http_log_in

WRONG = "not the password at all"


def test_an_address_is_refused_after_ten_failures_until_the_window_passes(
        live, services, account) -> None:  # type: ignore[no-untyped-def]
    add_user(services, account[0], email="ann@acme.test")
    add_user(services, account[0], email="bob@acme.test")
    with live.client() as client:
        for _ in range(PER_ADDRESS):
            assert http_log_in(client, "ann@acme.test", WRONG).status_code == 400
        refused = http_log_in(client, "ANN@acme.test")  # the right password, too late
        assert refused.status_code == 429
        assert "Too many failed logins for this address" in refused.text
        assert "mh_session" not in client.cookies
        assert http_log_in(client, "bob@acme.test").status_code == 303  # others are fine
    with services.db.sessions() as session:
        rows = session.scalars(select(AuthAttempt)).all()
    assert len(rows) == PER_ADDRESS
    assert all("ann" not in r.address_index and "127.0.0.1" not in r.network_index
               for r in rows)

    services.clock.advance(WINDOW + 1)
    with live.client() as client:
        assert http_log_in(client, "ann@acme.test").status_code == 303


def test_a_blocked_network_is_told_but_a_right_password_still_works(
        live, services, account) -> None:  # type: ignore[no-untyped-def]
    add_user(services, account[0], email="ann@acme.test")
    with live.client() as client:
        for n in range(PER_NETWORK):  # spraying: one guess at many addresses
            assert http_log_in(client, f"user{n}@acme.test", WRONG).status_code == 400
        told = http_log_in(client, "another@acme.test", WRONG)
        assert told.status_code == 429
        assert "Too many failed logins from your network" in told.text
        assert http_log_in(client, "ann@acme.test").status_code == 303
        assert client.get("/app").status_code == 200


def test_second_factor_codes_are_throttled_too(live, services, account) -> None:  # type: ignore[no-untyped-def]
    user_id = add_user(services, account[0], email="ann@acme.test")
    secret = pyotp.random_base32()
    with services.db.transaction() as session:
        user = session.get(User, user_id)
        assert user is not None
        user.totp_secret_sealed = services.vault.seal_text(
            services.vault.keys(session, [user.key_id])[user.key_id], secret,
            totp.TOTP_CONTEXT)
        user.totp_enabled_at = services.clock.now()
    with live.client() as client:
        assert http_log_in(client, "ann@acme.test").status_code == 303
        asked = client.get("/login")
        assert 'name="code"' in asked.text
        assert client.get("/app").status_code == 303  # not in yet
        token, now = csrf_of(asked.text), services.clock.now()
        valid = {pyotp.TOTP(secret).at(now + d) for d in (-30, 0, 30)}
        wrong_code = next(c for c in ("000000", "111111", "222222", "333333")
                          if c not in valid)
        for _ in range(PER_ADDRESS):
            wrong = client.post("/login", data={"code": wrong_code, "csrf_token": token})
            assert wrong.status_code == 400 and "That code is not right" in wrong.text
        right = pyotp.TOTP(secret).at(now)
        blocked = client.post("/login", data={"code": right, "csrf_token": token})
        assert blocked.status_code == 429
        assert client.get("/app").status_code == 303


def test_mailed_links_are_limited_per_address_and_per_network(live, services, account) -> None:  # type: ignore[no-untyped-def]
    add_user(services, account[0], email="ann@acme.test")
    with live.client() as client:
        token = csrf_of(client.get("/reset").text)
        for _ in range(MAILS_PER_ADDRESS + 2):  # the same answer, but only 3 mails
            answer = client.post("/reset", data={"email": "ann@acme.test", "csrf_token": token})
            assert answer.status_code == 200 and "Check your mail" in answer.text
        assert len(mailed(services)) == MAILS_PER_ADDRESS
        for n in range(MAILS_PER_NETWORK - MAILS_PER_ADDRESS):
            assert client.post("/reset", data={"email": f"u{n}@acme.test",
                                               "csrf_token": token}).status_code == 200
        before = argon2_runs.count
        refused = client.post("/signup", data={"name": "Eve", "email": "eve@acme.test",
                                               "password": "a long enough passphrase",
                                               "csrf_token": token})
        assert refused.status_code == 429 and "try again in an hour" in refused.text
        assert argon2_runs.count == before  # refused before hashing
    services.clock.advance(MAIL_WINDOW + 1)
    with live.client() as client:
        token = csrf_of(client.get("/reset").text)
        assert client.post("/reset", data={"email": "ann@acme.test",
                                           "csrf_token": token}).status_code == 200
    assert len(mailed(services)) == 1


def test_a_blocked_network_gets_few_argon2_runs(live, services, account) -> None:  # type: ignore[no-untyped-def]
    """Wrong passwords from a blocked network are refused before argon2id runs, past a few
    a minute; a right one gets through again once the minute passes."""
    from mailhaven.users.throttle import BLOCKED_CHECKS_PER_MINUTE
    add_user(services, account[0], email="ann@acme.test")
    with services.db.transaction() as session:
        who = throttle.who(services.vault, "someone@acme.test", "127.0.0.1")
        for _ in range(PER_NETWORK):
            throttle.record_failure(session, who, now=services.clock.now())
    with live.client() as client:
        before = argon2_runs.count
        for n in range(20):
            assert http_log_in(client, f"user{n}@acme.test", WRONG).status_code == 429
        assert argon2_runs.count - before == BLOCKED_CHECKS_PER_MINUTE
        assert http_log_in(client, "ann@acme.test").status_code == 429  # busy: no check
        services.clock.advance(61)
        assert http_log_in(client, "ann@acme.test").status_code == 303
