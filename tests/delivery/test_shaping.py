"""Per-destination shaping: sessions at once and messages a minute per MX host, a 421 that
slows a destination down, and the rules that say so."""

from __future__ import annotations

import asyncio
import re

import pytest

from mailhaven.clock import FrozenClock
from mailhaven.config import Settings
from mailhaven.delivery.replies import (
    DeliveryFailure,
    SmtpReply,
    failure_for,
    local_failure,
)
from mailhaven.delivery.shaping import (
    DEFAULT_RULE,
    FIRST_SESSION_GUESS,
    WAIT_SECONDS,
    Held,
    Limits,
    Rule,
    Shaper,
    ShapingConfigError,
    parse_rules,
    rule_for,
)


# -- the shaper's arithmetic ------------------------------------------------------------
def slow_down_reply(host: str = "mx.example.org") -> DeliveryFailure:
    return failure_for(SmtpReply.parse(421, "4.7.0 Too many connections"), host)


async def one_session(shaper: Shaper, host: str, failure: DeliveryFailure | None = None) -> None:
    async with shaper.session(host):
        if failure is not None:
            raise failure


def test_sessions_that_fail_together_slow_the_host_down_once() -> None:
    shaper = Shaper([Rule("*", connections=8)], FrozenClock())

    async def three_at_once() -> None:
        sessions = [shaper.session("mx.example.org") for _ in range(3)]
        for session in sessions:
            await session.__aenter__()
        failure = slow_down_reply()
        for session in sessions:  # each open session gets the 421 as its own reply
            assert not await session.__aexit__(type(failure), failure, None)

    asyncio.run(three_at_once())
    assert shaper.limits("mx.example.org").connections == 4


def test_a_slowed_host_recovers_one_success_at_a_time() -> None:
    clock = FrozenClock()
    shaper = Shaper([Rule("*", connections=8, per_minute=100)], clock)
    for _ in range(3):
        with pytest.raises(DeliveryFailure):
            asyncio.run(one_session(shaper, "MX.example.org", slow_down_reply()))
    assert shaper.limits("mx.example.org") == Limits(connections=1, per_minute=12)

    seen = []
    for _ in range(100):
        clock.advance(60)
        asyncio.run(one_session(shaper, "mx.example.org"))
        seen.append(shaper.limits("mx.example.org"))
    assert seen[0] == Limits(connections=2, per_minute=13)
    assert [s.connections for s in seen] == sorted(s.connections for s in seen)
    assert seen[-1] == Limits(connections=8, per_minute=100)


def test_copies_wait_for_a_session_they_can_expect_soon_and_the_rest_are_held() -> None:
    shaper = Shaper([Rule("*", connections=2)], FrozenClock())
    # Until a session is measured, each is taken to last FIRST_SESSION_GUESS.
    can_wait = int(WAIT_SECONDS * 2 / FIRST_SESSION_GUESS)

    async def at_once(copies: int) -> list[str]:
        async def one() -> str:
            try:
                async with shaper.session("mx.example.org"):
                    await asyncio.sleep(0)  # the others arrive while this one sends
            except Held:
                return "held"
            return "sent"
        return await asyncio.gather(*(one() for _ in range(copies)))

    got = asyncio.run(at_once(2 + can_wait + 3))
    assert (got.count("sent"), got.count("held")) == (2 + can_wait, 3)


def test_a_held_copy_is_due_when_the_minute_frees_a_slot() -> None:
    clock = FrozenClock(1_000_000.0)
    shaper = Shaper([Rule("*", connections=5, per_minute=2)], clock)
    for _ in range(2):
        asyncio.run(one_session(shaper, "mx.example.org"))
        clock.advance(10)
    with pytest.raises(Held) as held:
        asyncio.run(one_session(shaper, "mx.example.org"))
    assert held.value.due == 1_000_060.0  # the first of the two leaves the window
    with pytest.raises(Held) as next_in_line:
        asyncio.run(one_session(shaper, "mx.example.org"))
    assert next_in_line.value.due == 1_000_090.0  # then one every 30 s, not all at once


def test_other_failures_neither_slow_down_nor_speed_up() -> None:
    shaper = Shaper([Rule("*", connections=8)], FrozenClock())
    for failure in (failure_for(SmtpReply.parse(450, "4.2.0 Mailbox busy"), "mx"),
                    local_failure(421, "4.4.1", "Could not connect", permanent=False)):
        with pytest.raises(DeliveryFailure):
            asyncio.run(one_session(shaper, "mx", failure))
    assert shaper.limits("mx").connections == 8


