"""Two days of mail for the analytics tests: acme's two domains, a bounce, a suppression."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from mailhaven.domains.service import create_domain
from tests.delivery.sinks import send
from tests.support import Sink, SinkBehaviour, deliver_due

DAY = 86_400
OTHER = "other.acme.test"


@dataclass(frozen=True)
class Sent:
    first_day: float  # when the first day's mail was sent (the clock is frozen)
    second_day: float
    ids: dict[str, str]  # name -> Message-ID (without <>)


@pytest.fixture
def two_days(api, services, account, domain, clock) -> Sent:  # type: ignore[no-untyped-def]
    """Day 1: news (tag `news`) to ann and bob from mg.acme.test; bob's mailbox refuses it.
    Day 2: bob again (now suppressed) and carol from mg.acme.test, dan from other.acme.test.
    Each recipient is one accepted event; ann, carol and dan are delivered."""
    with services.db.transaction() as session:
        create_domain(session, services.vault, account[0],
                      {"name": OTHER, "dkim_key_size": "1024"}, services.clock)
    refuse_bob = SinkBehaviour(
        rcpt=lambda rcpt: "550 5.1.1 No such user" if rcpt.startswith("bob@") else None)
    ids = {}
    with Sink(refuse_bob) as sink:
        first = clock.now()
        ids["news"] = send(api, domain, {"to": "ann@example.org, bob@example.org",
                                         "o:tag": "news"})
        deliver_due(services, sink)
        clock.advance(DAY)
        second = clock.now()
        ids["again"] = send(api, domain, {"to": "bob@example.org, carol@example.org"})
        ids["dan"] = send(api, OTHER, {"to": "dan@example.org"})
        deliver_due(services, sink)
    return Sent(first, second, ids)
