"""Mailgun's route language, read by a small parser (never eval): the filter expression
(`match_recipient("re")`, `match_header("name", "re")`, joined by `and`; or `catch_all()`,
also written `catchall()`) and the actions (`forward("dest, …")`, `store()`,
`store(notify="url")`, `stop()`).

Patterns are Python regular expressions, matched as `re.match` does (from the start of the
text, not necessarily to its end: Mailgun's own examples write `.*@bar.com` and
`.*support`) and without regard to case (addresses and header words arrive in any case).
They are checked when a route is stored: at most MAX_EXPRESSION characters, a pattern Python
compiles, no repeat within a repeat, repeated alternatives or back-references (they can
backtrack without end). What remains can still be slow (`.*a.*a.*a…` backtracks
polynomially), so where they run they run in the `regex` engine (re's syntax and semantics,
its VERSION0) with a time limit per match: a pattern that exceeds MATCH_SECONDS, or text
longer than MAX_SUBJECT, counts as no match.

Captures of the filters (numbered across them in order, as if their patterns were one, and
named) are usable in actions as `\\1` or `\\g<name>`; never in a URL's scheme, host or port,
nor in an address's domain (after its '@'; its local part may take one, as Mailgun's own
example forwards by it), so a message cannot choose where its route sends it."""

from __future__ import annotations

import functools
import re
import time
from dataclasses import dataclass
from email.header import decode_header, make_header
from urllib.parse import quote, urlsplit

import regex

from mailhaven.addresses import mailboxes
from mailhaven.messages.regexes import BACKTRACKING, backtracks
from mailhaven.webhooks.service import url_problem

MAX_EXPRESSION = 4096  # characters of an expression, and of one action (Mailgun's 4k)
MAX_FILTERS = 16  # filters joined by `and`
MAX_DESTINATIONS = 16  # of one forward()
MAX_SUBJECT = 16 * 1024  # characters of a recipient or header value a pattern is run on
MATCH_SECONDS = 0.1  # one pattern against one value

# A capture in an action: \g<name>, \g<3>, or \3 (one or two digits).
_CAPTURE = re.compile(r"\\g<([^<>]*)>|\\(\d{1,2})")
_HEADER_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 field name: printable ASCII but ':'


class RouteError(ValueError):
    """Why an expression or an action can't be stored, said for the customer."""


@dataclass(frozen=True)
class RouteAction:
    """One action a matching route asks for, its captures substituted (what `dispatch`
    executes)."""

    route_id: str
    kind: str  # "forward" | "store"   (stop() is applied by evaluation, never returned)
    target: str | None  # forward: an http(s) URL or an email address; store: None
    notify: str | None = None  # store(notify="…"): the URL; else None


@dataclass(frozen=True)
class Filter:
    header: str | None  # None: the recipient; else a header's name, lower-cased
    pattern: regex.Pattern[str]
    groups: int  # numbered groups of this pattern


@dataclass(frozen=True)
class Expression:
    filters: tuple[Filter, ...]  # all must match; empty for catch_all()
    catch_all: bool
    groups: int  # numbered groups of all filters together
    names: frozenset[str]


@dataclass(frozen=True)
class Destination:
    text: str  # as written, captures unsubstituted
    is_url: bool


@dataclass(frozen=True)
class Action:
    kind: str  # "forward" | "store" | "stop"
    destinations: tuple[Destination, ...] = ()  # forward
    notify: Destination | None = None  # store


@dataclass(frozen=True)
class Captures:
    numbered: tuple[str, ...]  # \1 is numbered[0]
    named: dict[str, str]


NO_CAPTURES = Captures((), {})


# -- reading -------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Token:
    kind: str  # "name" | "string" | one of "(),="
    text: str
    at: int  # 1-based character position, for messages


def _tokens(text: str, what: str) -> list[_Token]:
    found: list[_Token] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "(),=":
            found.append(_Token(ch, ch, i + 1))
            i += 1
        elif ch in "\"'":
            value, i = _string(text, i, what)
            found.append(_Token("string", value, i))
        elif ch.isalpha() or ch == "_":
            start = i
            while i < len(text) and (text[i].isalnum() or text[i] == "_"):
                i += 1
            found.append(_Token("name", text[start:i], start + 1))
        else:
            raise RouteError(f"{what}: unexpected {ch!r} at character {i + 1}")
    return found


