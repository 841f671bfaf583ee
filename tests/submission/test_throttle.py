"""Failed SMTP logins slow and stop guessing, without locking a real sender out."""

from __future__ import annotations

import asyncio

from mailhaven.clock import FrozenClock
from mailhaven.submission.throttle import (
    LOGIN_LIMIT,
    MAX_DELAY,
    NETWORK_LIMIT,
    TRUSTED_FOR,
    WINDOW,
    AuthThrottle,
)

ANN = "ann@mg.acme.test"


def test_a_network_past_its_limit_is_refused_until_its_failures_are_old() -> None:
    clock = FrozenClock()
    throttle = AuthThrottle(clock)
    for n in range(NETWORK_LIMIT):
        assert throttle.refused("203.0.113.7", f"user{n}@mg.acme.test") is None
        throttle.failed("203.0.113.7", f"user{n}@mg.acme.test")
    assert throttle.refused("203.0.113.7", "someone@mg.acme.test") == "network"
    assert throttle.refused("198.51.100.1", "someone@mg.acme.test") is None  # others aren't
    clock.advance(WINDOW)
    assert throttle.refused("203.0.113.7", "someone@mg.acme.test") is None


def test_a_guessed_login_is_refused_to_strangers_but_not_to_its_own_sender() -> None:
    clock = FrozenClock()
    throttle = AuthThrottle(clock)
    throttle.succeeded("192.0.2.10", ANN)  # the sender's own server, earlier today
    for n in range(LOGIN_LIMIT):  # guesses from many addresses, one each
        throttle.failed(f"203.0.113.{n}", ANN.upper())
    assert throttle.refused("203.0.113.200", ANN) == "login"
    assert throttle.refused("192.0.2.10", ANN) is None  # the sender keeps working
    assert throttle.refused("203.0.113.200", "bob@mg.acme.test") is None
    clock.advance(WINDOW)  # a sender on a new address waits this long at most
    assert throttle.refused("203.0.113.200", ANN) is None


def test_a_network_is_known_to_a_login_for_a_day() -> None:
    clock = FrozenClock()
    throttle = AuthThrottle(clock, login_limit=1)
    throttle.succeeded("192.0.2.10", ANN)
    clock.advance(TRUSTED_FOR - 60)
    throttle.failed("203.0.113.1", ANN)
    assert throttle.refused("192.0.2.10", ANN) is None
    clock.advance(60)
    assert throttle.refused("192.0.2.10", ANN) == "login"


def test_each_failure_is_answered_later_up_to_a_bound() -> None:
    throttle = AuthThrottle(FrozenClock())
    delays = [throttle.failed("203.0.113.7", ANN) for _ in range(30)]
    assert delays == sorted(delays) and delays[0] > 0
    assert delays[-1] == MAX_DELAY


def test_a_failing_network_is_checked_one_attempt_at_a_time() -> None:
    throttle = AuthThrottle(FrozenClock())

    async def attempts() -> tuple[int, int]:
        inside, most = 0, 0

        async def attempt(network: str) -> None:
            nonlocal inside, most
            async with throttle.turn(network):
                inside += 1
                most = max(most, inside)
                await asyncio.sleep(0.01)
                inside -= 1

        await asyncio.gather(*(attempt("198.51.100.1") for _ in range(5)))
        fresh = most
        throttle.failed("203.0.113.7", ANN)
        most = 0
        await asyncio.gather(*(attempt("203.0.113.7") for _ in range(5)))
        return fresh, most

    fresh, failing = asyncio.run(attempts())
    assert fresh == 5  # a network that never failed isn't held back
    assert failing == 1
