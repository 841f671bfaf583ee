"""A template's tree rendered with its variables, with Mailgun's semantics (its Go engine,
raymond, not Handlebars.js, where they differ): HTML escaping of `&'<>"` (`'` as `&apos;`),
truth as Go's (an empty list or object is false, so is 0), numbers printed as Go prints a
float64 (10.0 is "10"), lists printed as their items run together, a name not found in the
current context looked up in the enclosing ones. Bounded: a render that takes more than
MAX_STEPS steps or writes more than MAX_OUTPUT characters fails instead of running on."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from mailhaven.messages.handlebars.syntax import (
    Block,
    Call,
    Literal,
    Mustache,
    Node,
    Path,
    TemplateError,
    Text,
    Value,
)

MAX_STEPS = 1_000_000  # nodes rendered and loop rounds taken, per render
MAX_OUTPUT = 10 * 1024 * 1024  # characters written, per render
MAX_PRINT_DEPTH = 32  # nested lists printed as text

_ESCAPES = str.maketrans({"&": "&amp;", "'": "&apos;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})
_MISSING = object()


def escape(text: str) -> str:
    """HTML-escape as Mailgun does: `&'<>"` and nothing else."""
    return text.translate(_ESCAPES)


def truthy(value: Any) -> bool:
    """Go's truth, as raymond's `if` has it: nil, false, 0, "" and empty lists and objects
    are false."""
    if value is None or value is False:
        return False
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, (str, list, dict, tuple)):
        return len(value) > 0
    return True


def text_of(value: Any, depth: int = 0) -> str:
    """A value as a mustache prints it (raymond's `Str`)."""
    if value is None:
        return ""
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if depth >= MAX_PRINT_DEPTH:
        return ""
    if isinstance(value, (list, tuple)):
        return "".join(text_of(item, depth + 1) for item in value)
    if isinstance(value, dict):  # as Go's fmt prints a map
        return "map[" + " ".join(f"{k}:{text_of(value[k], depth + 1)}"
                                 for k in sorted(value)) + "]"
    return str(value)


def _go_float(value: float) -> str:
    """strconv.FormatFloat(v, 'f', -1, 64): the shortest digits, never an exponent."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = format(Decimal(repr(value)), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def child(value: Any, name: str) -> Any:
    """`value.name`: an object's key, a list's index, and `length` of a list, an object or a
    string (Mailgun's `length` helper); _MISSING where there is none."""
    if isinstance(value, dict):
        if name in value:
            return value[name]
        return len(value) if name == "length" else _MISSING
    if isinstance(value, (list, tuple)):
        if name.isdigit() and int(name) < len(value):
            return value[int(name)]
        return len(value) if name == "length" else _MISSING
    if isinstance(value, str) and name == "length":
        return len(value)
    return _MISSING


def walk(value: Any, parts: Sequence[str]) -> Any:
    for part in parts:
        value = child(value, part)
        if value is _MISSING:
            return None
    return value


@dataclass(frozen=True)
class Data:
    """A block's private data (`@index`, `@key`, `@first`, `@last`), and its parent's."""

    values: dict[str, Any]
    parent: Data | None = None


@dataclass(frozen=True)
class Scope:
    contexts: tuple[Any, ...]  # outermost first
    data: Data | None = None
    params: tuple[dict[str, Any], ...] = ()  # block parameters, outermost first

    def enter(self, context: Any, data: dict[str, Any] | None = None,
              params: dict[str, Any] | None = None) -> Scope:
        return Scope(self.contexts + (context,),
                     self.data if data is None else Data(data, self.data),
                     self.params + ((params,) if params else ()))


@dataclass
class Options:
    """What a helper is given: its arguments and, called as a block, its program."""

    renderer: Renderer
    scope: Scope
    args: list[Any]
    hash: dict[str, Any]
    block: Block | None = None

    def arg(self, n: int) -> Any:
        return self.args[n] if n < len(self.args) else None

    def fn(self, context: Any = _MISSING, *, data: dict[str, Any] | None = None,
           params: Sequence[Any] = ()) -> str:
        """The block's program, in `context` (the current one by default)."""
        if self.block is None:
            return ""
        names = self.block.params
        bound = {name: value for name, value in zip(names, params, strict=False)}
        scope = self.scope if context is _MISSING and data is None and not bound \
            else self.scope.enter(self.scope.contexts[-1] if context is _MISSING else context,
                                  data, bound)
        return self.renderer.run(self.block.program, scope)

    def inverse(self) -> str:
        """The block's `{{else}}` part; a helper returns it as its answer (an `{{else if}}`
        is rendered by the renderer's loop, however long the chain)."""
        if self.block is None or self.block.inverse is None:
            return ""
        following = _following(self.block)
        if following is not None:
            return _Next(following)
        return self.renderer.run(self.block.inverse, self.scope)


class _Next(str):
    """A helper's answer that is its inverse, one block (`{{else if}}`'s): rendered next,
    in its place."""

    block: Block

    def __new__(cls, block: Block) -> _Next:
        answer = super().__new__(cls, "")
        answer.block = block
        return answer


def _following(node: Block) -> Block | None:
    """The inverse's one block, when that is all it is (`{{else if}}` makes that)."""
    inverse = node.inverse
    if inverse is not None and len(inverse) == 1 and isinstance(inverse[0], Block):
        return inverse[0]
    return None


Helper = Callable[[Options], Any]


@dataclass
class Renderer:
    helpers: dict[str, Helper]
    root: Any
    steps: int = 0
    written: int = 0

    def tick(self) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise TemplateError(f"the template took more than {MAX_STEPS} steps to render")

    def _wrote(self, text: str) -> str:
        self._count(len(text))
        return text

    def _count(self, characters: int) -> None:
        self.written += characters
        if self.written > MAX_OUTPUT:
            raise TemplateError(f"the template rendered more than {MAX_OUTPUT} characters")

    def run(self, program: Sequence[Node], scope: Scope) -> str:
        out = []
        for node in program:
            self.tick()
            if isinstance(node, Text):
                out.append(self._wrote(node.value))
            elif isinstance(node, Mustache):
                text = text_of(self.call(node.call, scope))
                out.append(self._wrote(escape(text) if node.escaped else text))
            else:
                out.append(self.block(node, scope))
        return "".join(out)

    def block(self, node: Block, scope: Scope) -> str:
        """The block, and when it answers with its inverse's one block (an `{{else if}}`
        chain's next link), that one, in a loop: a chain is as long as the template."""
        while True:
            helper = self._helper(node.call)
            if helper is not None:
                before = self.written
                answer = helper(self._options(node.call, scope, node))
                if isinstance(answer, _Next):
                    node = answer.block
                    self.tick()
                    continue
                text = text_of(answer)
                # What its program wrote is counted already; a value it returned
                # (pluralize's, lookup's) is not, and must be, or a loop of them writes
                # without bound.
                self._count(max(0, len(text) - (self.written - before)))
                return text
            following = _following(node)
            value = self.value(node.call.head, scope)  # a section over a value
            if not truthy(value) and following is not None:
                node = following
                self.tick()
                continue
            return self._section(node, value, scope)

    def _section(self, node: Block, value: Any, scope: Scope) -> str:
        if not truthy(value):
            return "" if node.inverse is None else self.run(node.inverse, scope)
        if not isinstance(value, list):
            return self.run(node.program, scope.enter(value))
        rounds = []
        for index, item in enumerate(value):
            self.tick()
            rounds.append(self.run(node.program, scope.enter(item, {
                "index": index, "first": index == 0, "last": index == len(value) - 1,
                "key": None})))
        return "".join(rounds)

    def call(self, call: Call, scope: Scope) -> Any:
        self.tick()  # sub-expressions and hash arguments are steps too
        helper = self._helper(call)
        if helper is not None:
            return helper(self._options(call, scope, None))
        # A name that is no helper is read as a value; its arguments are ignored (raymond).
        return self.value(call.head, scope)

    def _helper(self, call: Call) -> Helper | None:
        name = call.head.helper_name if isinstance(call.head, Path) else None
        return self.helpers.get(name) if name is not None else None

    def _options(self, call: Call, scope: Scope, block: Block | None) -> Options:
        return Options(self, scope, [self.value(p, scope) for p in call.params],
                       {key: self.value(v, scope) for key, v in call.hash}, block)

    def value(self, value: Value, scope: Scope) -> Any:
        if isinstance(value, Literal):
            return value.value
        if isinstance(value, Path):
            return self.lookup(value, scope)
        return self.call(value, scope)

    def lookup(self, path: Path, scope: Scope) -> Any:
        parts = path.parts
        if parts and not (path.data or path.depth or path.scoped):
            for params in reversed(scope.params):
                if parts[0] in params:
                    return walk(params[parts[0]], parts[1:])
        if path.data:
            if parts[:1] == ("root",):
                return walk(self.root, parts[1:])
            data = scope.data
            for _ in range(path.depth):
                data = data.parent if data is not None else None
            return None if data is None else walk(data.values, parts)
        start = len(scope.contexts) - 1 - path.depth
        if start < 0:
            return None
        if not parts:
            return scope.contexts[start]
        if path.scoped:
            return walk(scope.contexts[start], parts)
        for context in scope.contexts[start::-1]:
            # The first context that has the first name answers, even with nothing further.
            first = child(context, parts[0])
            if first is not _MISSING:
                return walk(first, parts[1:])
        return None
