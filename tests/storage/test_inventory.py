"""The data inventory (SPEC N1): no column exists without saying what it holds and why.

These check the declarations alone; test_personal_values_everywhere.py checks them against
what the APIs really store, so a column that holds personal data in clear fails there
whatever it declares."""

from __future__ import annotations

from sqlalchemy import LargeBinary

from mailhaven.models import metadata
from mailhaven.storage.inventory import Classification


def _columns():  # type: ignore[no-untyped-def]
    for table in metadata.sorted_tables:
        for col in table.columns:
            yield f"{table.name}.{col.name}", col


def test_every_column_of_every_table_is_classified() -> None:
    missing = [name for name, col in _columns()
               if not isinstance(col.info.get("classification"), Classification)]
    assert missing == [], f"unclassified columns: {missing}"


def test_every_classification_is_complete() -> None:
    for name, col in _columns():
        c = col.info["classification"]
        assert c.category in ("personal", "non-personal"), name
        assert c.subject and c.purposes and c.retention and c.legal_basis, name


def test_personal_data_is_only_stored_sealed_or_as_a_keyed_index() -> None:
    """The vault is the only door: a column declared personal is ciphertext or a blind
    index (by its type and name; what it holds is checked in test_personal_values_everywhere)."""
    for name, col in _columns():
        if col.info["classification"].category != "personal":
            continue
        assert isinstance(col.type, LargeBinary) or name.endswith("index"), (
            f"{name} is personal data stored outside the vault")
