"""retention policies: an account's own period per data category

Revision ID: 0009
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('retention_policies',
    sa.Column('account_id', sa.String(length=24), nullable=False),
    sa.Column('category', sa.String(length=32), nullable=False),
    sa.Column('days', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_retention_policies_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('account_id', 'category', name=op.f('pk_retention_policies'))
    )


def downgrade() -> None:
    op.drop_table('retention_policies')
