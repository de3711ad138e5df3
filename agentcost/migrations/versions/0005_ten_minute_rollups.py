"""ten-minute roll-ups

A level of ten-minute buckets below the hours, so a time window leaves at most twenty minutes
of traces at its edges to the scan path instead of two hours. Roll-ups are derived data: they
are recomputed from the rows, by the code that keeps them current afterwards. The other levels
come out as they were, so the downgrade only drops the ten-minute rows. An upgrade from before
0004 finds this level already written by 0004's recomputation (it runs today's code) and skips
a second one.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 17:50:00.000000
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy import select

from agentcost.services import rollups

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_TEN_MINUTE_ROWS = rollups.rollups.c.dim.like(f"%{rollups.TEN_MINUTES}")


def upgrade() -> None:
    bind = op.get_bind()
    written = bind.execute(select(rollups.rollups.c.dim).where(_TEN_MINUTE_ROWS).limit(1))
    if written.first() is None:
        rollups.rebuild(bind)


def downgrade() -> None:
    op.execute(rollups.rollups.delete().where(_TEN_MINUTE_ROWS))
