"""revocations: SQLite's count of revoked keys, accounts and domains, read by every process
on the machine so their caches drop them (PostgreSQL uses NOTIFY and leaves it empty); its
one row is made by the first revocation, so a new database stays empty

Revision ID: 0041
Revises: 0039
"""

import sqlalchemy as sa
from alembic import op

revision = '0041'
down_revision = '0039'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('revocations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_revocations'))
    )


def downgrade() -> None:
    op.drop_table('revocations')
