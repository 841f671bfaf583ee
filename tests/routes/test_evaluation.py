"""Route evaluation as Mailgun documents it: ascending priority (ties: the oldest first),
every matching route's actions until one with stop(), catch_all() only when nothing before
it matched; patterns matched from the start of the text, in any case; captures in actions;
a pattern too slow for its time limit counts as no match, and the rest still run."""

from __future__ import annotations

import logging

import pytest

from mailhaven.routes import service
from mailhaven.routes.expressions import MAX_SUBJECT, RouteAction
from tests.support import create_tenant

HOOK = "https://hooks.acme.test"


@pytest.fixture
def add(services, account):  # type: ignore[no-untyped-def]
    """Store a route of the account the way the API does; its id."""
    def add(expression: str, *actions: str, priority: int = 0,
            account_id: str | None = None) -> str:
        fields = [("expression", expression), ("priority", str(priority)),
                  *(("action", action) for action in actions)]
        with services.db.transaction() as session:
            made = service.create(session, services.vault, account_id or account[0], fields,
                                  services.clock.now())
        return str(made["route"]["id"])
    return add


@pytest.fixture
def evaluate(services, account):  # type: ignore[no-untyped-def]
    def evaluate(recipient: str, headers: list[tuple[str, str]] | None = None,
                 account_id: str | None = None) -> list[RouteAction]:
        with services.db.sessions() as session:
            return service.matching_actions(session, services.vault, account_id or account[0],
                                            recipient, headers or [])
    return evaluate


def targets(actions: list[RouteAction]) -> list[str | None]:
    return [a.target if a.kind == "forward" else f"store:{a.notify}" for a in actions]


def test_every_matching_route_fires_by_priority_until_stop(add, evaluate) -> None:
    add('match_recipient(".*@mg.acme.test")', f'forward("{HOOK}/third")', priority=30)
    first = add('match_recipient("support@")', f'forward("{HOOK}/first")', priority=10)
    add('match_recipient("nobody@")', f'forward("{HOOK}/never")', priority=15)
    second = add('match_recipient(".*@mg.acme.test")', 'store()', "stop()",
                 f'forward("{HOOK}/after-stop")', priority=20)
    add("catch_all()", f'forward("{HOOK}/catch-all")', priority=40)
    add('match_recipient(".*")', f'forward("{HOOK}/beyond")', priority=50)
    found = evaluate("support@mg.acme.test")
    # stop() ends the evaluation after its own route's actions, all of them.
    assert targets(found) == [f"{HOOK}/first", "store:None", f"{HOOK}/after-stop"]
    assert [a.route_id for a in found] == [first, second, second]
    # Another recipient skips the first route; the stop still holds.
    assert targets(evaluate("sales@mg.acme.test")) == ["store:None", f"{HOOK}/after-stop"]


def test_ties_of_priority_fire_oldest_first(add, evaluate) -> None:
    for name in ("one", "two", "three"):
        add('match_recipient(".*")', f'forward("{HOOK}/{name}")', priority=5)
    assert targets(evaluate("a@mg.acme.test")) == [f"{HOOK}/{n}" for n in ("one", "two", "three")]


def test_catch_all_fires_only_when_nothing_before_it_matched(add, evaluate) -> None:
    add('match_recipient("orders@")', f'forward("{HOOK}/orders")', priority=1)
    add("catch_all()", f'forward("{HOOK}/rest")', priority=2)
    add("catchall()", f'forward("{HOOK}/second-catch-all")', priority=3)
    assert targets(evaluate("orders@mg.acme.test")) == [f"{HOOK}/orders"]
    # Nothing matched before: the first catch-all fires; it is a match for the next one.
    assert targets(evaluate("ann@mg.acme.test")) == [f"{HOOK}/rest"]


def test_a_catch_all_first_in_order_fires_and_later_routes_still_do(add, evaluate) -> None:
    add("catch_all()", f'forward("{HOOK}/all")', priority=0)
    add('match_recipient("orders@")', f'forward("{HOOK}/orders")', priority=1)
    assert targets(evaluate("orders@mg.acme.test")) == [f"{HOOK}/all", f"{HOOK}/orders"]


def test_patterns_match_from_the_start_in_any_case(add, evaluate) -> None:
    add('match_recipient("foo@bar.test")', f'forward("{HOOK}/exact")')
    add('match_header("subject", "support")', f'forward("{HOOK}/starts")')
    add('match_header("Subject", ".*support")', f'forward("{HOOK}/anywhere")')
    assert targets(evaluate("FOO@Bar.TEST", [("SUBJECT", "Need SUPPORT")])) == [
        f"{HOOK}/exact", f"{HOOK}/anywhere"]
    assert targets(evaluate("xfoo@bar.test", [("Subject", "support please")])) == [
        f"{HOOK}/starts", f"{HOOK}/anywhere"]
    assert evaluate("bar@foo.test", [("X-Other", "support")]) == []


def test_match_header_reads_every_value_unfolded_and_decoded(add, evaluate) -> None:
    add('match_recipient(".*") and match_header("x-tag", "(blue|green)$")',
        f'forward("{HOOK}/\\1")')
    add('match_header("subject", ".*urgent")', f'forward("{HOOK}/urgent")')
    found = evaluate("a@mg.acme.test", [("X-Tag", "red"), ("x-tag", "green"),
                                        ("Subject", "=?utf-8?q?tr=C3=A8s_URGENT?=")])
    assert targets(found) == [f"{HOOK}/green", f"{HOOK}/urgent"]
    assert targets(evaluate("a@mg.acme.test", [("Subject", "not\r\n urgent")])) == [
        f"{HOOK}/urgent"]
    assert evaluate("a@mg.acme.test", [("X-Tag", "red")]) == []


