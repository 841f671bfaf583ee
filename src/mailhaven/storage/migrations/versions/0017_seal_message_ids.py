"""Client Message-IDs and extension reasons sealed; Message-IDs found by blind index

A client may write its own Message-ID (`order-77.zelda@shop.test`): personal data, which was
kept in clear in messages.message_id and events.message_id and outlived an erasure.
events.message_id becomes `message_id_index`, the id's keyed blind index (the Events API's
`message-id` filter looks it up); messages.message_id goes (nothing looks a message up by
it, and a message row outlives its recipients' erasure). The id itself is in the sealed
places only: the message's document,
each event's payload, and a new deliveries.message_id_sealed (under the recipient's key, for
a copy's later events once the body's retention ran out). privacy_requests.extended_reason
(free text about the subject) becomes extension_sealed, under the request's subject key.

Existing rows are converted here, in the same transaction: sealing and blind indexes need
the master key, which Mailhaven hands to every migration it runs (`Database.migrate(vault=)`,
on start and on `backup restore`). Run without it (bare alembic) over rows stored in clear,
this revision refuses rather than leave them in clear or drop them. Each row is rewritten
without its clear value before the column goes (dropping a column alone leaves the values in
PostgreSQL's rows). Downgrading with the key opens the values back into their clear columns
from the copies whose recipient's key still exists; a message none of whose copies has one
(all erased), and its events, come back with an empty id.

The old values may linger in the database's free space (SQLite's free pages, PostgreSQL's
dead row versions) until a VACUUM, and stay in backups taken before this revision.

Revision ID: 0017
Revises: 0016
"""

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from alembic import context, op
from cryptography.exceptions import InvalidTag

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None

BATCH = 1000
NEEDS_KEY = ("Revision 0017 seals the Message-IDs and request extension reasons stored in "
             "clear, which needs the master key: upgrade with `mailhaven migrate` or by "
             "starting Mailhaven, which hand the key file to the migration")
WRONG_KEY = ("Revision 0017: the master key file does not open this database's vault keys; "
             "is it this installation's key file?")


@dataclass(frozen=True)
class _Key:
    """What the vault needs of a key row to seal or open under it."""

    id: str
    wrapped_key: bytes


def _vault():
    return context.config.attributes.get("vault")


def _batches(conn: sa.Connection, query: str, start: object) -> Iterator[Sequence[sa.Row]]:
    """The rows of `query` (ordered by its first column, `> :last`), BATCH at a time."""
    last = start
    while rows := conn.execute(sa.text(query), {"last": last, "n": BATCH}).all():
        yield rows
        last = rows[-1][0]


def upgrade() -> None:
    conn = op.get_bind()
    op.add_column('events', sa.Column('message_id_index', sa.String(length=64), nullable=True))
    op.add_column('deliveries', sa.Column('message_id_sealed', sa.LargeBinary(), nullable=True))
    op.add_column('privacy_requests',
                  sa.Column('extension_sealed', sa.LargeBinary(), nullable=True))
    held = conn.execute(sa.text(
        "SELECT EXISTS (SELECT 1 FROM messages WHERE message_id <> '') OR EXISTS (SELECT 1 FROM events"
        " WHERE message_id <> '') OR EXISTS (SELECT 1 FROM privacy_requests"
        " WHERE extended_reason IS NOT NULL)")).scalar()
    if held:
        vault = _vault()
        if vault is None:
            raise RuntimeError(NEEDS_KEY)
        try:
            _seal(conn, vault)
        except InvalidTag:
            raise RuntimeError(WRONG_KEY) from None
    op.drop_index('ix_messages_message_id', table_name='messages')
    # In place (SQLite 3.35 and later, PostgreSQL): no table rebuild, see 0006.
    op.execute('ALTER TABLE messages DROP COLUMN message_id')
    op.execute('ALTER TABLE events DROP COLUMN message_id')
    op.execute('ALTER TABLE privacy_requests DROP COLUMN extended_reason')