def _string(text: str, start: int, what: str) -> tuple[str, int]:
    """A quoted string from `start`: a backslash escapes the quote or a backslash; any other
    backslash stays (it belongs to the pattern, or names a capture)."""
    quote_char, out, i = text[start], [], start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in (quote_char, "\\"):
            out.append(text[i + 1])
            i += 2
        elif ch == quote_char:
            return "".join(out), i + 1
        else:
            out.append(ch)
            i += 1
    raise RouteError(f"{what}: the string opened at character {start + 1} is not closed")


class _Reader:
    def __init__(self, text: str, what: str) -> None:
        self.what = what
        self.tokens = _tokens(text, what)
        self.i = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, kind: str, wanted: str) -> _Token:
        token = self.peek()
        if token is None:
            raise RouteError(f"{self.what}: expected {wanted} at the end")
        if token.kind != kind:
            raise RouteError(f"{self.what}: expected {wanted} at character {token.at}, "
                             f"found {token.text!r}")
        self.i += 1
        return token

    def call(self) -> tuple[str, list[tuple[str | None, str]], int]:
        """`name(args)`: its lower-cased name, its arguments (keyword or None, string)."""
        name = self.take("name", "a function such as match_recipient(…)")
        self.take("(", f"'(' after {name.text}")
        args: list[tuple[str | None, str]] = []
        token = self.peek()
        while token is not None and token.kind != ")":
            keyword = None
            if token.kind == "name":
                keyword = self.take("name", "an argument").text.lower()
                self.take("=", f"'=' after {keyword}")
            args.append((keyword, self.take("string", "a quoted string").text))
            token = self.peek()
            if token is not None and token.kind == ",":
                self.i += 1
                token = self.peek()
        self.take(")", f"')' to close {name.text}(")
        return name.text.lower(), args, name.at


# -- expressions ---------------------------------------------------------------------------

def parse_expression(text: str) -> Expression:
    """The expression, checked, or RouteError saying what is wrong and where."""
    what = "expression"
    if not text.strip():
        raise RouteError("expression is empty")
    if len(text) > MAX_EXPRESSION:
        raise RouteError(f"expression is longer than {MAX_EXPRESSION} characters")
    reader = _Reader(text, what)
    filters: list[Filter] = []
    names: set[str] = set()
    catch_all = False
    while True:
        name, args, at = reader.call()
        if name in ("catch_all", "catchall"):
            if args:
                raise RouteError(f"{what}: {name}() takes no arguments (character {at})")
            catch_all = True
        elif name == "match_recipient":
            if len(args) != 1 or args[0][0] is not None:
                raise RouteError(f"{what}: match_recipient() takes one pattern "
                                 f"(character {at})")
            filters.append(_filter(None, args[0][1], f"match_recipient() at character {at}",
                                   names))
        elif name == "match_header":
            if len(args) != 2 or any(keyword is not None for keyword, _ in args):
                raise RouteError(f"{what}: match_header() takes a header name and a "
                                 f"pattern (character {at})")
            header = args[0][1].strip()
            if not _HEADER_NAME.fullmatch(header):
                raise RouteError(f"{what}: {header!r} is not a header name (character {at})")
            filters.append(_filter(header.lower(), args[1][1],
                                   f"match_header() at character {at}", names))
        else:
            raise RouteError(f"{what}: unknown filter {name}() at character {at} (use "
                             "match_recipient, match_header or catch_all)")
        token = reader.peek()
        if token is None:
            break
        if token.kind != "name" or token.text.lower() != "and":
            raise RouteError(f"{what}: expected 'and' or the end at character {token.at}, "
                             f"found {token.text!r}")
        reader.i += 1
        if len(filters) + catch_all >= MAX_FILTERS:
            raise RouteError(f"{what}: more than {MAX_FILTERS} filters")
    if catch_all and (filters or len(reader.tokens) > 3):
        raise RouteError(f"{what}: catch_all() stands alone, it can't be joined with 'and'")
    return Expression(tuple(filters), catch_all, sum(f.groups for f in filters),
                      frozenset(names))


def _filter(header: str | None, source: str, where: str, names: set[str]) -> Filter:
    where = f"expression: the pattern of {where}"
    if not source:
        raise RouteError(f"{where} is empty")
    try:
        compiled = re.compile(source, re.IGNORECASE)
        if backtracks(source):
            raise RouteError(f"{where} is refused: {BACKTRACKING}")
        pattern = regex.compile(source, regex.IGNORECASE | regex.VERSION0)
    except (re.error, regex.error) as exc:
        raise RouteError(f"{where} is not a valid regular expression: {exc}") from exc
    except (RecursionError, OverflowError) as exc:
        raise RouteError(f"{where} is too complex") from exc
    for name in compiled.groupindex:
        if name in names:
            raise RouteError(f"{where} names the capture {name!r} again")
        names.add(name)
    return Filter(header, pattern, compiled.groups)


