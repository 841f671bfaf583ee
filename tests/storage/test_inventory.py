"""The data inventory (SPEC N1): no column exists without saying what it holds and why."""

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
    """The vault is the only door: a personal column is ciphertext or a blind index."""
    for name, col in _columns():
        if col.info["classification"].category != "personal":
            continue
        assert isinstance(col.type, LargeBinary) or name.endswith("index"), (
            f"{name} is personal data stored outside the vault")
