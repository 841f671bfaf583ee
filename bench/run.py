"""`make bench`: every benchmark, on SQLite and on PostgreSQL, then docs/BENCHMARKS.md.

Each script runs as its own process (as a user would run it, the command is printed and
written down), shows its progress, prints its figures and hands them over through
`common.record` (a JSON file in a directory named by MAILHAVEN_BENCH_RESULTS). When all
have run, this writes docs/BENCHMARKS.md: the machine, the table of figures against their
references and goals, the exact commands, each script's method (its docstring) and its
printed summary. A script that fails is reported in the document and makes `make bench`
fail, after the others have run.

Issue 17 sets the goals. After the table, "Goals not met" lists each unmet goal with its
shortfall and the explanation kept in `bench/misses.py` (what the profile shows, what would
close it), found by `figure_key`; an unmet goal without one is written as "not explained
yet" and, like a failed script, makes this exit non-zero once the document is written.
The sections of the document this does not write (hand-written: measurements made outside
`make bench`, profiles) are kept when it rewrites it, each after the same section as before.

    .venv/bin/python bench/run.py                      # everything, ~15 minutes
    .venv/bin/python bench/run.py --only ingest,latency --backends sqlite
"""

from __future__ import annotations

import argparse
import ast
import datetime
import json
import os
import platform
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from common import RESULTS_ENV
from misses import MISSES

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DOCUMENT = ROOT / "docs" / "BENCHMARKS.md"
POSTGRES = os.environ.get("MAILHAVEN_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@dataclass(frozen=True)
class Script:
    name: str  # bench/{name}.py
    args: tuple[str, ...] = ()  # the sizes `make bench` uses (each script's own defaults
    # are for running it by hand)


# In this order: the cheap figures first, so that a failure late still leaves most of them.
SCRIPTS = (
    Script("ingest"),
    Script("latency", ("--seconds", "20")),
    # issue 17's yardstick: the drain against Postfix's drain with OpenDKIM, end to end
    # (HTTP API, SMTP submission) against Postfix + OpenDKIM end to end; the old intake-
    # and-relay reference is informational. 2,000 messages (issue 5 named 10,000 for the
    # drain alone): the end-to-end phases run at ~100/s here, and `make bench` stays under
    # ~20 minutes. Also `mailhaven serve`'s peak memory in that run.
    Script("postfix", ("--messages", "2000", "--rounds", "1", "--warmup", "20",
                       "--phases", "mailhaven-2,postfix-drain,postfix,mailhaven-http,"
                                   "mailhaven-smtp,source")),
    Script("smtp_intake", ("--messages", "2000", "--rounds", "3")),
    # the MX: ~1 minute a database (forwarding runs at a few dozen messages/s)
    Script("inbound", ("--messages", "500", "--rounds", "3")),
    Script("events"),
    # the small and the large table 5x apart (the script's own default is 10x: 2M events)
    Script("erasure", ("--large", "1000000")),
)


@dataclass
class Run:
    script: Script
    backend: str
    command: list[str]
    seconds: float = 0.0
    returncode: int | None = None
    result: dict | None = None

    @property
    def shown(self) -> str:
        return " ".join([".venv/bin/python", *self.command[1:]])


def postgres_reachable(url: str) -> str | None:
    """None when we can create databases there; else why not."""
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=3) as conn:
            return None if conn.execute("SELECT 1").fetchone() else "no answer"
    except Exception as exc:
        return str(exc).splitlines()[0]


def run_one(script: Script, backend: str, results: Path) -> Run:
    command = [sys.executable, str(Path("bench") / f"{script.name}.py"), *script.args]
    if backend == "postgresql":
        command += ["--database-url", POSTGRES]
    run = Run(script, backend, command)
    print(f"\n=== {script.name} on {backend}: {run.shown}", flush=True)
    started = time.monotonic()
    proc = subprocess.run(command, cwd=ROOT, env=os.environ | {RESULTS_ENV: str(results)},
                          check=False)
    run.seconds, run.returncode = time.monotonic() - started, proc.returncode
    path = results / f"{script.name}-{backend}.json"
    if proc.returncode == 0 and path.exists():
        run.result = json.loads(path.read_text())
    print(f"=== {script.name} on {backend}: exit {proc.returncode} after {run.seconds:.0f} s",
          flush=True)
    return run


# -- the document -----------------------------------------------------------------------
def command_output(*command: str) -> str:
    try:
        out = subprocess.run(command, capture_output=True, text=True, check=False, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) \
        else "not found"