def _seal(conn: sa.Connection, vault) -> None:
    """Index and seal the clear values, and rewrite every row that held one without it."""
    # Each copy whose recipient's key still exists gets the id sealed for them.
    for rows in _batches(conn, "SELECT d.id, m.message_id, k.id, k.wrapped_key"
                               " FROM deliveries d JOIN messages m ON m.id = d.message_id"
                               " JOIN vault_keys k ON k.id = d.subject_key_id"
                               " WHERE d.id > :last AND m.message_id <> ''"
                               " ORDER BY d.id LIMIT :n", 0):
        conn.execute(sa.text("UPDATE deliveries SET message_id_sealed = :sealed WHERE id = :id"),
                     [{"id": i, "sealed": vault.seal_text(_Key(k, bytes(w)), m,
                                                          "delivery.message_id")}
                      for i, m, k, w in rows])
    conn.execute(sa.text("UPDATE messages SET message_id = '' WHERE message_id <> ''"))
    index = functools.cache(vault.message_index)  # a message's events share its id
    for rows in _batches(conn, "SELECT id, account_id, message_id FROM events WHERE id > :last"
                               " AND message_id <> '' ORDER BY id LIMIT :n", 0):
        conn.execute(sa.text("UPDATE events SET message_id_index = :index, message_id = NULL"
                             " WHERE id = :id"),
                     [{"id": i, "index": index(a, m)} for i, a, m in rows])
    # A reason whose subject's key is gone was erased already: it is not kept.
    rows = conn.execute(sa.text(
        "SELECT r.id, r.extended_reason, k.id, k.wrapped_key FROM privacy_requests r"
        " LEFT JOIN vault_keys k ON k.id = r.key_id"
        " WHERE r.extended_reason IS NOT NULL")).all()
    if rows:
        conn.execute(sa.text("UPDATE privacy_requests SET extension_sealed = :s,"
                             " extended_reason = NULL WHERE id = :id"),
                     [{"id": i, "s": vault.seal_text(_Key(k, bytes(w)), reason,
                                                     "privacy.extension") if k else None}
                      for i, reason, k, w in rows])


def downgrade() -> None:
    conn = op.get_bind()
    op.add_column('messages', sa.Column('message_id', sa.String(length=255), nullable=False,
                                        server_default=''))
    op.add_column('events', sa.Column('message_id', sa.String(length=255), nullable=True))
    op.add_column('privacy_requests', sa.Column('extended_reason', sa.Text(), nullable=True))
    vault = _vault()
    if vault is not None:
        _open(conn, vault)
    op.execute('ALTER TABLE events DROP COLUMN message_id_index')
    op.execute('ALTER TABLE deliveries DROP COLUMN message_id_sealed')
    op.execute('ALTER TABLE privacy_requests DROP COLUMN extension_sealed')
    op.create_index('ix_messages_message_id', 'messages', ['message_id'])


def _open(conn: sa.Connection, vault) -> None:
    """The clear values back from their sealed copies, where a key still opens them."""
    for rows in _batches(conn, "SELECT d.id, d.message_id, d.message_id_sealed, k.id,"
                               " k.wrapped_key FROM deliveries d"
                               " JOIN vault_keys k ON k.id = d.subject_key_id"
                               " WHERE d.id > :last AND d.message_id_sealed IS NOT NULL"
                               " ORDER BY d.id LIMIT :n", 0):
        conn.execute(sa.text("UPDATE messages SET message_id = :m WHERE id = :id"),
                     [{"id": s, "m": vault.open_text(_Key(k, bytes(w)), bytes(sealed),
                                                     "delivery.message_id")}
                      for _, s, sealed, k, w in rows])
    conn.execute(sa.text(
        "UPDATE events SET message_id = (SELECT m.message_id FROM messages m"
        " WHERE m.id = events.storage_key) WHERE storage_key IS NOT NULL"))
    rows = conn.execute(sa.text(
        "SELECT r.id, r.extension_sealed, k.id, k.wrapped_key FROM privacy_requests r"
        " JOIN vault_keys k ON k.id = r.key_id WHERE r.extension_sealed IS NOT NULL")).all()
    if rows:
        conn.execute(sa.text("UPDATE privacy_requests SET extended_reason = :r WHERE id = :id"),
                     [{"id": i, "r": vault.open_text(_Key(k, bytes(w)), bytes(sealed),
                                                     "privacy.extension")}
                      for i, sealed, k, w in rows])
