"""auth_attempts, users.totp_last_step: login and mail throttling, single-use TOTP codes

Failed logins and mailed links are kept an hour as blind indexes of the address and the
client network, so that every process counts them alike.

Revision ID: 0033
Revises: 0032
"""

import sqlalchemy as sa
from alembic import op

revision = '0033'
down_revision = '0032'  # the contract says 0030; 0031 and 0032 are on main before it
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('auth_attempts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('address_index', sa.String(length=64), nullable=False),
    sa.Column('network_index', sa.String(length=64), nullable=False),
    sa.Column('at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_auth_attempts'))
    )
    with op.batch_alter_table('auth_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_auth_attempts_address_index'), ['address_index'], unique=False)
        batch_op.create_index(batch_op.f('ix_auth_attempts_network_index'), ['network_index'], unique=False)
        batch_op.create_index(batch_op.f('ix_auth_attempts_at'), ['at'], unique=False)
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('totp_last_step', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('totp_last_step')
    with op.batch_alter_table('auth_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_auth_attempts_at'))
        batch_op.drop_index(batch_op.f('ix_auth_attempts_network_index'))
        batch_op.drop_index(batch_op.f('ix_auth_attempts_address_index'))
    op.drop_table('auth_attempts')
