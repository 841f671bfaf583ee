"""Patterns customers write (a template's `ifMatchesRegexStr`, a route's filters) run in
Python's backtracking engine: those that could backtrack exponentially are refused before
they are stored or run. (RE2, which Mailgun's template engine uses, never backtracks and has
no back-references; a route's patterns are also bounded in time where they run.)"""

from __future__ import annotations

import importlib
from typing import Any

# The tree re itself parses a pattern into, to judge the pattern by (modules without stubs).
sre: Any = importlib.import_module("re._constants")
sre_parser: Any = importlib.import_module("re._parser")
_REPEATS = (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT)
BACKTRACKING = ("a repeat within a repeat, alternatives repeated, or a back-reference "
                "(these can backtrack without end)")


def backtracks(source: str) -> bool:
    """Whether `source` has a repeat holding another repeat or alternatives (`(a+)+`,
    `(a|ab)*`: the ways to split a text between them multiply), or a back-reference.
    Raises re.error (or RecursionError, OverflowError) when it is no pattern at all."""
    return _backtracks(sre_parser.parse(source))


def _backtracks(parsed: Any) -> bool:
    stack: list[tuple[Any, bool]] = [(parsed, False)]
    while stack:
        items, repeated = stack.pop()
        for op, av in items:
            if op in (sre.GROUPREF, sre.GROUPREF_EXISTS):
                return True
            if op in _REPEATS or op is sre.BRANCH:
                if repeated:
                    return True
                if op is sre.BRANCH:
                    stack.extend((branch, False) for branch in av[1])
                else:
                    stack.append((av[2], av[1] > 1))
            elif op is sre.SUBPATTERN:
                stack.append((av[3], repeated))
            elif op in (sre.ASSERT, sre.ASSERT_NOT):
                stack.append((av[1], repeated))
            elif op is sre.ATOMIC_GROUP:
                stack.append((av, repeated))
    return False
