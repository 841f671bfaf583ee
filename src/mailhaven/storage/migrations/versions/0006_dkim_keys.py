"""dkim keys: a table of their own, so a domain can publish several (rotation, Ed25519)

Revision ID: 0006
Revises: 0005

Each domain's key moves into `dkim_keys` as its active key. The sealed private key is copied
byte for byte: it stays sealed under the label `dkim:<domain id>`, as new keys are, so no
master key is needed here. The key row takes the domain's id, which no other key can have.

The four old columns are dropped with plain ALTER TABLE … DROP COLUMN (SQLite ≥ 3.35), not
in batch mode: batch mode rebuilds `domains`, and on SQLite, with foreign keys on, dropping
the old table deletes every row that references it with ON DELETE CASCADE (messages, events,
suppressions, stats and the keys just copied).
"""

import json

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

_OLD_COLUMNS = ('dkim_selector', 'dkim_key_size', 'dkim_private_key', 'dkim_public_key')


def upgrade() -> None:
    op.create_table('dkim_keys',
    sa.Column('id', sa.String(length=24), nullable=False),
    sa.Column('domain_id', sa.String(length=24), nullable=False),
    sa.Column('selector', sa.String(length=63), nullable=False),
    sa.Column('algorithm', sa.String(length=16), nullable=False),
    sa.Column('key_size', sa.Integer(), nullable=False),
    sa.Column('private_key', sa.LargeBinary(), nullable=False),
    sa.Column('public_key', sa.String(length=1024), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('activated_at', sa.Float(), nullable=True),
    sa.Column('retire_after', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['domain_id'], ['domains.id'], name=op.f('fk_dkim_keys_domain_id_domains'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dkim_keys')),
    sa.UniqueConstraint('domain_id', 'selector', name=op.f('uq_dkim_keys_domain_id'))
    )
    op.execute(
        "INSERT INTO dkim_keys (id, domain_id, selector, algorithm, key_size, private_key,"
        " public_key, state, created_at, activated_at, retire_after)"
        " SELECT id, id, dkim_selector, 'rsa-sha256', dkim_key_size, dkim_private_key,"
        " dkim_public_key, 'active', created_at, created_at, NULL FROM domains")
    # The last verification's DKIM result is now kept per selector.
    _move_dkim_status(to_selector=True)
    for name in _OLD_COLUMNS:
        op.drop_column('domains', name)


def downgrade() -> None:
    """Back to one key a domain: its active RSA key (every domain has one). Rotated keys
    are lost, as are Ed25519 keys; on SQLite the restored columns stay nullable (making them
    NOT NULL would need the table rebuild this migration avoids)."""
    op.add_column('domains', sa.Column('dkim_selector', sa.String(length=63), nullable=True))
    op.add_column('domains', sa.Column('dkim_key_size', sa.Integer(), nullable=True))
    op.add_column('domains', sa.Column('dkim_private_key', sa.LargeBinary(), nullable=True))
    op.add_column('domains', sa.Column('dkim_public_key', sa.String(length=1024), nullable=True))
    op.execute(
        "UPDATE domains SET"
        " dkim_selector = (SELECT selector FROM dkim_keys k WHERE k.domain_id = domains.id"
        "  AND k.algorithm = 'rsa-sha256' AND k.state = 'active'),"
        " dkim_key_size = (SELECT key_size FROM dkim_keys k WHERE k.domain_id = domains.id"
        "  AND k.algorithm = 'rsa-sha256' AND k.state = 'active'),"
        " dkim_private_key = (SELECT private_key FROM dkim_keys k WHERE k.domain_id = domains.id"
        "  AND k.algorithm = 'rsa-sha256' AND k.state = 'active'),"
        " dkim_public_key = (SELECT public_key FROM dkim_keys k WHERE k.domain_id = domains.id"
        "  AND k.algorithm = 'rsa-sha256' AND k.state = 'active')")
    _move_dkim_status(to_selector=False)
    if op.get_bind().dialect.name != 'sqlite':
        for name in _OLD_COLUMNS:
            op.alter_column('domains', name, nullable=False)
    op.drop_table('dkim_keys')


def _move_dkim_status(to_selector: bool) -> None:
    """Rename the DKIM entry of each domain's stored verification result: `dkim` then,
    `dkim:<selector>` now."""
    conn = op.get_bind()
    rows = conn.execute(sa.text(
        "SELECT d.id, d.dns_status, k.selector FROM domains d JOIN dkim_keys k"
        " ON k.domain_id = d.id AND k.algorithm = 'rsa-sha256' AND k.state = 'active'")).all()
    for domain_id, dns_status, selector in rows:
        status = json.loads(dns_status or '{}')
        old, new = ('dkim', f'dkim:{selector}') if to_selector else (f'dkim:{selector}', 'dkim')
        if old in status:
            status[new] = status.pop(old)
            conn.execute(sa.text("UPDATE domains SET dns_status = :s WHERE id = :i"),
                         {"s": json.dumps(status), "i": domain_id})
