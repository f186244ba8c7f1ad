"""deployments.kerberos_kdcs: the realm's KDCs when DNS SRV records cannot find them

Revision ID: 9d2a4e6b8c10
Revises: 7b3f0c1d2e45
Create Date: 2026-12-06 09:50:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '9d2a4e6b8c10'
down_revision = '7b3f0c1d2e45'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('deployments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kerberos_kdcs', sa.String(length=500), nullable=True))


def downgrade():
    with op.batch_alter_table('deployments', schema=None) as batch_op:
        batch_op.drop_column('kerberos_kdcs')
