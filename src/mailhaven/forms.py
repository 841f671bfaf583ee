"""Reading Mailgun's form fields (multipart or urlencoded, as the HTTP layer parsed them):
the helpers every capability's router and service share."""

from __future__ import annotations

import json
from typing import Any

from mailhaven.errors import BadRequest

_TRUE = ("yes", "true", "1", "on")
MAX_JSON_DEPTH = 32  # lists and objects within each other, in a JSON field


def flag(value: str | None, default: bool = False) -> bool:
    """Mailgun's truthy option values ("yes", "true", ...); `default` when not given."""
    if value is None or value == "":
        return default
    return value.strip().lower() in _TRUE


def json_object(text: str) -> dict[str, Any] | None:
    """`text` as a JSON object, or None for anything else. Nesting deeper than
    MAX_JSON_DEPTH is as bad as broken JSON: whatever copied or stored it (recursively)
    would fail on it, and it is the client's mistake, not ours."""
    value = json_value(text)
    return value if isinstance(value, dict) else None


def json_value(text: str) -> Any:
    """`text` as JSON nested at most MAX_JSON_DEPTH deep, or None."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return None if too_deep(value) else value


def too_deep(value: Any) -> bool:
    """Whether lists and objects nest deeper than MAX_JSON_DEPTH (looked at without
    recursing, so any depth the parser returned is measured)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth >= MAX_JSON_DEPTH:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


def field_dict(fields: list[tuple[str, str]]) -> dict[str, str]:
    """First value of each field (for endpoints that take no repeated fields)."""
    out: dict[str, str] = {}
    for key, value in fields:
        out.setdefault(key, value)
    return out


MAX_TEXT_CHARS = 16 * 1024  # a description, name or comment a customer writes
TEXT_TOO_LONG = f"Invalid parameter: {{}} is longer than {MAX_TEXT_CHARS} characters"
NOT_TEXT = "Invalid parameter: {} is not valid text"


def is_text(value: str) -> bool:
    """Whether it can be written as UTF-8: JSON's "\\ud800" (a lone surrogate) cannot, and
    stored it would fail every read after."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def text_field(fields: dict[str, str], name: str) -> str | None:
    """A free-text field (a description, a comment), as given: at most MAX_TEXT_CHARS of
    text that can be stored; else a 400 naming the field."""
    value = fields.get(name)
    if value is not None and len(value) > MAX_TEXT_CHARS:
        raise BadRequest(TEXT_TOO_LONG.format(name))
    if value is not None and not is_text(value):
        raise BadRequest(NOT_TEXT.format(name))
    return value