# -- actions -------------------------------------------------------------------------------

def parse_action(text: str, expression: Expression, number: int = 1) -> Action:
    """One action, checked against the expression's captures, or RouteError."""
    what = f"action {number}"
    if len(text) > MAX_EXPRESSION:
        raise RouteError(f"{what} is longer than {MAX_EXPRESSION} characters")
    reader = _Reader(text, what)
    name, args, at = reader.call()
    extra = reader.peek()
    if extra is not None:
        raise RouteError(f"{what}: unexpected {extra.text!r} at character {extra.at} "
                         "(one action per `action` field)")
    if name == "stop":
        if args:
            raise RouteError(f"{what}: stop() takes no arguments")
        return Action("stop")
    if name == "forward":
        if len(args) != 1 or args[0][0] is not None:
            raise RouteError(f"{what}: forward() takes one string: addresses or URLs, "
                             "separated by commas")
        parts = [part.strip() for part in args[0][1].split(",")]
        if not any(parts):
            raise RouteError(f"{what}: forward() needs a destination")
        if len(parts) > MAX_DESTINATIONS:
            raise RouteError(f"{what}: forward() has more than {MAX_DESTINATIONS} "
                             "destinations")
        return Action("forward", tuple(_destination(part, expression, what)
                                       for part in parts if part))
    if name == "store":
        if len(args) > 1 or (args and args[0][0] not in (None, "notify")):
            raise RouteError(f"{what}: store() takes only notify=\"https://…\"")
        url = args[0][1].strip() if args else ""
        notify = _destination(url, expression, what, url_only=True) if url else None
        return Action("store", notify=notify)
    raise RouteError(f"{what}: unknown action {name}() at character {at} (use forward, "
                     "store or stop)")


def _destination(text: str, expression: Expression, what: str, *,
                 url_only: bool = False) -> Destination:
    for match in _CAPTURE.finditer(text):
        name, number = match.group(1), match.group(2)
        if number is not None or (name or "").isdigit():
            index = int(number if number is not None else name)
            if not 1 <= index <= expression.groups:
                raise RouteError(f"{what}: {match.group(0)} names no capture of the "
                                 f"expression (it has {expression.groups})")
        elif name not in expression.names:
            raise RouteError(f"{what}: {match.group(0)} names no capture of the expression")
    sample = _CAPTURE.sub("x", text)
    if re.match(r"(?i)https?://", text):
        _check_url(text, sample, what)
        return Destination(text, True)
    if url_only:
        raise RouteError(f"{what}: notify must be an http or https URL")
    if _CAPTURE.search(text.rpartition("@")[2]):  # the whole text when it has no '@'
        raise RouteError(f"{what}: captures can't be used in the domain of an address "
                         f"(after its '@'), only in its local part ({_shown(text)})")
    named = list(mailboxes([sample]))
    if len(named) != 1 or not named[0][1] or named[0][0].email != sample:
        raise RouteError(f"{what}: {_shown(text)} is neither an http(s) URL nor an email "
                         "address")
    return Destination(text, False)


def _check_url(text: str, sample: str, what: str) -> None:
    scheme, _, rest = text.partition("://")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if "\\" in authority:
        raise RouteError(f"{what}: captures can't be used in a URL's host ({_shown(text)})")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in sample):
        raise RouteError(f"{what}: {_shown(text)} is not a valid url: spaces and control "
                         "characters are not allowed")
    try:
        parts = urlsplit(sample)
    except ValueError:
        parts = None
    # The host as the webhook sender would reach it; the path and query are sealed with
    # the route (they may name someone), so webhooks' rule against addresses there is not
    # theirs.
    problem = ("it can't be parsed (check the host)" if parts is None else
               url_problem(f"{parts.scheme}://{parts.netloc}/"))
    if problem:
        raise RouteError(f"{what}: {_shown(text)} is not a valid url: {problem}")


def _shown(text: str) -> str:
    return repr(text if len(text) <= 100 else text[:100] + "…")


# -- evaluation ----------------------------------------------------------------------------

class Unmatchable(Exception):
    """A pattern ran out of time or text was too long for it: the filter counts as no
    match, and the caller logs it by route."""


