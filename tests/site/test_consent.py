"""A website visitor's cookie choice lands in the consent ledger, under a pseudonymous id."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from mailhaven.controls.models import Consent
from mailhaven.errors import BadRequest
from mailhaven.site.consent import (
    cookie_choices,
    is_visitor_id,
    new_visitor_id,
    record_cookie_choice,
)
from mailhaven.site.mail import platform_account


def test_a_choice_and_its_withdrawal_are_in_the_ledger(services, clock) -> None:  # type: ignore[no-untyped-def]
    visitor = new_visitor_id()
    with services.db.sessions() as session:
        assert cookie_choices(session, services, visitor) == []  # nothing made by a reader
    with services.db.transaction() as session:
        record_cookie_choice(session, services, visitor_id=visitor, analytics=True)
    clock.advance(60)
    with services.db.transaction() as session:
        record_cookie_choice(session, services, visitor_id=visitor, analytics=False)

    with services.db.sessions() as session:
        choices = cookie_choices(session, services, visitor)
        rows = session.scalars(select(Consent)).all()
        platform = platform_account(session, services)
    assert [(c["purpose"], c["granted"], c["source"], c["notice_version"])
            for c in choices] == [("analytics", True, "cookie-banner", "1"),
                                  ("analytics", False, "cookie-banner", "1")]
    assert choices[1]["deadline"] is not None  # a withdrawal's deadline is recorded
    assert {r.account_id for r in rows} == {platform}
    assert all(visitor not in r.subject_index for r in rows)  # kept as a blind index only
    with services.db.sessions() as session:
        assert cookie_choices(session, services, new_visitor_id()) == []  # another visitor


def test_a_value_that_is_no_visitor_id_is_refused(services) -> None:  # type: ignore[no-untyped-def]
    assert is_visitor_id(new_visitor_id())
    assert new_visitor_id() != new_visitor_id()
    for value in ("", "ann@example.com", "A" * 32, "0" * 31, "0" * 33):
        assert not is_visitor_id(value)
    with pytest.raises(BadRequest), services.db.transaction() as session:
        record_cookie_choice(session, services, visitor_id="ann@example.com", analytics=True)
