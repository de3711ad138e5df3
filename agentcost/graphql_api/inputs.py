"""Input types. They only carry what the client sent: every rule is checked by the same pydantic
shapes REST uses (``agentcost.models``, ``services.filters``), through :func:`provided`, so a bad
value gets the same field and reason here as there."""

import dataclasses
from datetime import datetime
from typing import Any

import strawberry
from pydantic import BaseModel, ConfigDict, Field
from strawberry.scalars import JSON

from agentcost.graphql_api.types import FeedbackSource
from agentcost.services.filters import TraceOrder as TraceOrderValue

MAX_FIRST = 100
DEFAULT_FIRST = 50

TraceOrder = strawberry.enum(
    TraceOrderValue,
    description="TIME: newest first. COST: costliest first, traces of unknown cost last.",
)


def provided(value: object | None, *, rename: dict[str, str] | None = None) -> dict[str, Any]:
    """The fields the client set (absent ones stay absent, so pydantic defaults apply)."""
    if value is None:
        return {}
    names = rename or {}
    return {
        names.get(f.name, f.name): getattr(value, f.name)
        for f in dataclasses.fields(value)  # type: ignore[arg-type]
        if getattr(value, f.name) is not strawberry.UNSET
    }


class PageArgs(BaseModel):
    """GraphQL pages are capped lower than REST's: nested fields multiply the work per row."""

    model_config = ConfigDict(extra="forbid")

    first: int = Field(default=DEFAULT_FIRST, ge=1, le=MAX_FIRST)
    after: str | None = Field(default=None, max_length=1000)


@strawberry.input(description="Feedback on a trace, as POST /api/feedback takes it.")
class FeedbackInput:
    trace_id: str
    score: int = strawberry.field(description="-1, 0 or 1.")
    comment: str | None = strawberry.UNSET
    source: FeedbackSource = FeedbackSource.USER
    user_id: str | None = strawberry.UNSET
    tags: list[str] | None = strawberry.UNSET
    metadata: JSON | None = strawberry.UNSET
    id: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="Client-chosen id: submitting it again replaces that feedback.",
    )
    call_id: str | None = strawberry.field(
        default=strawberry.UNSET, description="Rate one call of the trace."
    )


@strawberry.input(description="Fields to change; absent keep their value, null clears.")
class FeedbackUpdateInput:
    score: int | None = strawberry.UNSET
    comment: str | None = strawberry.UNSET
    source: FeedbackSource | None = strawberry.UNSET
    user_id: str | None = strawberry.UNSET
    tags: list[str] | None = strawberry.UNSET
    metadata: JSON | None = strawberry.UNSET
    call_id: str | None = strawberry.UNSET


@strawberry.input(description="One LLM call, as POST /api/trace takes it.")
class TraceEventInput:
    trace_id: str
    model: str
    project: str | None = strawberry.UNSET
    provider: str | None = strawberry.UNSET
    input_tokens: int | None = strawberry.UNSET
    output_tokens: int | None = strawberry.UNSET
    cost: float | None = strawberry.field(
        default=strawberry.UNSET, description="Computed from the tokens when absent."
    )
    latency_ms: float | None = strawberry.UNSET
    status: str | None = strawberry.UNSET
    error: str | None = strawberry.UNSET
    agent_id: str | None = strawberry.UNSET
    session_id: str | None = strawberry.UNSET
    goal_id: str | None = strawberry.UNSET
    user_id: str | None = strawberry.UNSET
    name: str | None = strawberry.UNSET
    call_id: str | None = strawberry.field(
        default=strawberry.UNSET, description="Resending a known call_id is ignored."
    )
    timestamp: datetime | None = strawberry.UNSET
    metadata: JSON | None = strawberry.UNSET
    prompt_id: str | None = strawberry.UNSET
    prompt_version: int | None = strawberry.UNSET


@strawberry.input(name="TraceFilter", description="Which traces; the window is on trace time.")
class TraceFilterInput:
    project: str | None = strawberry.UNSET
    model: str | None = strawberry.UNSET
    prompt_id: str | None = strawberry.UNSET
    prompt_version: int | None = strawberry.UNSET
    min_score: float | None = strawberry.field(
        default=strawberry.UNSET, description="Lowest mean vote (-1..1); unrated traces drop out."
    )
    max_score: float | None = strawberry.UNSET
    has_feedback: bool | None = strawberry.UNSET
    since: datetime | None = strawberry.field(default=strawberry.UNSET, description="Inclusive.")
    until: datetime | None = strawberry.field(default=strawberry.UNSET, description="Exclusive.")


SCORE_FILTER_FIELDS = frozenset({"min_score", "max_score", "has_feedback"})


@strawberry.input(
    name="FeedbackFilter", description="Which feedback; the window is on its own createdAt."
)
class FeedbackFilterInput:
    project: str | None = strawberry.UNSET
    model: str | None = strawberry.UNSET
    score: int | None = strawberry.UNSET
    source: FeedbackSource | None = strawberry.UNSET
    trace_id: str | None = strawberry.UNSET
    user_id: str | None = strawberry.UNSET
    tag: str | None = strawberry.UNSET
    since: datetime | None = strawberry.UNSET
    until: datetime | None = strawberry.UNSET