def test_captures_numbered_across_filters_and_named(add, evaluate) -> None:
    route = add('match_recipient("(?P<user>[^@]+)@(?P<domain>.*)") and '
                'match_header("subject", "ticket (\\d+)")',
                f'forward("{HOOK}/d/\\g<domain>/u/\\g<user>?ticket=\\3")',
                'forward("\\1@team.acme.test")',
                f'store(notify="{HOOK}/stored/\\g<2>")')
    found = evaluate("Chris+vip/x@mg.acme.test", [("Subject", "Ticket 42")])
    assert found == [
        # In a URL a capture is percent-encoded: it can't start another path or query.
        RouteAction(route, "forward", f"{HOOK}/d/mg.acme.test/u/Chris%2Bvip%2Fx?ticket=42"),
        RouteAction(route, "forward", "Chris+vip/x@team.acme.test"),
        RouteAction(route, "store", None, f"{HOOK}/stored/mg.acme.test")]


def test_an_address_a_capture_spoils_is_left_out(add, evaluate) -> None:
    add('match_header("subject", "(.*)")', 'forward("\\1@team.acme.test")',
        f'forward("{HOOK}/x")')
    assert targets(evaluate("a@mg.acme.test", [("Subject", "two words")])) == [f"{HOOK}/x"]
    assert targets(evaluate("a@mg.acme.test", [("Subject", "bob")])) == [
        "bob@team.acme.test", f"{HOOK}/x"]


def test_a_slow_pattern_counts_as_no_match_and_the_rest_still_run(add, evaluate,
                                                                   caplog) -> None:
    # Polynomial backtracking the check at creation lets through (no repeat within a
    # repeat): at evaluation it runs out of its time and counts as no match.
    slow = add('match_header("subject", "' + ".*a" * 12 + '\\d")', f'forward("{HOOK}/slow")',
               priority=1)
    add('match_recipient(".*")', f'forward("{HOOK}/next")', priority=2)
    caplog.set_level(logging.WARNING, logger="mailhaven.routes")
    subject = "1" + "a" * 6000
    assert targets(evaluate("ann@mg.acme.test", [("Subject", subject)])) == [f"{HOOK}/next"]
    assert f"route {slow}: a filter counts as no match: the pattern ran out of time" \
        in caplog.text
    assert "ann@" not in caplog.text and "aaaa" not in caplog.text


def test_an_evaluation_has_a_budget_beyond_it_routes_count_as_no_match(
        add, evaluate, caplog, monkeypatch) -> None:
    # Each slow route runs out of its own time; together they would hold the processor
    # for as long as the account has routes: past the budget the rest are not run.
    monkeypatch.setattr(service, "EVALUATION_SECONDS", 0.25)
    for n in range(4):
        add('match_header("subject", "' + ".*a" * 12 + '\\d")', f'forward("{HOOK}/slow")',
            priority=n)
    last = add('match_recipient(".*")', f'forward("{HOOK}/next")', priority=9)
    caplog.set_level(logging.WARNING, logger="mailhaven.routes")
    assert evaluate("ann@mg.acme.test", [("Subject", "1" + "a" * 6000)]) == []
    assert f"{last}: not evaluated, count as no match: the evaluation ran out of time" \
        in caplog.text
    assert targets(evaluate("ann@mg.acme.test", [("Subject", "short")])) == [f"{HOOK}/next"]


def test_text_longer_than_the_limit_counts_as_no_match(add, evaluate, caplog) -> None:
    route = add('match_header("subject", ".*")', f'forward("{HOOK}/any")')
    caplog.set_level(logging.WARNING, logger="mailhaven.routes")
    assert evaluate("a@mg.acme.test", [("Subject", "x" * (MAX_SUBJECT + 1))]) == []
    assert f"route {route}: a filter counts as no match: the text is too long" in caplog.text
    assert targets(evaluate("a@mg.acme.test", [("Subject", "x" * 100)])) == [f"{HOOK}/any"]


def test_an_account_s_routes_never_act_for_another(services, add, evaluate) -> None:
    other = create_tenant(services)
    add('match_recipient(".*")', f'forward("{HOOK}/acme")')
    add('match_recipient(".*")', f'forward("{HOOK}/bee")', account_id=other.account_id)
    assert targets(evaluate("x@mg.acme.test")) == [f"{HOOK}/acme"]
    assert targets(evaluate("x@mg.bee.test", account_id=other.account_id)) == [f"{HOOK}/bee"]


def test_an_update_takes_effect_at_the_next_evaluation(services, account, add,
                                                       evaluate) -> None:
    route = add('match_recipient("old@")', f'forward("{HOOK}/old")')
    assert targets(evaluate("old@mg.acme.test")) == [f"{HOOK}/old"]
    with services.db.transaction() as session:
        service.update(session, services.vault, account[0], route, [
            ("expression", 'match_recipient("new@")'), ("action", f'forward("{HOOK}/new")')])
    assert evaluate("old@mg.acme.test") == []
    assert targets(evaluate("new@mg.acme.test")) == [f"{HOOK}/new"]
