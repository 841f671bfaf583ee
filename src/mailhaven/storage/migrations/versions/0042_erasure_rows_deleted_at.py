"""erasures.rows_deleted_at: an erasure destroys the subject's keys in the request and
leaves the bulk deletion of their rows to a background job; NULL while some are left
(erasures made before this revision deleted everything at once: their time is copied)

Revision ID: 0042
Revises: 0041
"""

import sqlalchemy as sa
from alembic import op

revision = '0042'
down_revision = '0041'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('erasures') as batch_op:
        batch_op.add_column(sa.Column('rows_deleted_at', sa.Float(), nullable=True))
        batch_op.create_index(batch_op.f('ix_erasures_rows_deleted_at'), ['rows_deleted_at'],
                              unique=False)
    op.execute("UPDATE erasures SET rows_deleted_at = at")


def downgrade() -> None:
    with op.batch_alter_table('erasures') as batch_op:
        batch_op.drop_index(batch_op.f('ix_erasures_rows_deleted_at'))
        batch_op.drop_column('rows_deleted_at')
