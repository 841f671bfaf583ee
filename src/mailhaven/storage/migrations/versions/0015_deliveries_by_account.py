"""an index of the queued deliveries by account, for claims that share the worker fairly

The claim finds the accounts with due copies by skipping through this index (a recursive
query, one step per account) and takes each account's oldest due copies from it, so one
account's backlog costs the claim no more than any other account's. Partial: only queued
rows, so the delivered history neither slows the walk nor grows the index.

Revision ID: 0015
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0013'
branch_labels = None
depends_on = None

QUEUED = sa.text("status = 'queued'")


def upgrade() -> None:
    op.create_index('ix_deliveries_queued_by_account', 'deliveries',
                    ['account_id', 'next_attempt_at'], unique=False,
                    postgresql_where=QUEUED, sqlite_where=QUEUED)


def downgrade() -> None:
    op.drop_index('ix_deliveries_queued_by_account', table_name='deliveries')
