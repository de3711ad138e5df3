"""Output types. Each node type is built from the services' public shape of one row; nested
fields (calls, feedback, score, trace) go through the request's DataLoaders."""

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Self

import strawberry
from pydantic import BaseModel
from strawberry import relay
from strawberry.scalars import JSON

from agentcost import models
from agentcost.graphql_api.context import Info
from agentcost.graphql_api.dataloaders import loaded
from agentcost.services.cursors import compact_json

FeedbackSource = strawberry.enum(models.FeedbackSource, description="Who gave the feedback.")


def _fields_of(row: BaseModel) -> dict[str, Any]:
    """The fields of a public row shape (trace, call, feedback, score: no nested models) as they
    are, without ``model_dump``'s copy of each value, ten times the cost (a 50-trace page builds
    about 300 of them)."""
    return dict(vars(row))


@strawberry.type(description="One LLM API call inside a trace.")
class Call(relay.Node):
    node_key: relay.NodeID[str]
    call_id: str
    trace_id: str
    model: str
    provider: str | None
    input_tokens: int
    output_tokens: int
    cost: float | None
    cost_computed: bool = strawberry.field(description="True when cost came from the price table.")
    latency_ms: float | None
    status: str
    error: str | None
    agent_id: str | None
    session_id: str | None
    metadata: JSON
    timestamp: datetime

    @classmethod
    def from_public(cls, call: models.CallPublic) -> Self:
        return cls(node_key=call_node_key(call.trace_id, call.call_id), **_fields_of(call))

    @strawberry.field(description="The trace this call belongs to.")
    async def trace(self, info: Info) -> "Trace | None":
        row = await info.context.loaders.trace.load(self.trace_id)
        return None if row is None else Trace.from_public(row)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Self | None]:
        keys = [parse_call_node_key(node_id) for node_id in node_ids]
        rows = await info.context.loaders.call.load_many(keys)
        return [None if row is None else cls.from_public(row) for row in rows]


def call_node_key(trace_id: str, call_id: str) -> str:
    """A call is unique only within its trace, so its node id carries both parts."""
    return compact_json([trace_id, call_id])


def parse_call_node_key(node_id: str) -> tuple[str, str]:
    try:
        trace_id, call_id = json.loads(node_id)
        if not isinstance(trace_id, str) or not isinstance(call_id, str):
            raise ValueError
    except (ValueError, TypeError):
        raise relay.GlobalIDValueError(f"{node_id!r} is not the id of a call") from None
    return trace_id, call_id


@strawberry.type(description="Votes on one trace; score = (positive - negative) / total.")
class TraceScore:
    trace_id: str
    total: int
    positive: int
    negative: int
    neutral: int
    score: float | None = strawberry.field(description="Null while the trace has no votes.")

    @classmethod
    def from_public(cls, score: models.TraceScore) -> Self:
        return cls(**_fields_of(score))


@strawberry.type(description="A vote on a trace (or on one call of it).")
class Feedback(relay.Node):
    node_key: relay.NodeID[str]
    feedback_id: str = strawberry.field(
        description="The feedback's own id (client-chosen or generated), as REST shows it."
    )
    trace_id: str
    call_id: str | None
    score: int = strawberry.field(description="-1, 0 or 1.")
    comment: str | None
    source: FeedbackSource
    user_id: str | None
    tags: list[str]
    metadata: JSON
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_public(cls, item: models.FeedbackPublic) -> Self:
        values = _fields_of(item)
        del values["id"]
        return cls(node_key=item.id, feedback_id=item.id, **values)

    @strawberry.field(description="The rated trace; null while it has not arrived.")
    async def trace(self, info: Info) -> "Trace | None":
        row = await info.context.loaders.trace.load(self.trace_id)
        return None if row is None else Trace.from_public(row)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Self | None]:
        rows = await info.context.loaders.feedback.load_many(list(node_ids))
        return [None if row is None else cls.from_public(row) for row in rows]


@strawberry.type(description="One response a user can rate, with roll-ups over its calls.")
class Trace(relay.Node):
    node_key: relay.NodeID[str]
    trace_id: str
    project: str
    name: str | None
    model: str = strawberry.field(description="Primary model: the model of the costliest call.")
    provider: str | None
    cost: float | None = strawberry.field(description="Sum of its calls' known costs.")
    cost_computed: bool
    unpriced_calls: int
    input_tokens: int
    output_tokens: int
    latency_ms: float
    call_count: int
    error_count: int
    status: str
    prompt_id: str | None
    prompt_version: int | None
    session_id: str | None
    agent_id: str | None
    user_id: str | None
    metadata: JSON
    started_at: datetime
    ended_at: datetime

    @classmethod
    def from_public(cls, trace: models.TracePublic) -> Self:
        return cls(node_key=trace.trace_id, **_fields_of(trace))

    # Plain (not async) resolvers: on a page the values are already loaded (see ``loaded``).
    @strawberry.field(description="Its calls in time order.")
    def calls(self, info: Info) -> list[Call]:
        return loaded(  # type: ignore[return-value]
            info.context.loaders.calls_of_trace,
            self.trace_id,
            lambda rows: [Call.from_public(row) for row in rows],
        )

    @strawberry.field(description="Its feedback, oldest first.")
    def feedback(self, info: Info) -> list[Feedback]:
        return loaded(  # type: ignore[return-value]
            info.context.loaders.feedback_of_trace,
            self.trace_id,
            lambda rows: [Feedback.from_public(row) for row in rows],
        )

    @strawberry.field(description="Its votes folded into one score.")
    def score(self, info: Info) -> TraceScore:
        return loaded(  # type: ignore[return-value]
            info.context.loaders.score, self.trace_id, TraceScore.from_public
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Self | None]:
        rows = await info.context.loaders.trace.load_many(list(node_ids))
        return [None if row is None else cls.from_public(row) for row in rows]


