"""Failed SMTP logins slow and stop guessing, without locking a real sender out."""

from __future__ import annotations

import asyncio
from collections import Counter
from contextlib import AsyncExitStack

from mailhaven.clock import FrozenClock
from mailhaven.submission.auth import Logins
from mailhaven.submission.throttle import (
    IN_FLIGHT_PER_LOGIN,
    IN_FLIGHT_PER_NETWORK,
    LOGIN_LIMIT,
    MAX_DELAY,
    NETWORK_LIMIT,
    TRUSTED_FOR,
    WINDOW,
    AuthThrottle,
)
from tests.submission.conftest import LOGIN, PASSWORD

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

        async def attempt(network: str, n: int) -> None:
            nonlocal inside, most
            async with throttle.attempt(network, f"user{n}@mg.acme.test") as refused:
                assert refused is None
                inside += 1
                most = max(most, inside)
                await asyncio.sleep(0.01)
                inside -= 1

        await asyncio.gather(*(attempt("198.51.100.1", n) for n in range(5)))
        fresh = most
        throttle.failed("203.0.113.7", ANN)
        most = 0
        await asyncio.gather(*(attempt("203.0.113.7", n) for n in range(5)))
        return fresh, most

    fresh, failing = asyncio.run(attempts())
    assert fresh == 5  # a network that never failed isn't held back
    assert failing == 1


def test_attempts_being_checked_count_against_the_limits() -> None:
    """Attempts still in flight count as failures: parallel ones can't all pass a limit
    that none of them has reached yet."""
    throttle = AuthThrottle(FrozenClock(), network_limit=3, login_limit=2)

    async def attempts() -> list[str | None]:
        async with AsyncExitStack() as held:
            return [await held.enter_async_context(throttle.attempt(network, login))
                    for network, login in [("203.0.113.1", ANN), ("203.0.113.2", ANN.upper()),
                                           ("203.0.113.2", ANN),
                                           ("203.0.113.1", "bob@mg.acme.test"),
                                           ("203.0.113.1", "cy@mg.acme.test"),
                                           ("203.0.113.1", "dee@mg.acme.test")]]

    assert asyncio.run(attempts()) == [None, None, "login", None, None, "network"]
    assert throttle.refused("203.0.113.1", ANN) is None  # released: none of them failed


def test_attempts_in_flight_are_capped_per_network_and_per_login() -> None:
    throttle = AuthThrottle(FrozenClock(), network_limit=1000, login_limit=1000)

    async def attempts() -> tuple[list[str | None], list[str | None]]:
        async with AsyncExitStack() as held:
            logins = [await held.enter_async_context(throttle.attempt(f"203.0.113.{n}", ANN))
                      for n in range(IN_FLIGHT_PER_LOGIN + 1)]
            networks = [await held.enter_async_context(
                throttle.attempt("198.51.100.1", f"user{n}@mg.acme.test"))
                for n in range(IN_FLIGHT_PER_NETWORK + 1)]
            return logins, networks

    logins, networks = asyncio.run(attempts())
    assert logins == [None] * IN_FLIGHT_PER_LOGIN + ["busy-login"]
    assert networks == [None] * IN_FLIGHT_PER_NETWORK + ["busy-network"]


def test_a_login_s_own_network_is_never_busy() -> None:
    """An application that logged in lately opens many connections at once: none of
    them is turned away, while a stranger's burst still is."""
    throttle = AuthThrottle(FrozenClock(), network_limit=1000, login_limit=1000)
    throttle.succeeded("198.51.100.1", ANN)

    async def attempts() -> list[str | None]:
        async with AsyncExitStack() as held:
            return [await held.enter_async_context(throttle.attempt("198.51.100.1", ANN))
                    for _ in range(IN_FLIGHT_PER_NETWORK + IN_FLIGHT_PER_LOGIN)]

    assert asyncio.run(attempts()) == [None] * (IN_FLIGHT_PER_NETWORK + IN_FLIGHT_PER_LOGIN)


async def _burst(logins: Logins, attempts: list[tuple[str, str, str]]) -> Counter[str]:
    """The reply codes to `attempts` (peer, login, password) made all at once."""
    replies = await asyncio.gather(*(logins.check(peer, login.encode(), password.encode())
                                     for peer, login, password in attempts))
    return Counter(reply[:3] if isinstance(reply, str) else "235" for reply in replies)


