"""The second factor's rules: a code one step either side of now, each step once; recovery
codes once each; nothing works before the enrolment is confirmed or after it is off."""

from __future__ import annotations

import pyotp
import pytest

from mailhaven.errors import BadRequest, Conflict
from mailhaven.users import totp
from mailhaven.users.models import User
from tests.web.helpers import add_user


def _enrolled(services, account) -> tuple[str, str, list[str]]:  # type: ignore[no-untyped-def]
    user_id = add_user(services, account[0], email="ann@acme.test")
    now = services.clock.now()
    with services.db.transaction() as session:
        user = session.get(User, user_id)
        totp.start_enrolment(session, services.vault, user)
        pending = totp.pending_enrolment(session, services.vault, user, "ann@acme.test")
        assert pending is not None
        assert pending.uri.startswith("otpauth://totp/Mailhaven:ann%40acme.test?secret=")
        assert totp.verify(session, services.vault, user, pyotp.TOTP(pending.secret).at(now),
                           now=now) is None  # not on before it is confirmed
        codes = totp.confirm_enrolment(session, services.vault, user,
                                       pyotp.TOTP(pending.secret).at(now - 30), now=now)
    return user_id, pending.secret, codes


def test_codes_work_one_step_either_side_and_once(services, account) -> None:  # type: ignore[no-untyped-def]
    user_id, secret, _ = _enrolled(services, account)
    code, now = pyotp.TOTP(secret), services.clock.now()
    with services.db.transaction() as session:
        user = session.get(User, user_id)
        check = lambda c: totp.verify(session, services.vault, user, c, now=now)  # noqa: E731
        assert check(code.at(now - 30)) is None  # used by the enrolment
        assert check(code.at(now - 60)) is None and check(code.at(now + 60)) is None
        assert check(code.at(now)) == "totp"
        assert check(code.at(now)) is None  # once
        assert check(code.at(now + 30)) == "totp"
        assert check("12345") is None and check("abcdef") is None and check("") is None


def test_recovery_codes_work_once_each_in_any_spelling(services, account) -> None:  # type: ignore[no-untyped-def]
    user_id, _, codes = _enrolled(services, account)
    assert len(set(codes)) == totp.RECOVERY_CODES
    now = services.clock.now()
    with services.db.transaction() as session:
        user = session.get(User, user_id)
        assert totp.verify(session, services.vault, user, f" {codes[0].upper()} ", now=now) \
            == "recovery"
        assert totp.verify(session, services.vault, user, codes[0], now=now) is None
        assert totp.verify(session, services.vault, user, codes[1].replace("-", ""),
                           now=now) == "recovery"
        assert totp.recovery_codes_left(user) == totp.RECOVERY_CODES - 2
        assert codes[2] not in (user.recovery_codes or "")  # digests only


def test_a_wrong_confirmation_leaves_it_off_and_off_means_off(services, account) -> None:  # type: ignore[no-untyped-def]
    user_id = add_user(services, account[0], email="ann@acme.test")
    now = services.clock.now()
    with services.db.transaction() as session:
        user = session.get(User, user_id)
        with pytest.raises(BadRequest):
            totp.confirm_enrolment(session, services.vault, user, "123456", now=now)
        totp.start_enrolment(session, services.vault, user)
        secret = totp.pending_enrolment(session, services.vault, user, "a").secret
        wrong = next(c for c in ("000000", "111111", "222222", "333333")
                     if c not in {pyotp.TOTP(secret).at(now + d) for d in (-30, 0, 30)})
        with pytest.raises(BadRequest):
            totp.confirm_enrolment(session, services.vault, user, wrong, now=now)
        assert user.totp_enabled_at is None
        codes = totp.confirm_enrolment(session, services.vault, user,
                                       pyotp.TOTP(secret).at(now), now=now)
        with pytest.raises(Conflict):
            totp.start_enrolment(session, services.vault, user)
        totp.disable(user)
        assert totp.verify(session, services.vault, user, codes[0], now=now) is None
        assert user.totp_secret_sealed is None and user.recovery_codes is None
