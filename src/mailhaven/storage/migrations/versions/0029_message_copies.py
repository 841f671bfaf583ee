"""messages.source_id: the received message a copy was made from (a route's forward to an
address, a mailing list's distribution), so that erasing the sender of received mail
erases its copies too

Revision ID: 0029
Revises: 0027
"""

import sqlalchemy as sa
from alembic import op

revision = '0029'
down_revision = '0027'
branch_labels = None
depends_on = None

COPIES = sa.text("source_id IS NOT NULL")


def upgrade() -> None:
    op.add_column('messages', sa.Column('source_id', sa.String(length=24), nullable=True))
    op.create_index('ix_messages_source_id', 'messages', ['source_id'], unique=False,
                    postgresql_where=COPIES, sqlite_where=COPIES)


def downgrade() -> None:
    op.drop_index('ix_messages_source_id', table_name='messages')
    # In place, as 0024 drops a column: SQLite 3.35 and later, and PostgreSQL.
    op.execute('ALTER TABLE messages DROP COLUMN source_id')
