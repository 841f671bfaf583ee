"""domains.message_ttl and domains.encrypt_incoming_message

Mailgun's v4 domain settings: how long a domain's stored messages are kept (seconds; NULL
keeps them for the account's message_bodies retention period), and whether its incoming
messages are to be encrypted (set once, when the domain is created).

Revision ID: 0021
Revises: 0018
"""

import sqlalchemy as sa
from alembic import op

revision = '0021'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('domains', schema=None) as batch_op:
        batch_op.add_column(sa.Column('message_ttl', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('encrypt_incoming_message', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('domains', schema=None) as batch_op:
        batch_op.drop_column('encrypt_incoming_message')
        batch_op.drop_column('message_ttl')
