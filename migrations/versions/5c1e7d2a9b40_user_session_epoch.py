"""users.session_epoch: disabling an account ends its sessions for good

Revision ID: 5c1e7d2a9b40
Revises: a992418c23a6
Create Date: 2026-11-28 09:45:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '5c1e7d2a9b40'
down_revision = 'a992418c23a6'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('session_epoch', sa.Integer(), server_default='0', nullable=False)
        )


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('session_epoch')
