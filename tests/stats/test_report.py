"""`stats.report` and `mailhaven stats report` (SPEC N15): platform-wide figures from the
counters, published only for groups of at least k accounts, optionally with Laplace noise;
nothing in them names an account, a domain or an address."""

from __future__ import annotations

import json
import random
import re
import statistics

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
    """No suppressed figure is the published total less published cells, and a withheld
    total is not the sum of a partition published whole."""
    for measure in MEASURES:
        total = made["totals"][measure]
        for partition in PARTITIONS:
            values = [cells[measure] for cells in made[partition].values()]
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

    made = report(_regions(platform), clock.now(), days=7, k=10)

    assert made["k"] == 10 and made["noise"] is None and made["regions"] == ["us", "eu"]
    assert made["period"]["days"] == 7 and len(made["by_day"]) == 7
    us, eu = made["by_region"]["us"], made["by_region"]["eu"]
    assert (us["accepted"], us["delivered"], us["failed"], us["active_accounts"]) == (
        120, 108, 12, 12)
    assert us["opened"] == 0  # no account opened anything: an empty group is about no one
    for measure in ("accepted", "delivered", "failed", "active_accounts"):
        assert eu[measure] == SUPPRESSED
        # the total (us + eu) would give eu; the day and the band that hold all 15 would too
        assert made["totals"][measure] == SUPPRESSED
        assert made["by_day"][_date(day)][measure] == SUPPRESSED
        assert made["by_volume"]["1-999"][measure] == SUPPRESSED
    assert made["by_day"][_date(day - DAY)]["accepted"] == 0
    _nothing_computable(made)
    _no_names(made, accounts)

    smaller = report(_regions(platform), clock.now(), days=7, k=3)
    assert smaller["by_region"]["eu"]["accepted"] == 30
    assert smaller["totals"]["accepted"] == 150
    assert smaller["by_day"][_date(day)]["active_accounts"] == 15


def test_a_total_is_published_when_the_suppressed_days_hold_k_accounts(
        services: Services, clock) -> None:
    """Days of 12, 3, 3 and 4 accounts: the three small days are suppressed, and together
    they hold 10 accounts, so the total may be published (total less day one is their sum,
    a group of 10)."""
    today = _yesterday(clock.now()) + DAY
    days = [today - DAY * n for n in (1, 2, 3, 4)]
    accounts = [account for n, day in zip((12, 3, 3, 4), days, strict=True)
                for account in _accounts(services, f"d{day // DAY % 1000}x", n, day)]

    made = report({"us": services.db}, clock.now(), days=7, k=10)

    assert made["totals"]["accepted"] == 220 and made["totals"]["active_accounts"] == 22
    assert made["by_day"][_date(days[0])]["accepted"] == 120
    assert [made["by_day"][_date(day)]["accepted"] for day in days[1:]] == [SUPPRESSED] * 3
    assert made["by_region"]["us"]["accepted"] == 220
    assert made["by_volume"]["1-999"]["accepted"] == 220
    _nothing_computable(made)
    _no_names(made, accounts)


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
    usage = collect({"us": services.db}, clock.now(), days=7)
    exact = publish(usage, k=10)
    assert exact["by_day"][_date(day)]["accepted"] == 120
    assert exact["by_day"][_date(day - DAY)]["accepted"] == SUPPRESSED

    rng = random.Random(15)
    runs = [publish(usage, k=10, epsilon=1.0, clip=10, rng=rng) for _ in range(400)]

    assert runs[0]["noise"] == {"mechanism": "laplace", "epsilon": 1.0, "clip": 10,
                                "scale": 10.0, "scale_active_accounts": 1.0}
    accepted = [run["by_day"][_date(day)]["accepted"] for run in runs]
    accounts = [run["by_day"][_date(day)]["active_accounts"] for run in runs]
    assert all(isinstance(n, int) and n >= 0 for n in accepted + accounts)
    assert len(set(accepted)) > 20 and sum(n != 120 for n in accepted) > 300
    assert abs(statistics.fmean(accepted) - 120) < 3  # standard error about 0.7
    assert abs(statistics.fmean(accounts) - 12) < 0.5
    # noise never reveals what suppression hides
    assert {run["by_day"][_date(day - DAY)]["accepted"] for run in runs} == {SUPPRESSED}
    assert {run["totals"]["accepted"] for run in runs} == {SUPPRESSED}


def test_clipping_bounds_what_one_account_adds_to_a_noisy_figure(services, clock) -> None:
    day = _yesterday(clock.now())
    _accounts(services, "small", 11, day)
    _accounts(services, "huge", 1, day, accepted=999)  # in the same volume band
    usage = collect({"us": services.db}, clock.now(), days=7)
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

    usage = collect(_regions(platform), clock.now(), days=1)
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

    done = _cli(env, "stats", "report", "--days", "3", "--json", "--out", str(out))

    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert json.loads(out.read_text()) == printed
    assert printed["k"] == 10 and printed["period"]["days"] == 3
    assert printed["by_region"]["us"]["accepted"] == 120
    assert printed["by_region"]["eu"]["accepted"] == SUPPRESSED
    _no_names(printed, accounts)

    table = _cli(env, "stats", "report", "--days", "3")
    assert table.returncode == 0, table.stderr
    assert re.search(r"accepted\s+│\s+supp\.\s+│\s+120\s+│\s+supp\.", table.stdout), table.stdout
    assert "suppressed" in table.stdout

    smaller = _cli({**env, "MAILHAVEN_STATS_K": "3"}, "stats", "report", "--json",
                   "--epsilon", "0.5", "--clip", "20")
    assert smaller.returncode == 0, smaller.stderr
    assert isinstance(json.loads(smaller.stdout)["by_region"]["eu"]["accepted"], int)
    assert json.loads(smaller.stdout)["noise"]["scale"] == 40.0

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
    from datetime import UTC, datetime

    return datetime.fromtimestamp(day, UTC).date().isoformat()
