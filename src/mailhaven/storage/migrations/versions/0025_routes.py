"""routes: Mailgun's Routes, an account's rules for received mail, sealed

The expression, actions and description are sealed under the route's own content key;
deleting that key deletes the route (ON DELETE CASCADE).

Revision ID: 0025
Revises: 0024
"""

import sqlalchemy as sa
from alembic import op

revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('routes',
    sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
    sa.Column('public_id', sa.String(length=24), nullable=False),
    sa.Column('account_id', sa.String(length=24), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('content_key_id', sa.String(length=24), nullable=False),
    sa.Column('details_sealed', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_routes_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['content_key_id'], ['vault_keys.id'], name=op.f('fk_routes_content_key_id_vault_keys'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_routes')),
    sa.UniqueConstraint('public_id', name=op.f('uq_routes_public_id'))
    )
    op.create_index(op.f('ix_routes_account_id'), 'routes', ['account_id'], unique=False)
    op.create_index(op.f('ix_routes_content_key_id'), 'routes', ['content_key_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_routes_content_key_id'), table_name='routes')
    op.drop_index(op.f('ix_routes_account_id'), table_name='routes')
    op.drop_table('routes')
