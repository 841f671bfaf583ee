"""The lifecycle with a clock that moves between two readings, as the real one does
(FrozenClock hid that `subprocessors add` computed its date with one reading and judged it
with another)."""

from __future__ import annotations

import pytest

from mailhaven.clock import FrozenClock
from mailhaven.notices import service, subprocessors

DAY = 86400.0
RELAY = {"name": "Relay GmbH", "purpose": "outbound relay", "categories": ["addresses"],
         "location": "Frankfurt, Germany", "region": None, "transfer_mechanism": "adequacy",
         "contract_date": "2026-11-01"}


class TickingClock(FrozenClock):
    """A second passes every time it is read."""

    def now(self) -> float:
        self.advance(1.0)
        return super().now()


@pytest.fixture
def clock() -> FrozenClock:
    return TickingClock()


def test_the_register_is_kept_with_a_clock_that_moves(services) -> None:  # type: ignore[no-untyped-def]
    added = subprocessors.add(services, **RELAY)
    assert added.notice.significant and added.subprocessor["upcoming"]
    new = subprocessors.replace(services, added.subprocessor["id"],
                                **{**RELAY, "name": "Other Relay SA"})
    assert new.notice.significant
    removed = subprocessors.remove(services, new.subprocessor["id"])
    assert removed.significant is False
    with services.main_db.sessions() as session:
        assert service.get_version(session, removed.version) is not None
