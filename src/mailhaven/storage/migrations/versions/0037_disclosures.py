"""disclosures: the disclosure log, its subjects and the Article 19 notifications (SPEC N10)

Revision ID: 0037
Revises: 0036
"""

import sqlalchemy as sa
from alembic import op

revision = '0037'
down_revision = '0036'
branch_labels = None
depends_on = None

PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    op.create_table('disclosures',
    sa.Column('id', sa.String(length=24), nullable=False),
    sa.Column('account_id', sa.String(length=24), nullable=False),
    sa.Column('recipient', sa.String(length=200), nullable=False),
    sa.Column('recipient_kind', sa.String(length=16), nullable=False),
    sa.Column('subprocessor_id', sa.String(length=24), nullable=True),
    sa.Column('endpoint', sa.String(length=2048), nullable=True),
    sa.Column('signing_key_sealed', sa.LargeBinary(), nullable=True),
    sa.Column('legal_basis', sa.String(length=200), nullable=False),
    sa.Column('purpose', sa.Text(), nullable=False),
    sa.Column('data_categories', sa.Text(), nullable=False),
    sa.Column('decided_by', sa.String(length=200), nullable=False),
    sa.Column('reference', sa.String(length=120), nullable=True),
    sa.Column('at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_disclosures_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_disclosures'))
    )
    op.create_index('ix_disclosures_account_at', 'disclosures', ['account_id', 'at'], unique=False)
    op.create_table('disclosure_subjects',
    sa.Column('disclosure_id', sa.String(length=24), nullable=False),
    sa.Column('subject_index', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['disclosure_id'], ['disclosures.id'], name=op.f('fk_disclosure_subjects_disclosure_id_disclosures'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('disclosure_id', 'subject_index', name=op.f('pk_disclosure_subjects'))
    )
    op.create_index(op.f('ix_disclosure_subjects_subject_index'), 'disclosure_subjects', ['subject_index'], unique=False)
    op.create_table('disclosure_notifications',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.String(length=24), nullable=False),
    sa.Column('request_id', sa.String(length=24), nullable=True),
    sa.Column('event', sa.String(length=16), nullable=False),
    sa.Column('party', sa.String(length=200), nullable=False),
    sa.Column('party_kind', sa.String(length=16), nullable=False),
    sa.Column('party_id', sa.String(length=24), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('subject_sealed', sa.LargeBinary(), nullable=True),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('attempt_log', sa.Text(), nullable=False),
    sa.Column('next_attempt_at', sa.Float(), nullable=False),
    sa.Column('lease_owner', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_disclosure_notifications'))
    )
    op.create_index(op.f('ix_disclosure_notifications_account_id'), 'disclosure_notifications', ['account_id'], unique=False)
    op.create_index(op.f('ix_disclosure_notifications_request_id'), 'disclosure_notifications', ['request_id'], unique=False)
    op.create_index('ix_disclosure_notifications_due', 'disclosure_notifications', ['status', 'next_attempt_at'], unique=False)
    op.create_index('ix_disclosure_notifications_pending_by_account', 'disclosure_notifications',
                    ['account_id', 'next_attempt_at'], unique=False,
                    postgresql_where=PENDING, sqlite_where=PENDING)


def downgrade() -> None:
    op.drop_table('disclosure_notifications')
    op.drop_index(op.f('ix_disclosure_subjects_subject_index'), table_name='disclosure_subjects')
    op.drop_table('disclosure_subjects')
    op.drop_index('ix_disclosures_account_at', table_name='disclosures')
    op.drop_table('disclosures')
