"""smtp_credentials, the logins SMTP submission authenticates

Revision ID: 0019
Revises: 0023
"""

import sqlalchemy as sa
from alembic import op

revision = '0019'
down_revision = '0023'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('smtp_credentials',
    sa.Column('id', sa.String(length=24), nullable=False),
    sa.Column('account_id', sa.String(length=24), nullable=False),
    sa.Column('domain_id', sa.String(length=24), nullable=False),
    sa.Column('login_index', sa.String(length=64), nullable=False),
    sa.Column('key_id', sa.String(length=24), nullable=True),
    sa.Column('login_sealed', sa.LargeBinary(), nullable=False),
    sa.Column('password_hash', sa.String(length=256), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('password_changed_at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_smtp_credentials_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['domain_id'], ['domains.id'], name=op.f('fk_smtp_credentials_domain_id_domains'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['key_id'], ['vault_keys.id'], name=op.f('fk_smtp_credentials_key_id_vault_keys'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_smtp_credentials')),
    sa.UniqueConstraint('domain_id', 'login_index', name=op.f('uq_smtp_credentials_domain_id'))
    )
    with op.batch_alter_table('smtp_credentials', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_smtp_credentials_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_smtp_credentials_key_id'), ['key_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('smtp_credentials', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_smtp_credentials_key_id'))
        batch_op.drop_index(batch_op.f('ix_smtp_credentials_account_id'))

    op.drop_table('smtp_credentials')
