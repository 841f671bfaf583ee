"""api_keys.role and api_keys.created_by: roles limit keys as they limit users

Every key made before has the role "admin" (it could do everything); `created_by` names the
panel user who made a key (NULL for the CLI's and once its maker is deleted).

Revision ID: 0032
Revises: 0031
"""

import sqlalchemy as sa
from alembic import op

revision = '0032'
down_revision = '0031'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('role', sa.String(length=16), server_default='admin',
                                      nullable=False))
        batch_op.add_column(sa.Column('created_by', sa.String(length=24), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_api_keys_created_by_users'), 'users',
                                    ['created_by'], ['id'], ondelete='SET NULL')


def downgrade() -> None:
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_api_keys_created_by_users'),
                                 type_='foreignkey')
        batch_op.drop_column('created_by')
        batch_op.drop_column('role')
