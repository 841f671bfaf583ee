"""Handlebars source read into a tree, the way Mailgun's engine (its fork of raymond, Go)
reads it: mustaches, blocks with `{{else}}` and `{{else if}}` chains, inverted sections,
comments, sub-expressions, hash arguments, block parameters, `~` whitespace control and
standalone lines. Partials, decorators and raw blocks are refused: Mailgun registers no
partials, so a template using one could never render."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_NESTING = 64  # blocks and sub-expressions within one another: the renderer recurses on them


class TemplateError(ValueError):
    """A template that cannot be read, or cannot be rendered with these variables."""


@dataclass(frozen=True)
class Path:
    """`name.child`, `../name`, `this.name`, `@index`, `[a literal segment]`…"""

    parts: tuple[str, ...]
    depth: int = 0  # how many `../`
    data: bool = False  # `@name`: the private data of a block (@index, @key, @root…)
    scoped: bool = False  # `this.x` / `./x`: the current context only

    @property
    def helper_name(self) -> str | None:
        """The name a helper would be called by, if this path can be one."""
        if self.data or self.depth or self.scoped or len(self.parts) != 1:
            return None
        return self.parts[0]


@dataclass(frozen=True)
class Literal:
    value: str | int | float | bool | None


@dataclass(frozen=True)
class Call:
    """`head param param key=value`: a helper call, or (without a helper) a value. As a
    parameter it is a sub-expression, `(head …)`."""

    head: Path | Literal | Call
    params: tuple[Value, ...] = ()
    hash: tuple[tuple[str, Value], ...] = ()


Value = Path | Literal | Call


@dataclass(frozen=True)
class Text:
    value: str


@dataclass(frozen=True)
class Mustache:
    call: Call
    escaped: bool


@dataclass(frozen=True)
class Block:
    """`{{#call as |params|}}program{{else}}inverse{{/name}}`; an inverted section
    `{{^call}}…{{/name}}` has an empty program and the content as its inverse."""

    call: Call
    program: tuple[Node, ...]
    inverse: tuple[Node, ...] | None
    params: tuple[str, ...] = ()


Node = Text | Mustache | Block

# -- the scanner: text and tags, in source order ------------------------------------------

# Characters a name can't hold (raymond's and Handlebars.js's lexers agree).
_ID = re.compile(r"[^\s!\"#%&'()*+,./;<=>@\[\\\]^`{|}~]+")
_LITERAL_END = r"(?=[\s~})]|$)"
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?" + _LITERAL_END)
_KEYWORD = re.compile(r"(true|false|null|undefined)" + _LITERAL_END)
_HASH_KEY = re.compile(_ID.pattern + r"(?=\s*=)")
_BLOCK_PARAMS = re.compile(r"as\s+\|([^|]*)\|")
_ELSE = re.compile(r"\s*else(?=[\s~}])")
_CLOSE = re.compile(r"\s*(~?)\}\}")
_TRIPLE_CLOSE = re.compile(r"\s*\}(~?)\}\}")
_COMMENT_END = re.compile(r"(~?)\}\}")
_LONG_COMMENT_END = re.compile(r"--(~?)\}\}")
_KEYWORDS = {"true": True, "false": False, "null": None, "undefined": None}

# Tags that stand alone on their line take the line with them ("standalone" lines).
_STANDALONE = frozenset({"open", "inverse_open", "close", "else", "else_chain", "comment"})


@dataclass
class _Text:
    original: str
    value: str
    left_stripped: bool = False
    right_stripped: bool = False


@dataclass
class _Tag:
    kind: str  # mustache, open, inverse_open, close, else, else_chain, comment
    at: int
    call: Call | None = None
    name: str = ""  # an opening or closing tag's head, as written
    escaped: bool = True
    params: tuple[str, ...] = ()
    strip_left: bool = False
    strip_right: bool = False


_Token = _Text | _Tag


@dataclass
class _Reader:
    source: str
    at: int = 0
    depth: int = 0  # sub-expressions open

    def fail(self, why: str) -> TemplateError:
        line = self.source.count("\n", 0, self.at) + 1
        return TemplateError(f"{why} (line {line})")

    def skip_space(self) -> None:
        while self.at < len(self.source) and self.source[self.at].isspace():
            self.at += 1

    def match(self, pattern: re.Pattern[str]) -> re.Match[str] | None:
        found = pattern.match(self.source, self.at)
        if found:
            self.at = found.end()
        return found

    def startswith(self, text: str) -> bool:
        return self.source.startswith(text, self.at)

    # -- expressions ---------------------------------------------------------------------
    def call(self, *, closer: str = "}") -> Call:
        """A head and its arguments, up to `closer` (`}` ends a tag, `)` a sub-expression)
        or a block's `as |params|`."""
        self.skip_space()
        head = self.value()
        if isinstance(head, Literal) and isinstance(head.value, (str, int, float)):
            # `{{"foo bar"}}` reads the field of that name, as a path would.
            head = Path((str(head.value),))
        params: list[Value] = []
        pairs: list[tuple[str, Value]] = []
        while True:
            self.skip_space()
            if self.at >= len(self.source):
                raise self.fail("unclosed tag")
            if self.source[self.at] in closer or self.startswith("~}") \
                    or _BLOCK_PARAMS.match(self.source, self.at):
                break
            key = self.match(_HASH_KEY)
            if key:
                self.skip_space()
                self.at += 1  # the "="
                self.skip_space()
                pairs.append((key.group(), self.value()))
            elif pairs:
                raise self.fail("a positional argument after key=value arguments")
            else:
                params.append(self.value())
        return Call(head, tuple(params), tuple(pairs))

    def value(self) -> Value:
        source, at = self.source, self.at
        if at >= len(source):
            raise self.fail("unclosed tag")
        char = source[at]
        if char == "(":
            self.depth += 1
            if self.depth > MAX_NESTING:
                raise self.fail(f"sub-expressions nested more than {MAX_NESTING} deep")
            self.at += 1
            inner = self.call(closer=")")
            if not self.startswith(")"):
                raise self.fail("unclosed sub-expression")
            self.at += 1
            self.depth -= 1
            return inner
        if char in "\"'":
            end = at + 1
            while end < len(source) and source[end] != char:
                end += 2 if source[end] == "\\" else 1
            if end >= len(source):
                raise self.fail("unterminated string")
            self.at = end + 1
            return Literal(source[at + 1:end].replace("\\" + char, char))
        number = self.match(_NUMBER)
        if number:
            text = number.group()
            return Literal(float(text) if "." in text else int(text))
        keyword = self.match(_KEYWORD)
        if keyword:
            return Literal(_KEYWORDS[keyword.group(1)])
        return self.path()

    def path(self) -> Path:
        start = self.at
        data = self.startswith("@")
        if data:
            self.at += 1
        segments: list[tuple[str, bool]] = []  # (segment, written as [literal])
        while True:
            if self.startswith("["):
                end = self.source.find("]", self.at)
                if end < 0:
                    raise self.fail("unterminated [segment]")
                segments.append((self.source[self.at + 1:end], True))
                self.at = end + 1
            elif self.startswith(".."):
                segments.append(("..", False))
                self.at += 2
            elif self.startswith("."):
                segments.append((".", False))
                self.at += 1
            else:
                name = self.match(_ID)
                if not name:
                    raise self.fail(f"unexpected {self.source[self.at:self.at + 1]!r}")
                segments.append((name.group(), False))
            following = self.source[self.at + 1:self.at + 2]
            if self.source[self.at:self.at + 1] in (".", "/") and (
                    following in ("[", ".") or _ID.match(following)):
                self.at += 1
                continue
            break
        parts: list[str] = []
        depth, scoped = 0, False
        for segment, literal in segments:
            if not literal and segment in ("..", ".", "this"):
                if parts:
                    raise self.fail(f"invalid path {self.source[start:self.at]!r}")
                if segment == "..":
                    depth += 1
                else:
                    scoped = True
            else:
                parts.append(segment)
        return Path(tuple(parts), depth, data, scoped)

    def tag_end(self, *, triple: bool = False) -> bool:
        """Past the tag's closing braces; whether they strip what follows (`~}}`)."""
        end = self.match(_TRIPLE_CLOSE if triple else _CLOSE)
        if end is None:
            raise self.fail("expected }}}" if triple else "expected }}")
        return bool(end.group(1))

    # -- tags ----------------------------------------------------------------------------
    def tag(self) -> _Tag:
        """The tag at `{{`."""
        at = self.at
        if self.startswith("{{{{"):
            raise self.fail("raw blocks ({{{{raw}}}}) are not supported")
        self.at += 2
        strip_left = self.startswith("~")
        if strip_left:
            self.at += 1
        tag = self._tag_body(at)
        tag.strip_left = strip_left
        return tag

    def _tag_body(self, at: int) -> _Tag:
        if self.startswith("{"):
            self.at += 1
            call = self.call()
            return _Tag("mustache", at, call, escaped=False, strip_right=self.tag_end(triple=True))
        if self.startswith("!"):
            dashes = self.startswith("!--")
            end = (_LONG_COMMENT_END if dashes else _COMMENT_END).search(self.source, self.at)
            if end is None:
                raise self.fail("unterminated comment")
            self.at = end.end()
            return _Tag("comment", at, strip_right=bool(end.group(1)))
        if self.startswith(">"):
            raise self.fail("partials ({{> name}}) are not supported")
        if self.startswith("*") or self.startswith("#*") or self.startswith("#>"):
            raise self.fail("decorators and partial blocks are not supported")
        if self.startswith("#") or self.startswith("^"):
            kind = "open" if self.startswith("#") else "inverse_open"
            self.at += 1
            self.skip_space()
            if kind == "inverse_open" and (self.startswith("}}") or self.startswith("~}}")):
                return _Tag("else", at, strip_right=self.tag_end())  # {{^}}
            return self._opening(kind, at)
        if self.startswith("/"):
            self.at += 1
            self.skip_space()
            name_at = self.at
            self.path()
            name = self.source[name_at:self.at]
            return _Tag("close", at, name=name, strip_right=self.tag_end())
        if self.match(_ELSE):
            self.skip_space()
            if self.startswith("}}") or self.startswith("~}}"):
                return _Tag("else", at, strip_right=self.tag_end())
            return self._opening("else_chain", at)
        escaped = not self.startswith("&")
        if not escaped:
            self.at += 1
        call = self.call()
        return _Tag("mustache", at, call, escaped=escaped, strip_right=self.tag_end())

    def _opening(self, kind: str, at: int) -> _Tag:
        self.skip_space()
        name_at = self.at
        call = self.call()
        name = self.source[name_at:self.at].split(None, 1)[0] if kind != "else_chain" else ""
        params: tuple[str, ...] = ()
        found = self.match(_BLOCK_PARAMS)
        if found:
            params = tuple(found.group(1).split())
            if not params or not all(_ID.fullmatch(p) for p in params):
                raise self.fail("invalid block parameters")
        return _Tag(kind, at, call, name=name, params=params, strip_right=self.tag_end())


