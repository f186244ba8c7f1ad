"""task_outbox (tasks waiting for the broker) and service_beats (when the reaper last ran)

Revision ID: c3e5a7b9d1f2
Revises: 9d2a4e6b8c10
Create Date: 2026-12-06 13:00:00.000000

"""
from alembic import op
import sqlalchemy as sa

from app.models.base import UTCDateTime


# revision identifiers, used by Alembic.
revision = 'c3e5a7b9d1f2'
down_revision = '9d2a4e6b8c10'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'task_outbox',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('task', sa.String(length=200), nullable=False),
        sa.Column('args', sa.JSON(), nullable=False),
        sa.Column('countdown', sa.Float(), nullable=False),
        sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_task_outbox_created_at', 'task_outbox', ['created_at'])
    op.create_table(
        'service_beats',
        sa.Column('name', sa.String(length=40), nullable=False),
        sa.Column('beat_at', UTCDateTime(timezone=True), nullable=False),
        sa.Column('host', sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )


def downgrade():
    op.drop_table('service_beats')
    op.drop_index('ix_task_outbox_created_at', table_name='task_outbox')
    op.drop_table('task_outbox')
