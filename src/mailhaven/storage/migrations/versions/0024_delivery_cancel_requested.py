"""deliveries.cancel_requested: a copy `DELETE /v3/{domain}/envelopes` found in flight

The cancellation can't settle a copy a worker holds (the worker's fenced settle would then
miss it and its outcome go unrecorded), so it marks the copy instead; the attempt's settle
writes `cancelled` rather than queueing it again, unless the attempt delivered or failed
for good.

Revision ID: 0024
Revises: 0020
"""

import sqlalchemy as sa
from alembic import op

revision = '0024'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('deliveries', sa.Column('cancel_requested', sa.Boolean(), nullable=False,
                                          server_default=sa.false()))


def downgrade() -> None:
    # In place, as 0016 drops a column: SQLite 3.35 and later, and PostgreSQL.
    op.execute('ALTER TABLE deliveries DROP COLUMN cancel_requested')
