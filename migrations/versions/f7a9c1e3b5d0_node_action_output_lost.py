"""node_actions.output_lost: stream records of an action that could not be recorded (database outage)

Revision ID: f7a9c1e3b5d0
Revises: e4b6d8f0a2c3
Create Date: 2026-12-06 16:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'f7a9c1e3b5d0'
down_revision = 'e4b6d8f0a2c3'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('node_actions', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('output_lost', sa.Integer(), nullable=False, server_default='0')
        )


def downgrade():
    with op.batch_alter_table('node_actions', schema=None) as batch_op:
        batch_op.drop_column('output_lost')
