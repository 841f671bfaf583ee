"""`mailhaven stats report`: anonymous platform-wide figures (SPEC N15)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mailhaven.cli import common

app = typer.Typer(help="Platform-wide statistics, published only in aggregate.",
                  no_args_is_help=True)


@app.command("report")
def report(
    k: Annotated[int | None, typer.Option(
        "--k", min=2, help="Smallest group of accounts a figure may describe "
        "(MAILHAVEN_STATS_K, default 10).")] = None,
    dominance: Annotated[float, typer.Option(
        "--dominance", min=0, max=100,
        help="The p% rule: a figure is suppressed when, less its two largest parts, it is "
        "under P% of the largest (0: no dominance rule).")] = 10,
    epsilon: Annotated[float | None, typer.Option(
        "--epsilon",
        help="Add Laplace noise of scale clip/epsilon to every published figure.")] = None,
    clip: Annotated[int, typer.Option(
        "--clip", min=1, help="With --epsilon: the most one account adds to one figure.")]
    = 1000,
    unit: Annotated[str, typer.Option(
        "--period", help="Exact figures per calendar period (UTC): day, week (ISO, Monday "
        "to Sunday) or month.")] = "month",
    count: Annotated[int, typer.Option(
        "--periods", min=1, max=3660,
        help="How many periods, back from the last complete one.")] = 1,
    days: Annotated[int | None, typer.Option(
        "--days", min=1, max=3660,
        help="Instead, one window of the last D whole days (UTC); only with --epsilon.")]
    = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Also write the report to FILE as JSON.")] = None,
    as_json: common.JsonOpt = False,
) -> None:
    """Usage figures of every open region, from the counters alone, per calendar period:
    in all, per region and per volume band; a group of fewer than k accounts, or one that
    one account dominates, is shown as suppressed."""
    from mailhaven.stats.report import report as build

    services = common.services()
    try:
        regions = {name: region.db for name, region in services.platform.regions.items()}
        with common.refusals():
            try:
                made = build(regions, services.clock.now(), unit=unit, count=count,
                             days=days, k=k or services.settings.stats_k,
                             dominance=dominance, epsilon=epsilon, clip=clip)
            except ValueError as refused:
                common.fail(str(refused))
    finally:
        services.close()
    if out is not None:
        try:
            out.write_text(json.dumps(made, indent=2) + "\n")
        except OSError as exc:
            common.fail(f"cannot write {out}: {exc.strerror}")
    if as_json:
        common.print_json(made)
        return
    noise = made["noise"]
    p = made["dominance"]["p"]
    # p=0 turns the p% rule off: the header must not claim it suppresses anything
    rule = (f"or dominated by one (p% rule, p={p:g}), suppressed" if p
            else "suppressed (the p% dominance rule is off: --dominance 0)")
    common.console.print(
        f"{made['period']['count']} × {made['period']['unit']}, {made['period']['from']} to "
        f"{made['period']['to']}, regions "
        f"{', '.join(made['regions'])}; groups of fewer than {made['k']} accounts {rule}; "
        + (f"Laplace noise, epsilon {noise['epsilon']}, clip {noise['clip']} (every figure "
           "is noisy, those no account contributes to too)" if noise
           else "exact figures"), markup=False, highlight=False)
    _tables(made)
    common.console.print("supp. = suppressed: a group of fewer than k accounts"
                         + (" or dominated by one" if p else "")
                         + ", or withheld so that such a group cannot be computed from the "
                         "others", style="dim")
    if out is not None:
        common.err.print(f"written to {out}", style="dim", markup=False, highlight=False)


def _tables(made: dict) -> None:
    """Fit for 80 columns: per period, regions and bands across, measures down."""
    from rich.table import Column

    from mailhaven.stats.report import MEASURES

    for figures in made["periods"]:
        across = ((f"{figures['period']}", {"all": figures["totals"], **figures["by_region"]}),
                  ("accepted in period:", figures["by_volume"]))
        for title, columns in across:
            shown = common.table(Column(title, no_wrap=True),
                                 *(Column(name, justify="right") for name in columns))
            for measure in MEASURES:
                shown.add_row(measure, *(_cell(cells[measure]) for cells in columns.values()))
            common.console.print(shown)


def _cell(value: int | str) -> str:
    return "[dim]supp.[/dim]" if isinstance(value, str) else f"{value:,}"
