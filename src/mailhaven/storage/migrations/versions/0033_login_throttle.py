"""login_failures, users.totp_last_step: login throttling and single-use TOTP codes

Failed logins are kept 15 minutes as blind indexes of the address and the client network,
so that every process counts them alike.

Revision ID: 0033
Revises: 0031
"""

import sqlalchemy as sa
from alembic import op

revision = '0033'
down_revision = '0031'  # the contract says 0030; 0031 (site) is merged in this branch
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('login_failures',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('address_index', sa.String(length=64), nullable=False),
    sa.Column('network_index', sa.String(length=64), nullable=False),
    sa.Column('at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_login_failures'))
    )
    with op.batch_alter_table('login_failures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_login_failures_address_index'), ['address_index'], unique=False)
        batch_op.create_index(batch_op.f('ix_login_failures_network_index'), ['network_index'], unique=False)
        batch_op.create_index(batch_op.f('ix_login_failures_at'), ['at'], unique=False)
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('totp_last_step', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('totp_last_step')
    with op.batch_alter_table('login_failures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_login_failures_at'))
        batch_op.drop_index(batch_op.f('ix_login_failures_network_index'))
        batch_op.drop_index(batch_op.f('ix_login_failures_address_index'))
    op.drop_table('login_failures')
