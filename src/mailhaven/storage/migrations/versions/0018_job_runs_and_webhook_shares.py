"""job_runs, the periodic jobs' last runs; an index of the pending webhook POSTs by account

`job_runs` records when each periodic job (retention, domain checks) last started and
finished, so that a restart or a second process does not run it again before its interval.
The webhook queue's claims now share out POSTs the way the delivery queue does, walking the
accounts with POSTs pending through this partial index (only pending rows: the sent history
neither slows the walk nor grows the index).

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None

PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    op.create_table('job_runs',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('last_started_at', sa.Float(), nullable=True),
    sa.Column('last_finished_at', sa.Float(), nullable=True),
    sa.Column('running_until', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_job_runs'))
    )
    op.create_index('ix_webhook_deliveries_pending_by_account', 'webhook_deliveries',
                    ['account_id', 'next_attempt_at'], unique=False,
                    postgresql_where=PENDING, sqlite_where=PENDING)


def downgrade() -> None:
    op.drop_index('ix_webhook_deliveries_pending_by_account', table_name='webhook_deliveries')
    op.drop_table('job_runs')
