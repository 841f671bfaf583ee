"""deliveries.first_attempt_at: when a copy's first delivery attempt began

Events of delivered and failed copies say how long after acceptance the first attempt came
(Mailgun's `delivery-status.first-delivery-attempt-seconds`); after retries that time is
no longer the claim's own, so the first claim writes it down. Copies queued before this
revision have none, and their events leave the field out.

Revision ID: 0023
Revises: 0021
"""

import sqlalchemy as sa
from alembic import op

revision = '0023'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('deliveries', sa.Column('first_attempt_at', sa.Float(), nullable=True))


def downgrade() -> None:
    # In place, as 0016 drops a column: SQLite 3.35 and later, and PostgreSQL.
    op.execute('ALTER TABLE deliveries DROP COLUMN first_attempt_at')
