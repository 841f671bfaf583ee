"""region_transfers: an account's personal data read by an operator from another region (N11)

Revision ID: 0038
Revises: 0037
"""

import sqlalchemy as sa
from alembic import op

revision = '0038'
down_revision = '0037'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('region_transfers',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True,
              nullable=False),
    sa.Column('account_id', sa.String(length=24), nullable=False),
    sa.Column('from_region', sa.String(length=8), nullable=False),
    sa.Column('to_region', sa.String(length=8), nullable=False),
    sa.Column('what', sa.Text(), nullable=False),
    sa.Column('purpose', sa.String(length=200), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_region_transfers'))
    )
    op.create_index('ix_region_transfers_account', 'region_transfers', ['account_id', 'at'],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_region_transfers_account', table_name='region_transfers')
    op.drop_table('region_transfers')
