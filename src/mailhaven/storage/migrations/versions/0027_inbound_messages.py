"""inbound_messages: mail received at the MX, one row per (message, recipient), processed
from a leased queue

The recipient and the envelope sender are sealed under their subject keys and found by
blind index (the From address too, for erasure); the message itself is a `messages` row of
kind "inbound", sealed under a content key as outbound messages are.

Revision ID: 0027
Revises: 0024
"""

import sqlalchemy as sa
from alembic import op

revision = '0027'
down_revision = '0028'
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
WAITING = sa.text("status = 'waiting'")


def upgrade() -> None:
    op.create_table('inbound_messages',
    sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
    sa.Column('message_id', sa.String(length=24), nullable=False),
    sa.Column('account_id', sa.String(length=24), nullable=False),
    sa.Column('domain_id', sa.String(length=24), nullable=False),
    sa.Column('recipient_key_id', sa.String(length=24), nullable=True),
    sa.Column('recipient_sealed', sa.LargeBinary(), nullable=False),
    sa.Column('recipient_index', sa.String(length=64), nullable=False),
    sa.Column('sender_key_id', sa.String(length=24), nullable=True),
    sa.Column('sender_sealed', sa.LargeBinary(), nullable=True),
    sa.Column('sender_index', sa.String(length=64), nullable=True),
    sa.Column('from_index', sa.String(length=64), nullable=True),
    sa.Column('spf', sa.String(length=12), nullable=False),
    sa.Column('dkim', sa.String(length=12), nullable=False),
    sa.Column('dmarc', sa.String(length=12), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.String(length=120), nullable=True),
    sa.Column('next_attempt_at', sa.Float(), nullable=False),
    sa.Column('lease_owner', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_inbound_messages_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['domain_id'], ['domains.id'], name=op.f('fk_inbound_messages_domain_id_domains'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_inbound_messages_message_id_messages'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['recipient_key_id'], ['vault_keys.id'], name=op.f('fk_inbound_messages_recipient_key_id_vault_keys'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['sender_key_id'], ['vault_keys.id'], name=op.f('fk_inbound_messages_sender_key_id_vault_keys'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbound_messages'))
    )
    for column in ('message_id', 'account_id', 'domain_id', 'recipient_key_id',
                   'recipient_index', 'sender_index', 'from_index'):
        op.create_index(op.f(f'ix_inbound_messages_{column}'), 'inbound_messages', [column],
                        unique=False)
    op.create_index('ix_inbound_messages_waiting_by_account', 'inbound_messages',
                    ['account_id', 'next_attempt_at'], unique=False,
                    postgresql_where=WAITING, sqlite_where=WAITING)


def downgrade() -> None:
    op.drop_table('inbound_messages')  # its indexes go with it