def test_parallel_wrong_passwords_are_verified_no_more_than_the_limit(
        services, credential, clock) -> None:
    """Rounds of 40 simultaneous wrong passwords for one login, from one address: at most
    LOGIN_LIMIT of them are ever checked, and the rest are answered 454 at once."""
    logins = Logins(services, AuthThrottle(clock, delay_step=0))

    async def rounds() -> list[Counter[str]]:
        return [await _burst(logins, [("203.0.113.9", LOGIN, f"wrong-{n}") for n in range(40)])
                for _ in range(LOGIN_LIMIT)]

    try:
        replies = asyncio.run(rounds())
    finally:
        logins.close()
    assert all(set(burst) <= {"535", "454"} for burst in replies), replies
    assert sum(burst["535"] for burst in replies) == LOGIN_LIMIT
    assert replies[-1] == {"454": 40}


def test_attempts_waiting_for_argon2_are_bounded(services, credential, clock) -> None:
    logins = Logins(services, AuthThrottle(clock, delay_step=0), max_pending=2)
    try:
        replies = asyncio.run(_burst(logins, [
            (f"203.0.113.{n}", f"user{n}@mg.acme.test", "wrong") for n in range(10)]))
    finally:
        logins.close()
    assert replies == {"535": 2, "454": 8}


def _spellings(login: str) -> list[str]:
    """Ways AUTH may be given one login, all of which authenticate as it."""
    local, _, domain = login.partition("@")
    wide = "".join(chr(ord(c) + 0xFEE0) if c.isalpha() else c for c in domain)
    return [login, login.upper(), f"{login}.", f"{login}...", f" {login}  ",
            f"{local}@{wide}", f"{local.upper()}@{domain.upper()}."]


def test_every_spelling_of_a_login_shares_its_limit(services, credential, clock) -> None:
    """Failures count under the login AUTH looks up, not as it was spelled: the last
    spelling, with the right password, is refused like the others were."""
    logins = Logins(services, AuthThrottle(clock, delay_step=0))
    spellings = _spellings(LOGIN)

    async def attempts() -> list[str]:
        replies = []
        for n in range(LOGIN_LIMIT):  # each from a network of its own
            reply = await logins.check(f"203.0.113.{n}", spellings[n % len(spellings)].encode(),
                                       b"wrong")
            replies.append(str(reply)[:3])
        for n, spelling in enumerate(spellings):
            reply = await logins.check(f"198.51.100.{n}", spelling.encode(), PASSWORD.encode())
            replies.append(str(reply)[:3])
        return replies

    try:
        replies = asyncio.run(attempts())
    finally:
        logins.close()
    assert replies == ["535"] * LOGIN_LIMIT + ["454"] * len(spellings)


def test_an_ipv6_client_is_counted_with_its_site(services, credential, clock) -> None:
    """A fresh /64 for each guess is free to take from one's /48: the limit is the /48's."""
    logins = Logins(services, AuthThrottle(clock, network_limit=3, delay_step=0))

    async def attempts() -> list[str]:
        return [str(await logins.check(f"2001:db8:0:{n}::1", f"user{n}@mg.acme.test".encode(),
                                       b"wrong"))[:3] for n in range(4)]

    try:
        replies = asyncio.run(attempts())
    finally:
        logins.close()
    assert replies == ["535", "535", "535", "454"]


def test_a_login_s_own_network_does_not_wait_behind_its_failures() -> None:
    throttle = AuthThrottle(FrozenClock())
    throttle.succeeded("192.0.2.10", ANN)
    throttle.failed("192.0.2.10", "bob@mg.acme.test")  # someone else there guesses

    async def attempts() -> list[str | None]:
        async with AsyncExitStack() as held:
            guessing = await held.enter_async_context(
                throttle.attempt("192.0.2.10", "cy@mg.acme.test"))  # holds the network's turn
            own = await asyncio.wait_for(
                held.enter_async_context(throttle.attempt("192.0.2.10", ANN)), 60)
            return [guessing, own]

    assert asyncio.run(attempts()) == [None, None]


def test_one_network_s_many_logins_do_not_push_out_the_others() -> None:
    clock = FrozenClock()
    throttle = AuthThrottle(clock, login_limit=1, size=50)
    throttle.succeeded("192.0.2.10", ANN)
    for n in range(1000):  # one client, logging in with logins of its own
        throttle.succeeded("203.0.113.66", f"user{n}@mg.attacker.test")
    throttle.failed("198.51.100.1", ANN)
    assert throttle.refused("192.0.2.10", ANN) is None  # still known: not pushed out
    assert throttle.refused("203.0.113.66", "user999@mg.attacker.test") is None
    assert throttle.refused("203.0.113.66", "user0@mg.attacker.test") is None  # never failed
    throttle.failed("198.51.100.1", "user0@mg.attacker.test")
    assert throttle.refused("203.0.113.66", "user0@mg.attacker.test") == "login"  # forgotten
