"""notice_announcements: each region's record that a significant amendment was mailed to its
holders (N12), committed with the mails, so the scheduler completes a failed announcement
and never repeats one

Revision ID: 0039
Revises: 0038
"""

import sqlalchemy as sa
from alembic import op

revision = '0039'
down_revision = '0038'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('notice_announcements',
    sa.Column('version', sa.String(length=32), nullable=False),
    sa.Column('announced_at', sa.Float(), nullable=False),
    sa.Column('mailed', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('version', name=op.f('pk_notice_announcements'))
    )
    # Amendments published before: announced already where the notices are kept with the
    # accounts (one database); not mailed again.
    op.execute("INSERT INTO notice_announcements (version, announced_at, mailed) "
               "SELECT version, published_at, 0 FROM privacy_notices WHERE significant")


def downgrade() -> None:
    op.drop_table('notice_announcements')