def _scan(source: str) -> list[_Token]:
    """Text and tags in order; `\\{{` writes `{{` (and what follows it) as text."""
    reader = _Reader(source)
    tokens: list[_Token] = []
    text: list[str] = []
    at = 0
    while True:
        found = source.find("{{", at)
        if found < 0:
            text.append(source[at:])
            break
        if found > 0 and source[found - 1] == "\\":
            if found > 1 and source[found - 2] == "\\":  # `\\{{x}}`: a backslash, then x
                text.append(source[at:found - 1])
            else:
                text.append(source[at:found - 1] + "{{")
                at = found + 2
                continue
        else:
            text.append(source[at:found])
        if any(text):
            joined = "".join(text)
            tokens.append(_Text(joined, joined))
        text = []
        reader.at = found
        tokens.append(reader.tag())
        at = reader.at
    if any(text):
        joined = "".join(text)
        tokens.append(_Text(joined, joined))
    return tokens


# -- whitespace control (Handlebars.js's WhitespaceControl, on the flat token list) ---------

def _blank_with_newline(run: str, whole: str, *, may_end: bool) -> bool:
    """Whether a text's blank run next to a tag holds a line break (or, where `may_end`,
    the text is all blank: it starts or ends the template)."""
    return "\n" in run or (may_end and run == whole)


