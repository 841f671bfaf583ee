"""What the database holds, as bytes: the SQLite files (with the WAL), or every row of every
table on PostgreSQL. A value found in here is stored in clear."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from mailhaven.models import metadata
from mailhaven.services import Services


def stored_bytes(services: Services) -> bytes:
    if services.db.is_sqlite:
        database = Path(services.db.engine.url.database or "")
        return b"".join(p.read_bytes() for p in database.parent.glob(database.name + "*")
                        if p.is_file())
    dump = []
    with services.db.engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(text(f"SELECT * FROM {table.name}")):
                dump.extend(bytes(v) if isinstance(v, memoryview | bytes) else str(v).encode()
                            for v in row)
    return b"\n".join(dump)


def holds(services: Services, value: str) -> bool:
    """Whether `value` is stored in clear anywhere (in any case: indexes lower-case)."""
    raw = stored_bytes(services).lower()
    return any(form in raw for form in (value.lower().encode(),
                                        value.lower().encode("utf-16-le")))
