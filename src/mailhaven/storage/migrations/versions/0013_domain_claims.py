"""a domain name is claimed by verifying it: unique per account, and among verified domains

Several accounts may add the same name; only one copy of it can be `active` (a partial
unique index), so the first account whose records DNS shows takes it. The downgrade
restores one row per name and fails if several accounts hold the same name by then.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

VERIFIED = sa.text("state = 'active'")


def upgrade() -> None:
    with op.batch_alter_table('domains', schema=None) as batch_op:
        batch_op.drop_constraint('uq_domains_name', type_='unique')
        batch_op.create_unique_constraint('uq_domains_name_account', ['name', 'account_id'])
    op.create_index('uq_domains_verified_name', 'domains', ['name'], unique=True,
                    sqlite_where=VERIFIED, postgresql_where=VERIFIED)


def downgrade() -> None:
    op.drop_index('uq_domains_verified_name', table_name='domains')
    with op.batch_alter_table('domains', schema=None) as batch_op:
        batch_op.drop_constraint('uq_domains_name_account', type_='unique')
        batch_op.create_unique_constraint('uq_domains_name', ['name'])
