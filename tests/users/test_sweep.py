"""The scheduler's sweep: sessions, login attempts and one-time links go when they end,
on an installation nobody logs in to; live ones stay."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from mailhaven.users import sessions, throttle, tokens
from mailhaven.users.models import AuthAttempt, User, UserToken, WebSession
from mailhaven.users.runner import PanelSweeper
from tests.web.helpers import add_user


def _count(services, model) -> int:  # type: ignore[no-untyped-def]
    with services.db.sessions() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_the_sweep_deletes_what_ended_and_keeps_what_lives(services, account, clock) -> None:
    user_id = add_user(services, account[0], email="ann@acme.test")
    with services.db.transaction() as session:
        user = session.get(User, user_id)
        sessions.start_session(session, user, now=clock.now())
        tokens.issue_token(session, user_id, "reset", now=clock.now())
        throttle.record_failure(session, throttle.who(services.vault, "ann@acme.test",
                                                      "192.0.2.0"), now=clock.now())
    clock.advance(13 * 3600)  # past the session's 12 hours, the link's hour, the window
    with services.db.transaction() as session:
        live = sessions.start_session(session, session.get(User, user_id), now=clock.now())

    assert asyncio.run(PanelSweeper(services).run_once()) == 0  # it sleeps until next time
    assert _count(services, WebSession) == 1 and _count(services, UserToken) == 0
    assert _count(services, AuthAttempt) == 0
    with services.db.sessions() as session:
        assert sessions.find_session(session, live, now=clock.now()) is not None
