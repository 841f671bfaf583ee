"""Handlebars as Mailgun renders its stored templates (its fork of raymond, a Go engine).

No Python package renders Mailgun's dialect: they follow Handlebars.js where Mailgun's
engine differs (escaping, truth, printing), lack its helpers, or cannot bound a render;
see docs/templates.md. `compile_template` reads a template once (a 400 for the customer if
it is broken); `Template.render` is bounded in steps and output, for untrusted templates
run in the render pool.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from mailhaven.messages.handlebars.evaluate import (
    MAX_OUTPUT,
    MAX_STEPS,
    Data,
    Renderer,
    Scope,
    escape,
)
from mailhaven.messages.handlebars.helpers import ARITY, HELPERS
from mailhaven.messages.handlebars.syntax import (
    MAX_NESTING,
    Block,
    Call,
    Mustache,
    Node,
    Path,
    TemplateError,
    parse,
)

__all__ = ["MAX_NESTING", "MAX_OUTPUT", "MAX_STEPS", "Template", "TemplateError",
           "compile_template", "escape", "render"]


@dataclass(frozen=True)
class Template:
    program: tuple[Node, ...]

    def render(self, variables: Mapping[str, Any]) -> str:
        """The template with these variables; TemplateError past the render's bounds."""
        root = dict(variables)
        return Renderer(HELPERS, root).run(self.program, Scope((root,), Data({})))


@functools.lru_cache(maxsize=32)
def compile_template(source: str) -> Template:
    """The template read and checked (helpers called with the arguments they take);
    TemplateError says what is wrong. Kept a while: every copy of a message renders it."""
    program = parse(source)
    for call in _calls(program):
        name = call.head.helper_name if isinstance(call.head, Path) else None
        if name in ARITY and len(call.params) != ARITY[name]:
            raise TemplateError(f"{name} takes {ARITY[name]} argument"
                                f"{'' if ARITY[name] == 1 else 's'}, not {len(call.params)}")
    return Template(program)


def render(source: str, variables: Mapping[str, Any]) -> str:
    return compile_template(source).render(variables)


def _calls(program: tuple[Node, ...]) -> Iterator[Call]:
    """Every call in the tree, sub-expressions included (sub-expressions are at most
    MAX_NESTING deep; an `{{else if}}` chain's blocks, each in the last one's inverse, can
    be many more: walked without recursing)."""
    programs = [program]
    while programs:
        for node in programs.pop():
            if isinstance(node, Mustache):
                yield from _nested(node.call)
            elif isinstance(node, Block):
                yield from _nested(node.call)
                programs.extend((node.program, node.inverse or ()))


def _nested(call: Call) -> Iterator[Call]:
    yield call
    for value in (call.head, *call.params, *(v for _, v in call.hash)):
        if isinstance(value, Call):
            yield from _nested(value)