def _prev_is_blank(tokens: list[_Token], i: int) -> bool:
    """The text before tag `i` ends its line blank (Handlebars' isPrevWhitespace). Read
    with str methods, not a regex: a long blank run must not cost quadratic time."""
    if i == 0:
        return True
    prev = tokens[i - 1]
    if not isinstance(prev, _Text):
        return False
    text = prev.original
    return _blank_with_newline(text[len(text.rstrip()):], text, may_end=i - 1 == 0)


def _next_is_blank(tokens: list[_Token], i: int) -> bool:
    if i == len(tokens) - 1:
        return True
    following = tokens[i + 1]
    if not isinstance(following, _Text):
        return False
    text = following.original
    run = text[:len(text) - len(text.lstrip())]
    return _blank_with_newline(run, text, may_end=i + 1 == len(tokens) - 1)


def _omit_right(tokens: list[_Token], i: int, *, multiple: bool = False) -> None:
    """Strip the start of the text after tag `i`: all blanks (`~`), or a standalone line's
    rest and its line break."""
    if i + 1 >= len(tokens):
        return
    following = tokens[i + 1]
    if not isinstance(following, _Text) or (not multiple and following.right_stripped):
        return
    before = following.value
    if multiple:
        following.value = before.lstrip()
    else:
        rest = before.lstrip(" \t")
        following.value = rest[2:] if rest.startswith("\r\n") else \
            rest[1:] if rest.startswith("\n") else rest
    following.right_stripped = following.value != before