@strawberry.interface(description="DESIGN.md's metric table for one group of feedback.")
class QualityMetrics:
    total_feedback: int
    positive: int
    negative: int
    neutral: int
    positive_pct: float | None = strawberry.field(description="100 x positive / total, 1 dp.")
    negative_pct: float | None
    neutral_pct: float | None
    avg_score: float | None = strawberry.field(description="Mean score, 3 decimals.")
    rated_traces: int = strawberry.field(description="Distinct traces with feedback.")
    positive_traces: int = strawberry.field(description="Rated traces whose mean score > 0.")
    total_cost: float | None
    avg_cost: float | None = strawberry.field(description="Mean cost of the rated traces.")
    cost_per_positive: float | None = strawberry.field(
        description="Cost of the rated traces / rated traces with mean score > 0."
    )
    positive_pct_low: float | None = strawberry.field(description="Wilson 95 % lower bound.")
    positive_pct_high: float | None = strawberry.field(description="Wilson 95 % upper bound.")


@strawberry.type(description="Quality and cost of one model.")
class ModelQuality(QualityMetrics):
    model: str

    @classmethod
    def from_public(cls, quality: models.ModelQuality) -> Self:
        return cls(**quality.model_dump())


@strawberry.type(description="Quality and cost of one version of a prompt.")
class PromptVersionQuality(QualityMetrics):
    prompt_id: str
    version: int | None

    @classmethod
    def from_public(cls, quality: models.PromptVersionQuality) -> Self:
        return cls(**quality.model_dump())


@strawberry.type(description="How many feedback items came from one source.")
class SourceCount:
    source: FeedbackSource
    count: int


@strawberry.type(description="Everything in the organisation that passes the filters.")
class FeedbackSummary(QualityMetrics):
    unknown_trace_feedback: int = strawberry.field(
        description="Feedback whose trace has not arrived: counted here, not per model."
    )
    by_source: list[SourceCount]

    @classmethod
    def from_public(cls, summary: models.FeedbackSummary) -> Self:
        values: dict[str, Any] = summary.model_dump(exclude={"by_source"})
        counts = [
            SourceCount(source=models.FeedbackSource(s), count=n)
            for s, n in sorted(summary.by_source.items())
        ]
        return cls(**values, by_source=counts)


@strawberry.type(description="What an ingestion stored.")
class IngestResult:
    accepted: int = strawberry.field(description="Events stored as new calls.")
    duplicates: int = strawberry.field(description="Events whose call_id was already stored.")
    trace_ids: list[str]
    call_ids: list[str]
    feedback_token: str | None = strawberry.field(
        description="Lets the end user's browser vote on the trace (single events only)."
    )
    feedback_token_expires_at: datetime | None

    @classmethod
    def from_public(cls, result: models.IngestResult) -> Self:
        return cls(**result.model_dump(exclude={"status"}))


@strawberry.type(description="The stored feedback, and whether it was new or replaced one.")
class SubmitFeedbackPayload:
    feedback: Feedback
    created: bool = strawberry.field(description="False when an item of that id was replaced.")


@strawberry.type(description="The stored feedback of a batch, in input order.")
class FeedbackBatchPayload:
    feedback: list[Feedback]
    created: int = strawberry.field(description="How many items were new (not replacements).")


@strawberry.type(description="The feedback is gone.")
class DeleteFeedbackPayload:
    feedback_id: str


TraceConnection = relay.Connection[Trace]
TraceEdge = relay.Edge[Trace]
FeedbackConnection = relay.Connection[Feedback]
FeedbackEdge = relay.Edge[Feedback]


def page_info(cursors: list[str], next_cursor: str | None, after: str | None) -> relay.PageInfo:
    """Forward-only keyset paging: there is a next page exactly when the service handed a cursor."""
    return relay.PageInfo(
        has_next_page=next_cursor is not None,
        has_previous_page=after is not None,
        start_cursor=cursors[0] if cursors else None,
        end_cursor=cursors[-1] if cursors else None,
    )
