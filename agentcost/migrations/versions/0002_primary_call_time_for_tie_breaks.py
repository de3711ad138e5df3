"""primary call time for tie-breaks

The primary model is the model of a trace's costliest call, the earliest one on a tie; storing
that call's time lets later events break ties the same way whatever order they arrive in.
Existing traces get it from their calls.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 13:00:42.428973
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import agentcost.models

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("traces", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("primary_at", agentcost.models.UTCDateTime(timezone=True), nullable=True)
        )

    op.execute(
        """
        UPDATE traces SET primary_at = (
            SELECT MIN(calls.timestamp) FROM calls
            WHERE calls.org_id = traces.org_id AND calls.trace_id = traces.trace_id
              AND calls.model = traces.model
              AND COALESCE(calls.cost, -1.0) = COALESCE(traces.primary_cost, -1.0)
        )
        """
    )


def downgrade() -> None:
    with op.batch_alter_table("traces", schema=None) as batch_op:
        batch_op.drop_column("primary_at")