def load_average() -> str:
    """1, 5 and 15 minute load: other work on the machine shows here."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine_facts(postgres_error: str | None) -> list[tuple[str, str]]:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor() or "unknown")
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    if postgres_error is None:
        import psycopg

        with psycopg.connect(POSTGRES) as conn:
            pg = str(conn.execute("SHOW server_version").fetchone()[0])
    else:
        pg = f"not reachable ({postgres_error})"
    postconf = shutil.which("postconf") or "/usr/sbin/postconf"
    commit = command_output("git", "-C", str(ROOT), "describe", "--always", "--dirty")
    return [
        ("date", datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")),
        ("commit", commit),
        ("CPU", f"{cpu}, {os.cpu_count()} cores"),
        ("memory", f"{mem_kb / 1024 / 1024:.1f} GiB"),
        ("kernel", platform.release()),
        ("Python", platform.python_version()),
        ("SQLite", sqlite3.sqlite_version + " (WAL, synchronous=NORMAL)"),
        ("PostgreSQL", pg + " on this machine, over TCP to 127.0.0.1"),
        ("Postfix", command_output(postconf, "-d", "-h", "mail_version")),
    ]


def number(value: float | None, unit: str = "") -> str:
    if value is None:
        return ""
    text = f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"
    return f"{text} {unit}".strip()


def verdict(met: bool | None) -> str:
    return {True: "**met**", False: "**not met**", None: "reported"}[met]


def docstring(name: str) -> str:
    tree = ast.parse((HERE / f"{name}.py").read_text())
    return ast.get_docstring(tree) or ""


# -- goals not met -----------------------------------------------------------------------
# A number standing alone (not the 50 of "p50" or the 3 of "v3"): sizes, rates, counts.
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*(?![\w])")
_GOAL = re.compile(r"^\s*(>=|<=|<|>)\s*(\d+(?:[.,]\d+)*)\s*(\S*)\s*$")


def figure_key(script: str, figure: str) -> str:
    """The key of a figure in bench/misses.py: the script and the figure's text with each
    number as N, so that it stays the same across sizes, rates and runs, e.g.
    "latency: accepted -> delivered at half the peak rate (N/s), p50"."""
    return f"{script}: {_NUMBER.sub('N', figure)}"


def shortfall(figure: dict) -> str:
    """How far a figure is from its goal, e.g. "0.41 of >= 0.6: 32% short" or
    "111 ms for < 100 ms: 11% over". A goal with a unit other than x is about the value;
    a bare or "x" goal about the ratio, when the figure has one."""
    goal = _GOAL.match(figure["goal"])
    if goal is None:
        return f"{number(figure['value'], figure['unit'])} for {figure['goal']}"
    op, target, unit = goal.group(1), float(goal.group(2).replace(",", "")), goal.group(3)
    by_ratio = unit in ("", "x") and figure["ratio"] is not None
    measured = figure["ratio"] if by_ratio else figure["value"]
    shown = f"{number(measured)}{unit}" if unit in ("", "x") else number(measured, unit)
    if target == 0 or measured is None:
        return f"{shown} for {figure['goal']}"
    if op in (">=", ">"):
        return f"{shown} of {figure['goal']}: {max(0.0, 1 - measured / target):.0%} short"
    over = measured / target - 1
    how = f"{over:.0%} over" if over < 1 else f"{measured / target:.2g}x the goal"
    return f"{shown} for {figure['goal']}: {how}"


@dataclass
class Miss:
    key: str
    rows: list[str]  # "sqlite: 0.411 of >= 0.6: 32% short", one per database


def misses(runs: list[Run]) -> list[Miss]:
    """The unmet goals of the table, grouped by figure key, in the table's order."""
    found: dict[str, Miss] = {}
    for run in runs:
        for f in (run.result or {"figures": []})["figures"]:
            if f["goal"] and f["met"] is False:
                key = figure_key(run.script.name, f["figure"])
                found.setdefault(key, Miss(key, [])).rows.append(
                    f"{run.backend}: {shortfall(f)}")
    return list(found.values())


def unexplained(found: list[Miss]) -> list[str]:
    return [m.key for m in found if m.key not in MISSES]


def render_misses(runs: list[Run]) -> list[str]:
    out = ["## Goals not met", ""]
    found = misses(runs)
    failed = [r for r in runs if r.result is None]
    if not found and not failed:
        return [*out, "Every goal in the table is met.", ""]
    out += ["Each goal of the table that this run missed, by how much, with what the profile "
            "shows and what would close it. The explanations are kept by hand in "
            "`bench/misses.py`, under the script and the figure's text with its numbers as N; "
            "revise them when the figures move.", ""]
    out += [f"- `bench/{r.script.name}.py` on {r.backend} failed (exit {r.returncode}): its "
            "goals were not measured." for r in failed]
    if failed:
        out.append("")
    for miss in found:
        out += [f"### {miss.key}", ""]
        out += [f"- {row}" for row in miss.rows]
        explanation = MISSES.get(miss.key)
        if explanation is None:
            out += ["", "**Not explained yet**: add this key to `bench/misses.py` with what "
                    "the profile shows and what would close it.", ""]
            continue
        out += ["", f"**What the profile shows.** {explanation['profile']}", "",
                f"**What would close it.** {explanation['would_close']}", ""]
    return out


# -- hand-written sections, kept ---------------------------------------------------------
# The headings of the sections `render` writes; every other `## ` section is hand-written.
_GENERATED = re.compile(r"## (The machine|Figures|Goals not met|The commands|`bench/\w+\.py`)")


