"""templates and template_versions: Mailgun's stored templates, sealed

A template (per domain, by name) and its versions (by tag, one of them active). What the
customer wrote (content, description, author, comments, stored headers) is sealed under the
template's own content key; deleting that key deletes the template (ON DELETE CASCADE).

Revision ID: 0020
Revises: 0019 (main's head when merged; first written on 0018)
"""

import sqlalchemy as sa
from alembic import op

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('templates',
    sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
    sa.Column('public_id', sa.String(length=36), nullable=False),
    sa.Column('account_id', sa.String(length=24), nullable=False),
    sa.Column('domain_id', sa.String(length=24), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('content_key_id', sa.String(length=24), nullable=False),
    sa.Column('details_sealed', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_templates_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['content_key_id'], ['vault_keys.id'], name=op.f('fk_templates_content_key_id_vault_keys'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['domain_id'], ['domains.id'], name=op.f('fk_templates_domain_id_domains'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_templates')),
    sa.UniqueConstraint('domain_id', 'name', name=op.f('uq_templates_domain_id')),
    sa.UniqueConstraint('public_id', name=op.f('uq_templates_public_id'))
    )
    op.create_index(op.f('ix_templates_account_id'), 'templates', ['account_id'], unique=False)
    op.create_index(op.f('ix_templates_content_key_id'), 'templates', ['content_key_id'], unique=False)
    op.create_index(op.f('ix_templates_domain_id'), 'templates', ['domain_id'], unique=False)
    op.create_table('template_versions',
    sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
    sa.Column('public_id', sa.String(length=36), nullable=False),
    sa.Column('template_id', BIG_ID, nullable=False),
    sa.Column('tag', sa.String(length=255), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('content_sealed', sa.LargeBinary(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['template_id'], ['templates.id'], name=op.f('fk_template_versions_template_id_templates'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_template_versions')),
    sa.UniqueConstraint('public_id', name=op.f('uq_template_versions_public_id')),
    sa.UniqueConstraint('template_id', 'tag', name=op.f('uq_template_versions_template_id'))
    )
    op.create_index(op.f('ix_template_versions_template_id'), 'template_versions', ['template_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_template_versions_template_id'), table_name='template_versions')
    op.drop_table('template_versions')
    op.drop_index(op.f('ix_templates_domain_id'), table_name='templates')
    op.drop_index(op.f('ix_templates_content_key_id'), table_name='templates')
    op.drop_index(op.f('ix_templates_account_id'), table_name='templates')
    op.drop_table('templates')
