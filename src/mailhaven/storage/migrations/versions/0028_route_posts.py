"""route_posts: the queue of route actions' POSTs (forward to a URL, store's notify)

Revision ID: 0028
Revises: 0024
"""

import sqlalchemy as sa
from alembic import op

revision = '0028'
down_revision = '0026'
branch_labels = None
depends_on = None

PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    op.create_table('route_posts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.String(length=24), nullable=False),
    sa.Column('domain_id', sa.String(length=24), nullable=False),
    sa.Column('storage_key', sa.String(length=24), nullable=False),
    sa.Column('route_id', sa.String(length=24), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('subject_key_id', sa.String(length=24), nullable=True),
    sa.Column('recipient_sealed', sa.LargeBinary(), nullable=False),
    sa.Column('url_sealed', sa.LargeBinary(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('attempt_log', sa.Text(), nullable=False),
    sa.Column('next_attempt_at', sa.Float(), nullable=False),
    sa.Column('lease_owner', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['domain_id'], ['domains.id'], name=op.f('fk_route_posts_domain_id_domains'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['storage_key'], ['messages.id'], name=op.f('fk_route_posts_storage_key_messages'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['subject_key_id'], ['vault_keys.id'], name=op.f('fk_route_posts_subject_key_id_vault_keys'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_route_posts'))
    )
    with op.batch_alter_table('route_posts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_route_posts_account_id'), ['account_id'], unique=False)
        batch_op.create_index('ix_route_posts_due', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_route_posts_storage_key'), ['storage_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_route_posts_subject_key_id'), ['subject_key_id'], unique=False)
    op.create_index('ix_route_posts_pending_by_account', 'route_posts',
                    ['account_id', 'next_attempt_at'], unique=False,
                    postgresql_where=PENDING, sqlite_where=PENDING)


def downgrade() -> None:
    op.drop_index('ix_route_posts_pending_by_account', table_name='route_posts')
    op.drop_table('route_posts')
