"""pending roll-up deltas

A write used to fold its roll-up delta into every level of ``quality_rollups`` before it could
answer: for a vote on a stored trace about half of its server time. It now commits the delta's
finest rows to ``quality_rollup_pending``, which reads add to the roll-ups, and a fold after
the commit moves them into the levels. The table starts empty: nothing is pending yet.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08 02:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COUNTS = ("total", "positive", "negative", "rated", "positive_traces")


def upgrade() -> None:
    op.create_table(
        "quality_rollup_pending",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("org_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("dim", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("key1", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("key2", sa.Integer(), nullable=False),
        sa.Column("project", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in _COUNTS),
        sa.Column("cost_nanos", sa.BigInteger(), nullable=False),
        sa.Column("costed", sa.Integer(), nullable=False),
        sa.Column("unknown", sa.Integer(), nullable=False),
    )
    op.create_index(
        "ix_quality_rollup_pending_read",
        "quality_rollup_pending",
        ["org_id", "dim", "source", "bucket"],
    )


def downgrade() -> None:
    """Pending deltas are folded first, so the roll-ups lose nothing."""
    from agentcost.services import rollups

    rollups.fold_sync(op.get_bind())
    op.drop_index("ix_quality_rollup_pending_read", table_name="quality_rollup_pending")
    op.drop_table("quality_rollup_pending")
