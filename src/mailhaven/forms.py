"""Reading Mailgun's form fields (multipart or urlencoded, as the HTTP layer parsed them):
the helpers every capability's router and service share."""

from __future__ import annotations

import json
from typing import Any

_TRUE = ("yes", "true", "1", "on")


def flag(value: str | None, default: bool = False) -> bool:
    """Mailgun's truthy option values ("yes", "true", ...); `default` when not given."""
    if value is None or value == "":
        return default
    return value.strip().lower() in _TRUE


def json_object(text: str) -> dict[str, Any] | None:
    """`text` as a JSON object, or None for anything else. Nesting too deep for the parser
    (RecursionError) is as bad as broken JSON: both are the client's mistake, not ours."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def field_dict(fields: list[tuple[str, str]]) -> dict[str, str]:
    """First value of each field (for endpoints that take no repeated fields)."""
    out: dict[str, str] = {}
    for key, value in fields:
        out.setdefault(key, value)
    return out
