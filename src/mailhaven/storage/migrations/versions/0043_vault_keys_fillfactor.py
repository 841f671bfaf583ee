"""vault_keys keeps room on each page (fillfactor 60, PostgreSQL only: SQLite has no such
thing): an erasure destroys its subject's message keys by emptying their wrapped key, no
indexed column changed, and with room on the page PostgreSQL writes each new version
there (a HOT update) instead of new entries in the table's three indexes. 60: when every
key on a page is destroyed at once (one subject's 50,000 keys made in a row), the emptied
versions, ~0.6 of a row each, all fit beside the old. Pages written before this revision
stay full until the table is rewritten (VACUUM FULL vault_keys) or their rows go.

Revision ID: 0043
Revises: 0042
"""

from alembic import op

revision = '0043'
down_revision = '0042'
branch_labels = None
depends_on = None

FILLFACTOR = 60


def upgrade() -> None:
    if op.get_bind().dialect.name != 'sqlite':
        op.execute(f"ALTER TABLE vault_keys SET (fillfactor = {FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name != 'sqlite':
        op.execute("ALTER TABLE vault_keys RESET (fillfactor)")