def sections(text: str) -> list[tuple[str, str]]:
    """(heading, text) of each `## ` section of a Markdown document, in order, headings in
    fenced code blocks not counted; the text before the first has the heading ""."""
    found: list[tuple[str, list[str]]] = [("", [])]
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith("## "):
            found.append((line.rstrip(), []))
        found[-1][1].append(line)
    return [(heading, "\n".join(lines).rstrip() + "\n") for heading, lines in found]


def kept_sections(text: str) -> list[tuple[str, str]]:
    """The hand-written sections of the document as it is: (the heading of the generated
    section it followed, or "" at the top; its text)."""
    kept, after = [], ""
    for heading, body in sections(text):
        if heading == "":
            continue
        if _GENERATED.fullmatch(heading):
            # what followed the table follows the goals not met, which come right after it
            after = "## Goals not met" if heading == "## Figures" else heading
        else:
            kept.append((after, body))
    return kept


def with_kept(generated: str, kept: list[tuple[str, str]]) -> str:
    """The generated document with the kept sections put back after the section each
    followed; those whose section is gone (a partial run) at the end, in their order."""
    parts = sections(generated)
    present = {heading for heading, _ in parts}
    out = []
    for heading, body in parts:
        out.append(body)
        out += [k for after, k in kept if after == heading]
    out += [k for after, k in kept if after not in present]
    return "\n\n".join(part.rstrip() for part in out).rstrip() + "\n"


def render(runs: list[Run], facts: list[tuple[str, str]], total: float,
           postgres_error: str | None) -> str:
    out = ["# Benchmarks", "",
           "Written by `make bench` (`bench/run.py`); do not edit by hand: run it again. Each "
           "figure is measured against its reference **in the same run on the same machine**, "
           "because this 2-core machine is shared and noisy: read the ratios, not the bare "
           "numbers. Issue 17 sets the goals (issue 5 set the first ones); the goals this run "
           "missed are listed after the table, with their explanations.", "",
           "## The machine", "", "| | |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in facts]
    out += ["", f"The whole run took {total / 60:.1f} minutes.", ""]
    if postgres_error:
        out += [f"PostgreSQL was not reachable ({postgres_error}): its figures are missing.", ""]
    out += ["## Figures", "",
            "| figure | database | value | reference (same run) | ratio | goal | |",
            "|---|---|---|---|---|---|---|"]
    for run in runs:
        if run.result is None:
            out.append(f"| bench/{run.script.name}.py | {run.backend} | failed (exit "
                       f"{run.returncode}) | | | | |")
            continue
        for f in run.result["figures"]:
            reference = (f"{f['reference']}: {number(f['reference_value'])}"
                         if f["reference"] else "")
            out.append(f"| {f['figure']} | {run.backend} | {number(f['value'], f['unit'])} | "
                       f"{reference} | {number(f['ratio'])} | {f['goal']} | "
                       f"{verdict(f['met']) if f['goal'] else 'reported'} |")
    out += ["", *render_misses(runs)]
    out += ["## The commands", "",
            "From the repository root, after `make` has built `.venv` (`make bench` does both, "
            "and installs Postfix and OpenDKIM from Debian's packages when missing):", "", "```sh"]
    out += [f"{run.shown}   # {run.seconds:.0f} s" for run in runs]
    out += ["```", ""]
    for name in dict.fromkeys(run.script.name for run in runs):
        out += [f"## `bench/{name}.py`", "", docstring(name), ""]
        for run in (r for r in runs if r.script.name == name):
            summary = run.result["summary"] if run.result else f"failed: exit {run.returncode}"
            out += [f"Printed on {run.backend}:", "", "```", summary, "```", ""]
    return "\n".join(out).rstrip() + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    names = [s.name for s in SCRIPTS]
    parser.add_argument("--only", default=",".join(names), help="comma-separated scripts")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--output", type=Path, default=DOCUMENT)
    args = parser.parse_args()
    chosen = [s for s in SCRIPTS if s.name in args.only.split(",")]
    backends = [b for b in ("sqlite", "postgresql") if b in args.backends.split(",")]
    postgres_error = postgres_reachable(POSTGRES) if "postgresql" in backends else None
    if postgres_error:
        print(f"PostgreSQL at {POSTGRES} is not reachable, its runs are skipped: "
              f"{postgres_error}", flush=True)
        backends.remove("postgresql")
    started, load_at_start = time.monotonic(), load_average()
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="mailhaven-bench-results-") as results:
        for script in chosen:
            for backend in backends:
                runs.append(run_one(script, backend, Path(results)))
    total = time.monotonic() - started
    facts = machine_facts(postgres_error)
    facts += [("load average at the start", load_at_start),
              ("load average at the end", load_average())]
    kept = kept_sections(args.output.read_text()) if args.output.exists() else []
    args.output.write_text(with_kept(render(runs, facts, total, postgres_error), kept))
    print(f"\nwrote {args.output} ({total / 60:.1f} minutes; {len(kept)} hand-written "
          f"sections kept)")
    problems = [f"failed: {r.script.name} on {r.backend}" for r in runs if r.result is None]
    problems += [f"goal not met and not explained yet in bench/misses.py: {key}"
                 for key in unexplained(misses(runs))]
    if problems:
        raise SystemExit("\n".join(problems))


if __name__ == "__main__":
    main()
