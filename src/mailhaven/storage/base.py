"""Declarative base and the column types both databases share."""

from __future__ import annotations

import secrets

from sqlalchemy import BigInteger, Integer, MetaData, Table
from sqlalchemy.orm import DeclarativeBase

# BIGINT autoincrement on PostgreSQL, INTEGER PRIMARY KEY (the rowid) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def table(model: type[Base]) -> Table:
    """A model's Core table, for bulk statements without the ORM's machinery (declarative
    models type `__table__` as any FromClause)."""
    found = model.__table__
    assert isinstance(found, Table)
    return found


def new_id() -> str:
    """An opaque, unguessable public identifier."""
    return secrets.token_hex(12)
