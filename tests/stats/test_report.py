"""`stats.report` and `mailhaven stats report` (SPEC N15): platform-wide figures from the
counters, published only for groups of at least k accounts, optionally with Laplace noise;
nothing in them names an account, a domain or an address."""

from __future__ import annotations

import json
import random
import re
import statistics
from datetime import UTC, datetime

from mailhaven.accounts.service import create_account
from mailhaven.config import Settings
from mailhaven.domains.service import create_domain
from mailhaven.services import Platform, Services
from mailhaven.stats import service as counters
from mailhaven.stats.report import (
    DAY,
    MEASURES,
    PARTITIONS,
    SUPPRESSED,
    Row,
    Usage,
    collect,
    dominated,
    period,
    publish,
    report,
    suppress,
)
from tests.test_cli import _cli


def _accounts(services: Services, stem: str, n: int, day: int, accepted: int = 10,
              ) -> list[tuple[str, str]]:
    """`n` accounts of `services`' region, each with a domain whose counters saw `accepted`
    messages accepted, all but one delivered, one failed, at noon of `day`: (id, domain)."""
    made = []
    for i in range(n):
        name = f"mg.{stem}{i}.test"
        with services.db.transaction() as session:
            issued = create_account(session, services.vault, name=f"{stem} {i}",
                                    email=f"ops@{stem}{i}.test", region=services.region,
                                    clock=services.clock)
            domain = create_domain(session, services.vault, issued.account_id, {"name": name},
                                   services.clock)
            counters.count(session, domain.id,
                           [("accepted", [], {})] * accepted
                           + [("delivered", [], {})] * (accepted - 1) + [("failed", [], {})],
                           day + DAY / 2)
        made.append((issued.account_id, name))
    return made


