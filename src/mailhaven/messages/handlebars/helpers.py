"""The helpers Mailgun's engine registers, and nothing else: Handlebars' `if`, `unless`,
`each`, `with`, `lookup`, `log`, and Mailgun's own `equal`, `ifEq`, `ifGt`, `ifLt`,
`ifMatchesRegexStr`, `pluralize` (the `length` of a list, object or string is a path:
`items.length`). Behaviour as in mailgun/raymond's helper.go: `equal` compares as text and
has no `{{else}}`; `ifEq`/`ifGt`/`ifLt` compare as numbers, and take the `{{else}}` when
either side is not one; `lookup` gives text."""

from __future__ import annotations

import functools
import re
from typing import Any

from mailhaven.messages.handlebars.evaluate import Helper, Options, text_of, truthy, walk
from mailhaven.messages.handlebars.syntax import TemplateError
from mailhaven.messages.regexes import backtracks

# A number as Go's strconv.ParseFloat reads it (decimal; inf, infinity and nan in any case).
# Linear: no two quantifiers can share a run of digits between them.
_GO_NUMBER = re.compile(r"[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan)",
                        re.IGNORECASE)
MAX_PATTERN = 1000  # characters of an ifMatchesRegexStr pattern
MAX_SUBJECT = 10_000  # characters of the text it is matched against
BACKTRACKS = ("ifMatchesRegexStr refuses a pattern that can backtrack without end: a repeat "
              "within a repeat, alternatives repeated, a back-reference")
SUBJECT_TOO_LONG = f"ifMatchesRegexStr matches text of at most {MAX_SUBJECT} characters"


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and _GO_NUMBER.fullmatch(value):
        return float(value)
    return None


def _is_zero(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0


def _if(o: Options) -> str:
    condition = o.arg(0)
    if truthy(condition) or (o.hash.get("includeZero") is True and _is_zero(condition)):
        return o.fn()
    return o.inverse()


def _unless(o: Options) -> str:
    condition = o.arg(0)
    if truthy(condition) or (o.hash.get("includeZero") is True and _is_zero(condition)):
        return o.inverse()
    return o.fn()


def _with(o: Options) -> str:
    context = o.arg(0)
    return o.fn(context, params=(context,)) if truthy(context) else o.inverse()


def _each(o: Options) -> str:
    items = o.arg(0)
    if not truthy(items):
        return o.inverse()
    rounds = []
    if isinstance(items, list):
        for index, item in enumerate(items):
            o.renderer.tick()
            rounds.append(o.fn(item, params=(item, index), data={
                "index": index, "key": None, "first": index == 0,
                "last": index == len(items) - 1}))
    elif isinstance(items, dict):
        for index, (key, item) in enumerate(items.items()):
            o.renderer.tick()
            rounds.append(o.fn(item, params=(item, key), data={
                "index": index, "key": key, "first": index == 0,
                "last": index == len(items) - 1}))
    return "".join(rounds)  # anything else truthy (a string, a number) renders nothing


def _lookup(o: Options) -> str:
    return text_of(walk(o.arg(0), [text_of(o.arg(1))]))


def _log(_o: Options) -> str:
    return ""  # Mailgun logs it on its side; ours would be the customer's content


def _equal(o: Options) -> str:
    return o.fn() if text_of(o.arg(0)) == text_of(o.arg(1)) else ""


def _comparing(test: str) -> Helper:
    def compare(o: Options) -> str:
        a, b = _number(o.arg(0)), _number(o.arg(1))
        if a is None or b is None:
            return o.inverse()
        holds = a == b if test == "eq" else a > b if test == "gt" else a < b
        return o.fn() if holds else o.inverse()
    return compare


@functools.lru_cache(maxsize=64)
def _pattern(source: str) -> re.Pattern[str] | None:
    """The pattern compiled; None when it is broken; TemplateError when Python's engine could
    backtrack on it exponentially (Mailgun's, RE2, never backtracks; it has no
    back-references either)."""
    try:
        if backtracks(source):
            raise TemplateError(BACKTRACKS)
        return re.compile(source)
    except (re.error, RecursionError, OverflowError):
        return None


def _matches(o: Options) -> str:
    source = text_of(o.arg(0))
    pattern = _pattern(source) if len(source) <= MAX_PATTERN else None
    if pattern is None:
        return o.inverse()
    subject = text_of(o.arg(1))
    if len(subject) > MAX_SUBJECT:
        raise TemplateError(SUBJECT_TOO_LONG)
    return o.fn() if pattern.search(subject) else o.inverse()


def _pluralize(o: Options) -> Any:
    count = _number(o.arg(0))
    return o.arg(2) if count is None or count <= 1 else o.arg(1)


HELPERS: dict[str, Helper] = {
    "if": _if, "unless": _unless, "with": _with, "each": _each, "lookup": _lookup,
    "log": _log, "equal": _equal, "ifEq": _comparing("eq"), "ifGt": _comparing("gt"),
    "ifLt": _comparing("lt"), "ifMatchesRegexStr": _matches, "pluralize": _pluralize,
}
# How many arguments each takes (raymond refuses another number): checked when a template is
# read, so a wrong call is a 400 when the template is stored, not a failed delivery.
ARITY = {"if": 1, "unless": 1, "with": 1, "each": 1, "lookup": 2, "log": 1, "equal": 2,
         "ifEq": 2, "ifGt": 2, "ifLt": 2, "ifMatchesRegexStr": 2, "pluralize": 3}
