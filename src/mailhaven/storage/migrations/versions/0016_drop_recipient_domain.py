"""deliveries.recipient_domain dropped: declared needed to route, never read

A clear column beside the sealed address says where a recipient gets their mail, and it
outlived an erasure. Routing reads the domain from the unsealed address at delivery.
SQLite (3.35 and later) and PostgreSQL both drop a column in place.

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute('ALTER TABLE deliveries DROP COLUMN recipient_domain')


def downgrade() -> None:
    # The domains are not kept anywhere else in clear: the column comes back empty.
    op.add_column('deliveries', sa.Column('recipient_domain', sa.String(length=253),
                                          nullable=False, server_default=''))
