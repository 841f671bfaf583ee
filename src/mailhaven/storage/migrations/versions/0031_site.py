"""platform, contact_messages: the platform's own account, its contact form's messages

Revision ID: 0031
Revises: 0030
"""

import sqlalchemy as sa
from alembic import op

revision = '0031'
down_revision = '0030'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('platform',
    sa.Column('key', sa.String(length=16), nullable=False),
    sa.Column('account_id', sa.String(length=24), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_platform_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_platform'))
    )
    op.create_table('contact_messages',
    sa.Column('id', sa.String(length=24), nullable=False),
    sa.Column('account_id', sa.String(length=24), nullable=False),
    sa.Column('subject_key_id', sa.String(length=24), nullable=True),
    sa.Column('email_index', sa.String(length=64), nullable=False),
    sa.Column('name_sealed', sa.LargeBinary(), nullable=False),
    sa.Column('email_sealed', sa.LargeBinary(), nullable=False),
    sa.Column('company_sealed', sa.LargeBinary(), nullable=False),
    sa.Column('message_sealed', sa.LargeBinary(), nullable=False),
    sa.Column('topic', sa.String(length=16), nullable=False),
    sa.Column('consent_text_version', sa.String(length=32), nullable=False),
    sa.Column('consent_text', sa.Text(), nullable=False),
    sa.Column('received_at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_contact_messages_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['subject_key_id'], ['vault_keys.id'], name=op.f('fk_contact_messages_subject_key_id_vault_keys'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contact_messages'))
    )
    with op.batch_alter_table('contact_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contact_messages_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_contact_messages_email_index'), ['email_index'], unique=False)
        batch_op.create_index('ix_contact_messages_received_at', ['received_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_contact_messages_subject_key_id'), ['subject_key_id'], unique=False)


def downgrade() -> None:
    op.drop_table('contact_messages')
    op.drop_table('platform')
