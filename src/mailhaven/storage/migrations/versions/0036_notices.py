"""notices: the privacy notice's versions (main database) and objections to amendments
(SPEC N12)

Revision ID: 0036
Revises: 0035
"""

import sqlalchemy as sa
from alembic import op

revision = '0036'
down_revision = '0035'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('privacy_notices',
    sa.Column('version', sa.String(length=32), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('published_at', sa.Float(), nullable=False),
    sa.Column('effective_at', sa.Float(), nullable=False),
    sa.Column('significant', sa.Boolean(), nullable=False),
    sa.Column('in_force_at', sa.Float(), nullable=True),
    sa.Column('published_by', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('version', name=op.f('pk_privacy_notices'))
    )
    with op.batch_alter_table('privacy_notices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_privacy_notices_effective_at'), ['effective_at'],
                              unique=False)
    op.create_table('notice_objections',
    sa.Column('id', sa.String(length=24), nullable=False),
    sa.Column('account_id', sa.String(length=24), nullable=False),
    sa.Column('version', sa.String(length=32), nullable=False),
    sa.Column('objected_at', sa.Float(), nullable=False),
    sa.Column('scheduled_for', sa.Float(), nullable=False),
    sa.Column('withdrawn_at', sa.Float(), nullable=True),
    sa.Column('carried_out_at', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'],
                            name=op.f('fk_notice_objections_account_id_accounts'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notice_objections'))
    )
    with op.batch_alter_table('notice_objections', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notice_objections_account_id'), ['account_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_notice_objections_scheduled_for'),
                              ['scheduled_for'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('notice_objections', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notice_objections_scheduled_for'))
        batch_op.drop_index(batch_op.f('ix_notice_objections_account_id'))
    op.drop_table('notice_objections')
    with op.batch_alter_table('privacy_notices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_privacy_notices_effective_at'))
    op.drop_table('privacy_notices')