def _omit_left(tokens: list[_Token], i: int, *, multiple: bool = False) -> None:
    if i == 0:
        return
    prev = tokens[i - 1]
    if not isinstance(prev, _Text) or (not multiple and prev.left_stripped):
        return
    before = prev.value
    prev.value = before.rstrip() if multiple else before.rstrip(" \t")
    prev.left_stripped = prev.value != before


def _control_whitespace(tokens: list[_Token]) -> None:
    for i, token in enumerate(tokens):
        if not isinstance(token, _Tag):
            continue
        if token.strip_right:
            _omit_right(tokens, i, multiple=True)
        if token.strip_left:
            _omit_left(tokens, i, multiple=True)
        if token.kind in _STANDALONE and _prev_is_blank(tokens, i) \
                and _next_is_blank(tokens, i):
            _omit_right(tokens, i)
            _omit_left(tokens, i)


# -- the tree ---------------------------------------------------------------------------

@dataclass
class _Open:
    """A block being read: its opening tag, its program so far, its inverse once `else`."""

    tag: _Tag
    program: list[Node] = field(default_factory=list)
    inverse: list[Node] | None = None
    chained: bool = False  # an `{{else if …}}`: ends with the block it is chained to

    @property
    def body(self) -> list[Node]:
        return self.program if self.inverse is None else self.inverse

    def node(self) -> Block:
        assert self.tag.call is not None
        if self.tag.kind == "inverse_open":
            return Block(self.tag.call, tuple(self.inverse or ()), tuple(self.program),
                         self.tag.params)
        return Block(self.tag.call, tuple(self.program),
                     None if self.inverse is None else tuple(self.inverse), self.tag.params)


def parse(source: str) -> tuple[Node, ...]:
    """The template's tree; TemplateError says what is wrong and on which line."""
    tokens = _scan(source)
    _control_whitespace(tokens)
    reader = _Reader(source)
    root: list[Node] = []
    stack: list[_Open] = []
    nested = 0  # blocks open in `stack`, the links of an `{{else if}}` chain not counted

    def body() -> list[Node]:
        return stack[-1].body if stack else root

    for token in tokens:
        if isinstance(token, _Text):
            if token.value:
                body().append(Text(token.value))
            continue
        reader.at = token.at
        if token.kind == "mustache":
            assert token.call is not None
            body().append(Mustache(token.call, token.escaped))
        elif token.kind in ("open", "inverse_open"):
            if nested >= MAX_NESTING:
                raise reader.fail(f"blocks nested more than {MAX_NESTING} deep")
            stack.append(_Open(token))
            nested += 1
        elif token.kind in ("else", "else_chain"):
            if not stack or stack[-1].inverse is not None:
                raise reader.fail("{{else}} outside a block, or twice in one")
            stack[-1].inverse = []
            if token.kind == "else_chain":  # rendered in a loop, not deeper: no nesting
                stack.append(_Open(token, chained=True))
        elif token.kind == "close":
            while stack and stack[-1].chained:
                chained = stack.pop()
                stack[-1].body.append(chained.node())
            if not stack:
                raise reader.fail(f"{{{{/{token.name}}}}} closes no block")
            opened = stack.pop()
            nested -= 1
            if opened.tag.name != token.name:
                raise reader.fail(f"{{{{/{token.name}}}}} closes {{{{#{opened.tag.name}}}}}")
            body().append(opened.node())
    if stack:
        reader.at = stack[-1].tag.at
        raise reader.fail(f"{{{{#{stack[-1].tag.name or 'else'}}}}} is not closed")
    return tuple(root)
