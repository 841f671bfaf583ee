"""Shaping rules as configured (MAILHAVEN_SHAPING, MAILHAVEN_SHAPING_FILE): how many sessions
and messages a minute the MX hosts matching a pattern get. Read by `config`; applied by
`delivery.shaping`."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

SETTINGS = ("connections", "per_minute")


@dataclass(frozen=True)
class Rule:
    mx: str  # a glob on the MX host name (or the relay host), "*.google.com"
    connections: int
    per_minute: int | None = None
# As many sessions as the transport opened per host before shaping existed; below Postfix's
# 20 because limits are per worker process, and several workers multiply them.
DEFAULT_RULE = Rule("*", connections=10)


class ShapingConfigError(ValueError):
    """MAILHAVEN_SHAPING or MAILHAVEN_SHAPING_FILE can't be used as it is."""
# -- rules ------------------------------------------------------------------------------
def parse_rules(inline: str = "", path: str | Path | None = None) -> tuple[Rule, ...]:
    """The rules of MAILHAVEN_SHAPING, then those of the TOML file, then the default."""
    rules = [*_inline_rules(inline), *(_file_rules(Path(path)) if path else [])]
    if not any(r.mx == "*" for r in rules):
        rules.append(DEFAULT_RULE)
    return tuple(rules)


def rule_for(rules: Iterable[Rule], host: str) -> Rule:
    """The first rule whose pattern matches `host`."""
    host = host.lower().rstrip(".")
    return next((r for r in rules if fnmatchcase(host, r.mx)), DEFAULT_RULE)


def _inline_rules(text: str) -> Iterator[Rule]:
    """`*.google.com connections=10 per_minute=600; * connections=10`"""
    for number, item in enumerate(filter(None, (i.strip() for i in text.split(";"))), 1):
        where = f'MAILHAVEN_SHAPING, rule {number} ("{item}")'
        mx, *pairs = item.split()
        values: dict[str, object] = {}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep:
                raise ShapingConfigError(f"{where}: expected setting=number, got {pair!r}")
            try:
                values[key] = int(value)
            except ValueError:
                raise ShapingConfigError(f"{where}: {key} must be a whole number, "
                                         f"got {value!r}") from None
        yield _rule(where, mx, values)


def _file_rules(path: Path) -> Iterator[Rule]:
    """`[[rule]]` tables, each with `mx` and `connections` and/or `per_minute`."""
    where = f"MAILHAVEN_SHAPING_FILE {path}"
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ShapingConfigError(f"{where}: cannot be read: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ShapingConfigError(f"{where}: not valid TOML: {exc}") from exc
    unknown = set(document) - {"rule"}
    tables = document.get("rule", [])
    if unknown or not isinstance(tables, list):
        raise ShapingConfigError(f"{where}: expected only [[rule]] tables, found "
                                 f"{', '.join(sorted(unknown)) or 'rule = …'}")
    for number, table in enumerate(tables, 1):
        if not isinstance(table, dict):
            raise ShapingConfigError(f"{where}, rule {number}: expected a [[rule]] table")
        values = dict(table)
        mx = values.pop("mx", None)
        if not isinstance(mx, str):
            raise ShapingConfigError(f"{where}, rule {number}: needs mx = \"pattern\"")
        yield _rule(f"{where}, rule {number} ({mx})", mx, values)


def _rule(where: str, mx: str, values: dict[str, object]) -> Rule:
    if not mx.strip() or any(c.isspace() for c in mx):
        raise ShapingConfigError(f"{where}: the MX pattern must be one word, like *.google.com")
    unknown = set(values) - set(SETTINGS)
    if unknown:
        raise ShapingConfigError(f"{where}: unknown setting {', '.join(sorted(unknown))} "
                                 f"(expected {' and/or '.join(SETTINGS)})")
    if not values:
        raise ShapingConfigError(f"{where}: give {' and/or '.join(SETTINGS)}")
    for key, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ShapingConfigError(f"{where}: {key} must be a whole number of at least 1, "
                                     f"got {value!r}")
    connections = values.get("connections", DEFAULT_RULE.connections)
    per_minute = values.get("per_minute")
    assert isinstance(connections, int) and (per_minute is None or isinstance(per_minute, int))
    return Rule(mx.lower().rstrip("."), connections, per_minute)
