"""counters for the privacy request form's limits per client network, domain and mailbox

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('form_counters',
    sa.Column('bucket_index', sa.String(length=64), nullable=False),
    sa.Column('window_start', sa.Float(), nullable=False),
    sa.Column('hits', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('bucket_index', 'window_start', name=op.f('pk_form_counters'))
    )
    with op.batch_alter_table('form_counters', schema=None) as batch_op:
        batch_op.create_index('ix_form_counters_window_start', ['window_start'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('form_counters', schema=None) as batch_op:
        batch_op.drop_index('ix_form_counters_window_start')
    op.drop_table('form_counters')