def _yesterday(now: float) -> int:
    return int(now // DAY * DAY) - DAY


def _regions(platform: Platform) -> dict:
    return {name: services.db for name, services in platform.regions.items()}


def _nothing_computable(made: dict) -> None:
    """In each period, no suppressed figure is the published total less published cells,
    and a withheld total is not the sum of a partition published whole."""
    for figures, measure in ((f, m) for f in made.get("periods", [made]) for m in MEASURES):
        total = figures["totals"][measure]
        for partition in PARTITIONS:
            values = [cells[measure] for cells in figures[partition].values()]
            hidden = values.count(SUPPRESSED)
            if total == SUPPRESSED:
                assert hidden >= 1, (measure, partition, values)
            else:
                assert hidden != 1, (measure, partition, values)


def _no_names(made: dict, accounts: list[tuple[str, str]]) -> None:
    text = json.dumps(made)
    assert "@" not in text
    for account_id, domain in accounts:
        assert account_id not in text and domain not in text
        assert domain.split(".")[1] not in text


def test_a_region_of_12_accounts_is_published_exactly_one_of_3_suppressed(
        platform: Platform, clock) -> None:
    day = _yesterday(clock.now())
    accounts = (_accounts(platform.region("us"), "usacme", 12, day)
                + _accounts(platform.region("eu"), "euacme", 3, day))

    made = report(_regions(platform), clock.now(), unit="day", count=7, k=10)

    assert made["k"] == 10 and made["noise"] is None and made["regions"] == ["us", "eu"]
    assert made["period"] == {"unit": "day", "count": 7, "from": _date(day - 6 * DAY),
                              "to": _date(day)}
    assert [p["period"] for p in made["periods"]] == [_date(day - n * DAY)
                                                      for n in range(6, -1, -1)]
    figures = made["periods"][-1]
    assert (figures["from"], figures["to"], figures["days"]) == (_date(day), _date(day), 1)
    us, eu = figures["by_region"]["us"], figures["by_region"]["eu"]
    assert (us["accepted"], us["delivered"], us["failed"], us["active_accounts"]) == (
        120, 108, 12, 12)
    assert us["opened"] == 0  # no account opened anything: an empty group is about no one
    for measure in ("accepted", "delivered", "failed", "active_accounts"):
        assert eu[measure] == SUPPRESSED
        # the total (us + eu) would give eu; the band that holds all 15 would too
        assert figures["totals"][measure] == SUPPRESSED
        assert figures["by_volume"]["1-999"][measure] == SUPPRESSED
    assert made["periods"][-2]["totals"]["accepted"] == 0
    _nothing_computable(made)
    _no_names(made, accounts)

    smaller = report(_regions(platform), clock.now(), unit="day", count=1, k=3)
    assert smaller["periods"][0]["by_region"]["eu"]["accepted"] == 30
    assert smaller["periods"][0]["totals"]["accepted"] == 150
    assert smaller["periods"][0]["totals"]["active_accounts"] == 15


SUNDAY = datetime(2026, 12, 6, 6, 34, tzinfo=UTC).timestamp()  # week 49's last day


def _noon(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp())


def test_exact_figures_are_per_calendar_day_iso_week_or_month(services: Services) -> None:
    """12 accounts on Tuesday of week 48, 3 on its Sunday, 4 on Monday 30 November (week
    49, not over on Sunday 6 December). Each report cuts time at the same boundaries."""
    for stem, n, day in (("tue", 12, "2026-11-24"), ("sun", 3, "2026-11-29"),
                         ("mon", 4, "2026-11-30")):
        _accounts(services, stem, n, _noon(day))
    db = {"us": services.db}

    days = report(db, SUNDAY, unit="day", count=7, k=10)
    assert [(p["period"], p["totals"]["accepted"]) for p in days["periods"]] == [
        ("2026-11-29", SUPPRESSED), ("2026-11-30", SUPPRESSED), *(
            (f"2026-12-0{n}", 0) for n in range(1, 6))]

    weeks = report(db, SUNDAY, unit="week", count=2, k=10)
    assert [(p["period"], p["from"], p["to"], p["days"]) for p in weeks["periods"]] == [
        ("2026-W47", "2026-11-16", "2026-11-22", 7), ("2026-W48", "2026-11-23", "2026-11-29", 7)]
    assert weeks["periods"][1]["totals"]["accepted"] == 150
    assert weeks["periods"][1]["totals"]["active_accounts"] == 15

    months = report(db, SUNDAY, unit="month", count=2, k=10)
    assert [(p["period"], p["from"], p["to"], p["days"]) for p in months["periods"]] == [
        ("2026-10", "2026-10-01", "2026-10-31", 31), ("2026-11", "2026-11-01", "2026-11-30", 30)]
    assert months["periods"][1]["totals"]["accepted"] == 190
    assert months["periods"][1] == report(db, SUNDAY, unit="month", k=10)["periods"][0]
    assert report(db, SUNDAY, k=10)["period"]["unit"] == "month"  # the default


def test_two_reports_no_longer_differ_by_one_accounts_suppressed_day(services: Services,
                                                                     clock) -> None:
    """The differencing attack: 12 accounts sent yesterday, one other account alone the day
    before. A 2-day and a 1-day window showed 120 + 777 and 120: 777 is that account's,
    though its day is suppressed in both. Windows of any length are exact no more, and
    reports of more or fewer calendar days show each day the same."""
    day = _yesterday(clock.now())
    _accounts(services, "many", 12, day)
    _accounts(services, "alone", 1, day - DAY, accepted=777)
    db = {"us": services.db}

    for days in (1, 2):
        try:
            report(db, clock.now(), days=days, k=10)
        except ValueError as refused:
            assert "needs --epsilon" in str(refused)
        else:
            raise AssertionError("an exact report of an arbitrary window")

    one = report(db, clock.now(), unit="day", count=1, k=10)["periods"]
    two = report(db, clock.now(), unit="day", count=2, k=10)["periods"]
    assert two[1] == one[0] and one[0]["by_region"]["us"]["accepted"] == 120
    assert two[0]["by_region"]["us"]["accepted"] == SUPPRESSED
    assert two[0]["totals"]["accepted"] == SUPPRESSED
    published = [figures[measure] for p in two for table in ("totals", "by_region", "by_volume")
                 for figures in (p[table].values() if table != "totals" else [p[table]])
                 for measure in MEASURES]
    assert 777 not in published and 897 not in published


def test_only_the_first_table_with_a_small_remainder_keeps_it() -> None:
    """Regions 12 + 3 accounts, days 11 + 4 (the 4 partly the region's 3), one band of 15:
    the total is withheld, `eu` alone suppressed in the regions; in the days, the 4 and the
    11 with them (what a table suppresses must hold k accounts); the band's whole (it would
    add up to the total)."""
    us, eu = set(range(12)), {12, 13, 14}
    shown, hidden = suppress(_ones(us | eu), {
        "by_region": {"us": _ones(us), "eu": _ones(eu)},
        "by_day": {1: _ones(set(range(10)) | {12}), 2: _ones({10, 11, 13, 14}), 3: {}},
        "by_volume": {"1-999": _ones(us | eu), "0": {}},
    }, k=10)
    assert not shown
    assert hidden == {"by_region": {"eu"}, "by_day": {1, 2}, "by_volume": {"1-999"}}

    shown, hidden = suppress(_ones(us | eu), {
        "by_region": {"us": _ones(us | eu), "eu": {}},
        "by_day": {1: _ones(us), 2: _ones({12}), 3: _ones({13}), 4: _ones({14})}}, k=3)
    assert shown and hidden == {"by_region": set(), "by_day": {2, 3, 4}}
    assert suppress(_ones({1, 2}), {"by_region": {"us": _ones({1, 2})}}, k=3) == (
        False, {"by_region": {"us"}})
    assert suppress({}, {"by_region": {"us": {}}}, k=3) == (True, {"by_region": set()})


def _ones(accounts: set[int]) -> dict[int, int]:
    return dict.fromkeys(accounts, 1)


def test_the_p_percent_rule() -> None:
    """Suppressed when the cell less its two largest parts is under p% of the largest."""
    big_and_small = {0: 5000, **dict.fromkeys(range(1, 10), 10)}  # 10 accounts, 80 < 500
    assert dominated(big_and_small, 10) and not dominated(big_and_small, 1)
    assert not dominated({0: 5000, **dict.fromkeys(range(1, 10), 100)}, 10)  # 800 ≥ 500
    assert not dominated(dict.fromkeys(range(12), 1), 10)
    assert dominated({0: 1, 1: 1}, 10)  # two accounts: each knows the other's
    assert not dominated({}, 10)


def test_a_group_of_k_dominated_by_one_account_is_suppressed_and_not_computable() -> None:
    """All in the band 100000+: `us` has 10 accounts, one of them sends 10 million, the
    nine others 100,000 each (800,000 besides the two largest, under 10% of 10 million);
    `eu` has 60 accounts of 100,000. The total alone passes, but less `eu` it gives `us`."""
    now = 100 * DAY + 5
    day = period(now, 1)[0]
    rows = [Row("us", 0, day, "accepted", 10_000_000),
            *(Row("us", n, day, "accepted", 100_000) for n in range(1, 10)),
            *(Row("eu", n, day, "accepted", 100_000) for n in range(10, 70))]
    usage = Usage(("us", "eu"), (day,), tuple(rows))

    made = publish(usage, k=10)

    assert made["dominance"] == {"rule": "p%", "p": 10}
    assert made["by_region"]["us"]["accepted"] == SUPPRESSED
    assert made["by_region"]["eu"]["accepted"] == 6_000_000
    assert made["by_region"]["us"]["active_accounts"] == 10  # one each: no one dominates
    assert made["totals"]["accepted"] == SUPPRESSED
    assert made["by_volume"]["100000+"]["accepted"] == SUPPRESSED  # it is the total
    _nothing_computable(made)

    without = publish(usage, k=10, dominance=0)
    assert without["by_region"]["us"]["accepted"] == 10_900_000
    assert without["totals"]["accepted"] == 16_900_000


def test_laplace_noise_changes_the_published_figures_but_not_their_mean(
        services: Services, clock) -> None:
    day = _yesterday(clock.now())
    _accounts(services, "noisy", 12, day)
    _accounts(services, "quiet", 3, day - DAY)
    usage = collect({"us": services.db}, day, day + DAY)
    quiet = collect({"us": services.db}, day - DAY, day)
    assert publish(usage, k=10)["totals"]["accepted"] == 120
    assert publish(quiet, k=10)["totals"]["accepted"] == SUPPRESSED

    rng = random.Random(15)
    runs = [publish(usage, k=10, epsilon=1.0, clip=10, rng=rng) for _ in range(400)]

    assert runs[0]["noise"] == {"mechanism": "laplace", "epsilon": 1.0, "clip": 10,
                                "scale": 10.0, "scale_active_accounts": 1.0}
    accepted = [run["totals"]["accepted"] for run in runs]
    accounts = [run["totals"]["active_accounts"] for run in runs]
    assert all(isinstance(n, int) and n >= 0 for n in accepted + accounts)
    assert len(set(accepted)) > 20 and sum(n != 120 for n in accepted) > 300
    assert abs(statistics.fmean(accepted) - 120) < 3  # standard error about 0.7
    assert abs(statistics.fmean(accounts) - 12) < 0.5
    # noise never reveals what suppression hides
    hidden = [publish(quiet, k=10, epsilon=1.0, clip=10, rng=rng) for _ in range(50)]
    assert {run["totals"]["accepted"] for run in hidden} == {SUPPRESSED}
    assert {run["by_region"]["us"]["accepted"] for run in hidden} == {SUPPRESSED}


def test_clipping_bounds_what_one_account_adds_to_a_noisy_figure(services, clock) -> None:
    day = _yesterday(clock.now())
    _accounts(services, "small", 11, day)
    _accounts(services, "huge", 1, day, accepted=999)  # in the same volume band
    usage = collect({"us": services.db}, day, day + DAY)
    assert publish(usage, k=10)["totals"]["accepted"] == 1109
    rng = random.Random(7)
    noisy = [publish(usage, k=10, epsilon=4.0, clip=100, rng=rng)["totals"]["accepted"]
             for _ in range(400)]
    assert abs(statistics.fmean(noisy) - (110 + 100)) < 8  # the big sender counts for 100


def test_the_platforms_own_account_is_no_customer(platform: Platform, clock) -> None:
    """The account that sends sign-up confirmations and notices (one per region) is counted
    nowhere: with it, 9 customers of `us` would look like a group of 10."""
    from mailhaven.site.mail import platform_domain

    day = _yesterday(clock.now())
    _accounts(platform.region("us"), "usacme", 9, day)
    _accounts(platform.region("eu"), "euacme", 10, day)
    for services in platform.regions.values():
        with services.db.transaction() as session:
            own = platform_domain(session, services)
            counters.count(session, own.id, [("accepted", [], {})] * 5, day + DAY / 2)

    usage = collect(_regions(platform), day, day + DAY)
    assert len({(row.region, row.account) for row in usage.rows}) == 19
    made = publish(usage, k=10)
    assert made["by_region"]["us"]["accepted"] == SUPPRESSED
    assert made["by_region"]["eu"]["accepted"] == 100
    assert made["by_region"]["eu"]["active_accounts"] == 10


def test_cli_prints_the_report_and_writes_it_to_a_file(platform: Platform,
                                                      regions_settings: Settings,
                                                      tmp_path) -> None:
    import time

    day = _yesterday(time.time())  # the CLI reads the real clock
    accounts = (_accounts(platform.region("us"), "usacme", 12, day)
                + _accounts(platform.region("eu"), "euacme", 3, day))
    env = _env(regions_settings)
    out = tmp_path / "report.json"

    done = _cli(env, "stats", "report", "--period", "day", "--periods", "3", "--json",
                "--out", str(out))

    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert json.loads(out.read_text()) == printed
    assert printed["k"] == 10 and printed["period"]["count"] == 3
    assert printed["periods"][-1]["by_region"]["us"]["accepted"] == 120
    assert printed["periods"][-1]["by_region"]["eu"]["accepted"] == SUPPRESSED
    _no_names(printed, accounts)

    table = _cli(env, "stats", "report", "--period", "day", "--periods", "3")
    assert table.returncode == 0, table.stderr
    assert re.search(r"accepted\s+│\s+supp\.\s+│\s+120\s+│\s+supp\.", table.stdout), table.stdout
    assert "suppressed" in table.stdout

    smaller = _cli({**env, "MAILHAVEN_STATS_K": "3"}, "stats", "report", "--json",
                   "--days", "3", "--epsilon", "0.5", "--clip", "20")
    assert smaller.returncode == 0, smaller.stderr
    noisy = json.loads(smaller.stdout)
    assert isinstance(noisy["periods"][0]["by_region"]["eu"]["accepted"], int)
    assert noisy["noise"]["scale"] == 40.0 and noisy["period"]["unit"] == "days"
    assert noisy["periods"][0]["days"] == 3

    exact_window = _cli(env, "stats", "report", "--days", "3")
    assert exact_window.returncode == 2 and "needs --epsilon" in exact_window.stderr
    monthly = _cli(env, "stats", "report", "--json", "--dominance", "0")
    assert monthly.returncode == 0, monthly.stderr
    assert json.loads(monthly.stdout)["period"]["unit"] == "month"
    assert json.loads(monthly.stdout)["dominance"]["p"] == 0
    ruleless = _cli(env, "stats", "report", "--dominance", "0")
    assert ruleless.returncode == 0, ruleless.stderr
    header = " ".join(ruleless.stdout.split())
    assert "dominance rule is off" in header and "p=0" not in header
    assert "dominated by one" not in header
    ruled = " ".join(_cli(env, "stats", "report").stdout.split())
    assert "dominated by one (p% rule, p=10)" in ruled
    odd = _cli(env, "stats", "report", "--period", "fortnight")
    assert odd.returncode == 2 and "day, week, month" in odd.stderr

    refused = _cli(env, "stats", "report", "--epsilon", "-1")
    assert refused.returncode == 2 and "epsilon must be a positive number" in refused.stderr
    bad_k = _cli({**env, "MAILHAVEN_STATS_K": "1"}, "stats", "report")
    assert bad_k.returncode == 2 and "MAILHAVEN_STATS_K must be at least 2" in bad_k.stderr


def _env(settings: Settings) -> dict[str, str]:
    env = {"MAILHAVEN_DATABASE_URL": settings.database_url,
           "MAILHAVEN_DATA_DIR": str(settings.data_dir),
           "MAILHAVEN_REGIONS": ",".join(settings.regions)}
    for region, url in settings.region_database_urls:
        env[f"MAILHAVEN_REGION_{region.upper()}_DATABASE_URL"] = url
    return env


def _date(day: int) -> str:
    return datetime.fromtimestamp(day, UTC).date().isoformat()
