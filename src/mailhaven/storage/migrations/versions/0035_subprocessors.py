"""subprocessors: the register of companies that receive personal data (SPEC N10)

Revision ID: 0035
Revises: 0034
"""

import sqlalchemy as sa
from alembic import op

revision = '0035'
down_revision = '0034'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('subprocessors',
    sa.Column('id', sa.String(length=24), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('purpose', sa.Text(), nullable=False),
    sa.Column('data_categories', sa.Text(), nullable=False),
    sa.Column('location', sa.String(length=200), nullable=False),
    sa.Column('region', sa.String(length=8), nullable=True),
    sa.Column('transfer_mechanism', sa.String(length=64), nullable=False),
    sa.Column('contract_date', sa.String(length=10), nullable=False),
    sa.Column('notification_endpoint', sa.String(length=2048), nullable=True),
    sa.Column('signing_key_sealed', sa.LargeBinary(), nullable=True),
    sa.Column('added_at', sa.Float(), nullable=False),
    sa.Column('effective_at', sa.Float(), nullable=False),
    sa.Column('removed_at', sa.Float(), nullable=True),
    sa.Column('replaces_id', sa.String(length=24), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subprocessors'))
    )


def downgrade() -> None:
    op.drop_table('subprocessors')
