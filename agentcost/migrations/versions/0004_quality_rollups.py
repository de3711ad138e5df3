"""quality rollups

Analytics read pre-summed roll-ups instead of scanning every vote; existing databases get them
computed from their rows here, by the same code that keeps them current afterwards (which reads
only columns that exist at this revision).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 13:29:26.370408
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

from agentcost.services import rollups

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "quality_rollups",
        sa.Column("org_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("dim", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("key1", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("key2", sa.Integer(), nullable=False),
        sa.Column("project", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("positive", sa.Integer(), nullable=False),
        sa.Column("negative", sa.Integer(), nullable=False),
        sa.Column("rated", sa.Integer(), nullable=False),
        sa.Column("positive_traces", sa.Integer(), nullable=False),
        sa.Column("cost_nanos", sa.BigInteger(), nullable=False),
        sa.Column("costed", sa.Integer(), nullable=False),
        sa.Column("unknown", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("org_id", "dim", "source", "bucket", "key1", "key2", "project"),
    )
    # A trace's feedback in time order straight from the index (the old one made SQLite sort
    # the organisation's every vote for one trace's list).
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.drop_index("ix_feedback_org_trace")
        batch_op.create_index("ix_feedback_org_trace_created", ["org_id", "trace_id", "created_at"])
    rollups.rebuild(op.get_bind())


def downgrade() -> None:
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.drop_index("ix_feedback_org_trace_created")
        batch_op.create_index("ix_feedback_org_trace", ["org_id", "trace_id"])
    op.drop_table("quality_rollups")
