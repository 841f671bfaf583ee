"""Per-destination shaping: sessions at once and messages a minute per MX host, a 421 that
slows a destination down, and the rules that say so."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re

import pytest
from prometheus_client import REGISTRY

from mailhaven.clock import FrozenClock
from mailhaven.config import Settings
from mailhaven.delivery.models import QUEUED
from mailhaven.delivery.replies import (
    DeliveryFailure,
    SmtpReply,
    failure_for,
    local_failure,
)
from mailhaven.delivery.shaping import FIRST_SESSION_GUESS, WAIT_SECONDS, Held, Limits, Shaper
from mailhaven.services import Services
from mailhaven.shaping_rules import DEFAULT_RULE, Rule, ShapingConfigError, parse_rules, rule_for
from tests.delivery.sinks import (
    CountingSink,
    DnsServer,
    events,
    outcomes,
    queue_rows,
    refuse_first,
    run_worker,
    send,
    with_dns,
)
from tests.support import SinkBehaviour

ZONE = {
    "example.org": {"MX": ["10 mx.example.org."]},
    "mx.example.org": {"A": ["127.0.0.1"]},
    "fast.test": {"MX": ["10 mx.fast.test."]},
    "mx.fast.test": {"A": ["127.0.0.1"]},
}


@pytest.fixture
def dns_server():  # type: ignore[no-untyped-def]
    with DnsServer(ZONE) as server:
        yield server


def shaped(services: Services, dns_server: DnsServer, sink: CountingSink,
           rules: str) -> Services:
    """Services routing by MX to `sink`, with MAILHAVEN_SHAPING=`rules`."""
    services = dataclasses.replace(
        services, settings=services.settings.with_(shaping_rules=parse_rules(rules)))
    return with_dns(services, dns_server, sink.port)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def delivered_to(sink: CountingSink, domain: str) -> list[str]:
    return sorted(r.rcpt_tos[0] for r in sink.received if r.rcpt_tos[0].endswith(domain))


# -- through the worker, as a user sees it ----------------------------------------------
def test_a_host_never_has_more_sessions_open_than_its_rule_allows(
        api, services, domain, clock, dns_server) -> None:
    recipients = [f"user{i}@example.org" for i in range(20)]
    send(api, domain, {"to": recipients})
    with CountingSink() as sink:
        worker = run_worker(shaped(services, dns_server, sink, "*.example.org connections=2"),
                            *[lambda: clock.advance(60)] * 12)

    assert sink.most_sessions <= 2
    assert delivered_to(sink, "example.org") == sorted(recipients)
    done = outcomes(api, domain)
    assert [e["event"] for e in done] == ["delivered"] * 20
    assert {e["delivery-status"]["attempt-no"] for e in done} == {1}  # held is not tried
    assert worker.shaper.limits("mx.example.org") == Limits(connections=2, per_minute=None)


def test_a_421_slows_the_host_down_and_the_mail_is_deferred_not_bounced(
        api, services, domain, clock, dns_server, caplog) -> None:
    caplog.set_level(logging.INFO, logger="mailhaven.delivery")
    slowdowns = metric("mailhaven_delivery_slowdowns_total", rule="*.example.org")
    send(api, domain, {"to": [f"user{i}@example.org" for i in range(6)]})
    too_many = SinkBehaviour(rcpt=refuse_first(3, "421 4.7.0 Too many connections, slow down"))
    with CountingSink(too_many) as sink:
        routed = shaped(services, dns_server, sink, "*.example.org connections=4")
        # One at a time, so each 421 comes from a session opened after the last slow-down.
        worker = run_worker(routed, concurrency=1)

        assert worker.shaper.limits("mx.example.org").connections < 4
        deferred = [e for e in outcomes(api, domain) if e["event"] == "failed"]
        # Each 421 is a deferral (a busy machine may hold a copy back untried instead of
        # letting it meet the next 421, so the count is at most the sink's three).
        assert 1 <= len(deferred) <= 3
        assert {(e["severity"], e["reason"]) for e in deferred} == {("temporary", "espblock")}
        assert {e["delivery-status"]["code"] for e in deferred} == {421}
        assert api.get(f"/v3/{domain}/bounces").json()["items"] == []
        assert {r.status for r in queue_rows(services)} <= {QUEUED, "delivered"}

        clock.advance(max(e["delivery-status"]["retry-seconds"] for e in deferred))
        run_worker(routed)

    assert len(sink.received) == 6
    assert [e["event"] for e in outcomes(api, domain)].count("delivered") == 6
    assert api.get(f"/v3/{domain}/bounces").json()["items"] == []
    lines = [json.loads(r.message) for r in caplog.records if '"kind": "shaping"' in r.message]
    # Halved on each 421 (4 → 2 → 1), never below the floor.
    assert lines and lines[0] == {**lines[0], "state": "slowed", "connections": 2}
    assert [line["connections"] for line in lines] == sorted(
        (line["connections"] for line in lines), reverse=True)
    assert min(line["connections"] for line in lines) >= 1
    # The rule, never the host: an MX name tells the recipient's domain.
    assert {(line["rule"], line["code"]) for line in lines} == {("*.example.org", 421)}
    assert all("destination" not in line for line in lines)
    assert metric("mailhaven_delivery_slowdowns_total",
                  rule="*.example.org") == slowdowns + len(lines)


def test_a_per_minute_limit_holds_the_rest_back_untried_until_the_clock_moves(
        api, services, domain, clock, dns_server) -> None:
    send(api, domain, {"to": [f"user{i}@example.org" for i in range(10)]})
    per_step: list[int] = []
    with CountingSink() as sink:
        routed = shaped(services, dns_server, sink, "*.example.org per_minute=3")

        def one_minute_later() -> None:
            per_step.append(len(sink.received) - sum(per_step))
            assert [e["event"] for e in events(api, domain)
                    if e["event"] != "accepted"] == ["delivered"] * len(sink.received)
            waiting = [r for r in queue_rows(services) if r.status == QUEUED]
            assert len(waiting) == 10 - len(sink.received)
            assert {r.attempts for r in waiting} <= {0}
            clock.advance(60)

        run_worker(routed, *[one_minute_later] * 6)

    assert per_step[0] == 3
    assert max(per_step) == 3
    assert len(sink.received) == 10
    assert {e["delivery-status"]["attempt-no"] for e in outcomes(api, domain)} == {1}


def test_other_destinations_flow_past_a_throttled_one(
        api, services, domain, dns_server) -> None:
    slow = [f"user{i}@example.org" for i in range(12)]
    send(api, domain, {"to": slow})
    send(api, domain, {"to": ["ann@fast.test", "bob@fast.test", "cat@fast.test"]})
    with CountingSink() as sink:
        run_worker(shaped(services, dns_server, sink, "*.example.org per_minute=1"),
                   concurrency=4)

    assert delivered_to(sink, "fast.test") == ["ann@fast.test", "bob@fast.test",
                                               "cat@fast.test"]
    assert len(delivered_to(sink, "example.org")) == 1
    assert [r.attempts for r in queue_rows(services) if r.status == QUEUED] == [0] * 11


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