def _run(pattern: regex.Pattern[str], value: str,
         deadline: float | None = None) -> regex.Match[str] | None:
    """`deadline` (time.monotonic()): the evaluation's, which a pattern can't run past."""
    if len(value) > MAX_SUBJECT:
        raise Unmatchable("the text is too long")
    timeout = MATCH_SECONDS
    if deadline is not None:
        timeout = min(timeout, deadline - time.monotonic())
        if timeout <= 0:
            raise Unmatchable("the evaluation ran out of time")
    try:
        return pattern.match(value, timeout=timeout, concurrent=True)
    except TimeoutError as exc:
        raise Unmatchable("the pattern ran out of time") from exc


def header_values(headers: list[tuple[str, str]], name: str) -> list[str]:
    """The values of header `name` (any case), unfolded and their encoded words decoded."""
    return [_decoded(value) for key, value in headers if key.strip().lower() == name]


def _decoded(value: str) -> str:
    value = re.sub(r"\r?\n[ \t]*", " ", value)
    try:
        return str(make_header(decode_header(value)))
    except (ValueError, LookupError, UnicodeError):
        return value


def match(expression: Expression, recipient: str, headers: list[tuple[str, str]],
          deadline: float | None = None) -> Captures | None:
    """The captures when every filter matches; None when one does not; Unmatchable when a
    pattern can't be run to the end (or before `deadline`, a time.monotonic()).
    (catch_all() is the caller's to decide.)"""
    numbered: list[str] = []
    named: dict[str, str] = {}
    for one in expression.filters:
        values = [recipient] if one.header is None else header_values(headers, one.header)
        found = None
        for value in values:
            found = _run(one.pattern, value, deadline)
            if found is not None:
                break
        if found is None:
            return None
        numbered.extend(group or "" for group in found.groups())
        named.update({k: v or "" for k, v in found.groupdict().items()})
    return Captures(tuple(numbered), named)


def matches_recipient(expression: Expression, address: str) -> bool:
    """Whether the expression's match_recipient filters (it has one at least) all match
    `address` (its header filters aside): `GET /v3/routes/match`."""
    recipients = [f for f in expression.filters if f.header is None]
    return bool(recipients) and all(_run(f.pattern, address) is not None
                                    for f in recipients)


def substitute(text: str, captures: Captures, *, in_url: bool) -> str:
    """`text` with its captures in place; in a URL each is percent-encoded, so a capture
    adds to the path or query it stands in and never starts another part."""
    def value(found: re.Match[str]) -> str:
        name, number = found.group(1), found.group(2)
        if number is not None or (name or "").isdigit():
            index = int(number if number is not None else name) - 1
            got = captures.numbered[index] if index < len(captures.numbered) else ""
        else:
            got = captures.named.get(name, "")
        return quote(got, safe="@") if in_url else got
    return _CAPTURE.sub(value, text)


@dataclass(frozen=True)
class Program:
    """A stored route, read once: its expression and actions, checked."""

    expression: Expression
    actions: tuple[Action, ...]

    @property
    def stops(self) -> bool:
        return any(action.kind == "stop" for action in self.actions)

    def resolve(self, route_id: str, captures: Captures) -> list[RouteAction]:
        """The actions to execute, captures substituted; a destination that is no longer
        an address or a URL once they are (a capture with a space, say) is left out."""
        out: list[RouteAction] = []
        for action in self.actions:
            if action.kind == "forward":
                for dest in action.destinations:
                    target = substitute(dest.text, captures, in_url=dest.is_url)
                    if dest.is_url or (_is_address(target)
                                       and _domain(target) == _domain(dest.text)):
                        out.append(RouteAction(route_id, "forward", target))
            elif action.kind == "store":
                notify = (substitute(action.notify.text, captures, in_url=True)
                          if action.notify else None)
                out.append(RouteAction(route_id, "store", None, notify))
        return out


def _domain(address: str) -> str:
    """The domain as written (captures are refused there): a capture in the local part
    can't move the copy to another domain, whatever '@' it brings along."""
    return address.rpartition("@")[2].lower()


def _is_address(text: str) -> bool:
    named = list(mailboxes([text]))
    return len(named) == 1 and named[0][1] and named[0][0].email == text


@functools.lru_cache(maxsize=4096)
def program(expression: str, actions: tuple[str, ...]) -> Program:
    """A route's expression and actions parsed (RouteError when they can't be): the same
    texts are read once per process."""
    parsed = parse_expression(expression)
    return Program(parsed, tuple(parse_action(text, parsed, n)
                                 for n, text in enumerate(actions, 1)))
