"""Personal data we can recognise in text a customer means to keep in clear (tags, audit
details): refused there, since only the vault can erase it."""

from __future__ import annotations

import re

# Something shaped like an email address.
_ADDRESS = re.compile(r"[^\s@<>\"']+@[^\s@<>\"']+\.[A-Za-z]{2,}")


def holds_address(text: str) -> bool:
    """Whether `text` carries something shaped like an email address."""
    return _ADDRESS.search(text) is not None
