"""deployments.ca_bundle: the internal CA certificates that validate the nodes' HTTPS listeners

Revision ID: 7b3f0c1d2e45
Revises: 5c1e7d2a9b40
Create Date: 2026-12-05 22:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '7b3f0c1d2e45'
down_revision = '5c1e7d2a9b40'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('deployments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ca_bundle', sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table('deployments', schema=None) as batch_op:
        batch_op.drop_column('ca_bundle')
