"""The database layer never puts bound values (addresses, sealed text) into an error that
may be logged."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError


def test_a_database_error_does_not_show_its_bound_values(services) -> None:
    with pytest.raises(DBAPIError) as raised, services.db.transaction() as session:
        session.execute(text("INSERT INTO no_such_table (address) VALUES (:address)"),
                        {"address": "zelda@example.com"})
    assert "no_such_table" in str(raised.value)  # what failed is still said...
    assert "zelda@example.com" not in str(raised.value)  # ...not with what
