"""region_directory: which region holds an account, a domain, an API key (SPEC N11)

Revision ID: 0034
Revises: 0033
"""

import sqlalchemy as sa
from alembic import op

revision = '0034'
down_revision = '0033'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('region_directory',
    sa.Column('entry_index', sa.String(length=64), nullable=False),
    sa.Column('region', sa.String(length=8), nullable=False),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('entry_index', name=op.f('pk_region_directory'))
    )


def downgrade() -> None:
    op.drop_table('region_directory')
