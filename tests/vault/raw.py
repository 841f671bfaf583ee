"""Whether a value is stored in clear: searched in the raw-database dump (every column as
stored, and the SQLite files with their WAL)."""

from __future__ import annotations

from mailhaven.services import Services
from tests.support import dump_database


def holds(services: Services, value: str) -> bool:
    """Whether `value` is stored in clear anywhere (in any case: indexes lower-case)."""
    raw = dump_database(services).everything().lower()
    return any(form in raw for form in (value.lower().encode(),
                                        value.lower().encode("utf-16-le")))
