"""tags

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('tags',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('domain_id', sa.String(length=24), nullable=False),
    sa.Column('tag', sa.String(length=256), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['domain_id'], ['domains.id'], name=op.f('fk_tags_domain_id_domains'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tags')),
    sa.UniqueConstraint('domain_id', 'tag', name=op.f('uq_tags_domain_id'))
    )
    # Tags already counted before this revision become tags of their domain.
    op.execute("INSERT INTO tags (domain_id, tag, description) "
               "SELECT DISTINCT domain_id, tag, '' FROM stat_counts WHERE tag <> ''")


def downgrade() -> None:
    op.drop_table('tags')
