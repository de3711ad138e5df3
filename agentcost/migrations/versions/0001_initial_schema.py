"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26 12:32:04.802244
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

import agentcost.models

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("org_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("trace_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("call_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("model", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("provider", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=True),
        sa.Column("cost_computed", sa.Boolean(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("error", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("agent_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("session_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column(
            "metadata",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("timestamp", agentcost.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("org_id", "trace_id", "call_id"),
    )
    op.create_table(
        "feedback",
        sa.Column("org_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("trace_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("call_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("comment", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("user_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column(
            "tags",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "metadata",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", agentcost.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", agentcost.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("org_id", "id"),
    )
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.create_index(
            "ix_feedback_org_created", ["org_id", "created_at", "id"], unique=False
        )
        batch_op.create_index("ix_feedback_org_trace", ["org_id", "trace_id"], unique=False)

    op.create_table(
        "traces",
        sa.Column("org_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("trace_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("project", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("session_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("agent_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("user_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("prompt_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("prompt_version", sa.Integer(), nullable=True),
        sa.Column(
            "metadata",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("started_at", agentcost.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", agentcost.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("model", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("provider", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("primary_cost", sa.Float(), nullable=True),
        sa.Column("cost", sa.Float(), nullable=True),
        sa.Column("cost_computed", sa.Boolean(), nullable=False),
        sa.Column("unpriced_calls", sa.Integer(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("call_count", sa.Integer(), nullable=False),
        sa.Column("error_count", sa.Integer(), nullable=False),
        sa.Column("created_at", agentcost.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", agentcost.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("org_id", "trace_id"),
    )
    with op.batch_alter_table("traces", schema=None) as batch_op:
        batch_op.create_index("ix_traces_org_model", ["org_id", "model"], unique=False)
        batch_op.create_index("ix_traces_org_project", ["org_id", "project"], unique=False)
        batch_op.create_index(
            "ix_traces_org_prompt", ["org_id", "prompt_id", "prompt_version"], unique=False
        )
        batch_op.create_index(
            "ix_traces_org_started", ["org_id", "started_at", "trace_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("traces", schema=None) as batch_op:
        batch_op.drop_index("ix_traces_org_started")
        batch_op.drop_index("ix_traces_org_prompt")
        batch_op.drop_index("ix_traces_org_project")
        batch_op.drop_index("ix_traces_org_model")

    op.drop_table("traces")
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.drop_index("ix_feedback_org_trace")
        batch_op.drop_index("ix_feedback_org_created")

    op.drop_table("feedback")
    op.drop_table("calls")
