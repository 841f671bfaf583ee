"""indexes for the Events API's recipient filter and for erasing keys at scale

A recipient's events by account, domain and time and a message's events by account (in
place of the recipient-only and storage-key-only indexes), and an index on every column that references vault_keys ON DELETE SET NULL, so destroying a key
does not scan the table that points at it.

Revision ID: 0011
Revises: 0009
"""

from alembic import op

revision = '0011'
down_revision = '0009'
branch_labels = None
depends_on = None

KEY_REFERENCES = (("events", "key_id"), ("messages", "content_key_id"),
                  ("suppressions", "key_id"), ("privacy_requests", "key_id"))


def upgrade() -> None:
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_recipient_time', ['recipient_index', 'account_id',
                              'domain_id', 'timestamp', 'id'], unique=False)
        batch_op.create_index('ix_events_storage_key_account', ['storage_key', 'account_id'],
                              unique=False)
        batch_op.drop_index(batch_op.f('ix_events_recipient_index'))
        batch_op.drop_index(batch_op.f('ix_events_storage_key'))
    for table, column in KEY_REFERENCES:
        op.create_index(op.f(f'ix_{table}_{column}'), table, [column], unique=False)


def downgrade() -> None:
    for table, column in KEY_REFERENCES:
        op.drop_index(op.f(f'ix_{table}_{column}'), table_name=table)
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_events_recipient_index'), ['recipient_index'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_events_storage_key'), ['storage_key'],
                              unique=False)
        batch_op.drop_index('ix_events_recipient_time')
        batch_op.drop_index('ix_events_storage_key_account')