# -- the rules --------------------------------------------------------------------------
def test_rules_come_from_the_environment_then_the_file_then_the_default(
        monkeypatch, tmp_path) -> None:
    rules_file = tmp_path / "shaping.toml"
    rules_file.write_text('[[rule]]\nmx = "*.outlook.com"\nconnections = 5\n\n'
                          '[[rule]]\nmx = "*.yahoodns.net"\nper_minute = 120\n')
    monkeypatch.setenv("MAILHAVEN_SHAPING",
                       "*.google.com connections=10 per_minute=600 ; *.Example.org. "
                       "connections=2;")
    monkeypatch.setenv("MAILHAVEN_SHAPING_FILE", str(rules_file))

    rules = Settings.from_env().shaping_rules
    assert rules == (Rule("*.google.com", 10, 600), Rule("*.example.org", 2),
                     Rule("*.outlook.com", 5), Rule("*.yahoodns.net", 10, 120), DEFAULT_RULE)
    assert rule_for(rules, "gmail-smtp-in.l.google.com") == Rule("*.google.com", 10, 600)
    assert rule_for(rules, "MX.example.org.") == Rule("*.example.org", 2)
    assert rule_for(rules, "example.org") == DEFAULT_RULE  # "*." needs a subdomain
    assert rule_for(rules, "mx.elsewhere.test") == DEFAULT_RULE


def test_the_first_matching_rule_wins_and_a_catch_all_replaces_the_default() -> None:
    rules = parse_rules("mx1.big.test connections=1; *.big.test connections=3; * connections=4")
    assert [rule_for(rules, h).connections for h in ("mx1.big.test", "mx2.big.test", "x")] == [
        1, 3, 4]
    assert DEFAULT_RULE not in rules
    assert parse_rules("") == (DEFAULT_RULE,)


@pytest.mark.parametrize("inline, message", [
    ("*.google.com connections=0", 'rule 1 ("*.google.com connections=0"): connections must be'
                                   " a whole number of at least 1, got 0"),
    ("* connections=10; *.x.test conections=2", 'rule 2 ("*.x.test conections=2"): unknown'
                                                " setting conections (expected connections"
                                                " and/or per_minute)"),
    ("*.x.test connections=ten", 'rule 1 ("*.x.test connections=ten"): connections must be a'
                                 " whole number, got 'ten'"),
    ("*.x.test per_minute", 'rule 1 ("*.x.test per_minute"): expected setting=number, got'
                            " 'per_minute'"),
    ("*.x.test", 'rule 1 ("*.x.test"): give connections and/or per_minute'),
])
def test_a_bad_inline_rule_is_refused_saying_where_and_why(inline: str, message: str) -> None:
    with pytest.raises(ShapingConfigError) as refused:
        parse_rules(inline)
    assert str(refused.value) == f"MAILHAVEN_SHAPING, {message}"


@pytest.mark.parametrize("toml, message", [
    ('[[rule]]\nmx = "*.x.test"\nconnections = "10"\n',
     ", rule 1 (*.x.test): connections must be a whole number of at least 1, got '10'"),
    ('[[rule]]\nconnections = 10\n', ', rule 1: needs mx = "pattern"'),
    ('[[rule]]\nmx = "a b"\nconnections = 1\n',
     ", rule 1 (a b): the MX pattern must be one word, like *.google.com"),
    ('[[rules]]\nmx = "*"\n', ": expected only [[rule]] tables, found rules"),
    ("rule = [1]\n", ", rule 1: expected a [[rule]] table"),
    ("[[rule]\n", ": not valid TOML: "),
])
def test_a_bad_rules_file_is_refused_saying_where_and_why(tmp_path, toml: str,
                                                          message: str) -> None:
    path = tmp_path / "shaping.toml"
    path.write_text(toml)
    with pytest.raises(ShapingConfigError, match="^" + re.escape(
            f"MAILHAVEN_SHAPING_FILE {path}{message}")):
        parse_rules(path=path)


def test_a_missing_rules_file_is_refused(tmp_path) -> None:
    with pytest.raises(ShapingConfigError, match="cannot be read: No such file"):
        parse_rules(path=tmp_path / "nope.toml")
