"""mailing_lists and list_members: Mailgun's mailing lists, members sealed per subject

A list (per account, by its address on one of the account's domains) keeps its name and
description sealed under a content key of its own; a member's address, name and vars are
sealed under the member's subject key and found by blind index. Deleting either key deletes
the row (ON DELETE CASCADE): erasing a member erases their memberships.

Revision ID: 0026
Revises: 0024
"""

import sqlalchemy as sa
from alembic import op

revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('mailing_lists',
    sa.Column('id', sa.String(length=24), nullable=False),
    sa.Column('account_id', sa.String(length=24), nullable=False),
    sa.Column('domain_id', sa.String(length=24), nullable=False),
    sa.Column('address', sa.String(length=320), nullable=False),
    sa.Column('access_level', sa.String(length=16), nullable=False),
    sa.Column('reply_preference', sa.String(length=16), nullable=False),
    sa.Column('content_key_id', sa.String(length=24), nullable=False),
    sa.Column('details_sealed', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_mailing_lists_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['content_key_id'], ['vault_keys.id'], name=op.f('fk_mailing_lists_content_key_id_vault_keys'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['domain_id'], ['domains.id'], name=op.f('fk_mailing_lists_domain_id_domains'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mailing_lists')),
    sa.UniqueConstraint('account_id', 'address', name=op.f('uq_mailing_lists_account_id'))
    )
    op.create_index(op.f('ix_mailing_lists_account_id'), 'mailing_lists', ['account_id'], unique=False)
    op.create_index(op.f('ix_mailing_lists_content_key_id'), 'mailing_lists', ['content_key_id'], unique=False)
    op.create_index(op.f('ix_mailing_lists_domain_id'), 'mailing_lists', ['domain_id'], unique=False)
    op.create_table('list_members',
    sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
    sa.Column('list_id', sa.String(length=24), nullable=False),
    sa.Column('account_id', sa.String(length=24), nullable=False),
    sa.Column('address_index', sa.String(length=64), nullable=False),
    sa.Column('subject_key_id', sa.String(length=24), nullable=False),
    sa.Column('member_sealed', sa.LargeBinary(), nullable=False),
    sa.Column('subscribed', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_list_members_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['list_id'], ['mailing_lists.id'], name=op.f('fk_list_members_list_id_mailing_lists'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['subject_key_id'], ['vault_keys.id'], name=op.f('fk_list_members_subject_key_id_vault_keys'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_list_members')),
    sa.UniqueConstraint('list_id', 'address_index', name=op.f('uq_list_members_list_id'))
    )
    op.create_index(op.f('ix_list_members_account_id'), 'list_members', ['account_id'], unique=False)
    op.create_index(op.f('ix_list_members_address_index'), 'list_members', ['address_index'], unique=False)
    op.create_index(op.f('ix_list_members_list_id'), 'list_members', ['list_id'], unique=False)
    op.create_index(op.f('ix_list_members_subject_key_id'), 'list_members', ['subject_key_id'], unique=False)


def downgrade() -> None:
    op.drop_table('list_members')
    op.drop_table('mailing_lists')
