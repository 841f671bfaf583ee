"""Personal data we can recognise in text a customer means to keep in clear (tags, audit
details): refused there, since only the vault can erase it."""

from __future__ import annotations

import re

from mailhaven.errors import BadRequest

# Something shaped like an email address.
_ADDRESS = re.compile(r"[^\s@<>\"']+@[^\s@<>\"']+\.[A-Za-z]{2,}")


def holds_address(text: str) -> bool:
    """Whether `text` carries something shaped like an email address."""
    return _ADDRESS.search(text) is not None


def kept_clear(text: str, field: str, *, key: str = "message") -> str:
    """`text` unchanged, or a 400 saying why: `field` is stored in clear, where an address
    would outlive its owner's erasure."""
    if holds_address(text):
        raise BadRequest(f"{field} can't hold an email address: it is kept in clear, and "
                         "personal data belongs in sealed fields", key=key)
    return text
