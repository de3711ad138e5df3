"""Query resolvers: validate arguments with the shared pydantic shapes, call one service, wrap
the answer in output types. Lookups by id answer null when nothing matches; listings and
aggregates report bad input and unknown names as GraphQL errors with a ``code``."""

from datetime import datetime
from typing import Annotated

import strawberry
from pydantic import BaseModel
from strawberry import relay

from agentcost.errors import InvalidInput, NotFound, parse
from agentcost.graphql_api.context import Info, selected_under
from agentcost.graphql_api.inputs import (
    DEFAULT_FIRST,
    SCORE_FILTER_FIELDS,
    FeedbackFilterInput,
    PageArgs,
    TraceFilterInput,
    TraceOrder,
    provided,
)
from agentcost.graphql_api.permissions import CanRead
from agentcost.graphql_api.types import (
    Feedback,
    FeedbackConnection,
    FeedbackEdge,
    FeedbackSource,
    FeedbackSummary,
    ModelQuality,
    PromptVersionQuality,
    Trace,
    TraceConnection,
    TraceEdge,
    TraceScore,
    page_info,
)
from agentcost.models import Identifier
from agentcost.services import access, quality
from agentcost.services import feedback as feedback_service
from agentcost.services import traces as traces_service
from agentcost.services.filters import AnalyticsFilter, FeedbackFilter, ScoreFilter, TraceFilter

# Named source_ in Python: Strawberry's permission extension takes `source` (the parent value)
# as a parameter of its own, so an argument of that name would collide with it.
SourceArg = Annotated[FeedbackSource | None, strawberry.argument(name="source")]


class _FeedbackKey(BaseModel):
    id: Identifier


def feedback_key(value: str) -> str:
    """The feedback id behind an ID argument: a Feedback global id or the feedback's own id."""
    try:
        global_id = relay.GlobalID.from_id(value)
    except relay.GlobalIDValueError:
        global_id = None
    if global_id is not None and global_id.type_name == "Feedback":
        value = global_id.node_id
    elif global_id is not None and global_id.type_name in ("Trace", "Call"):
        raise InvalidInput.single("id", f"is the id of a {global_id.type_name}, not of feedback")
    return parse(_FeedbackKey, {"id": value}).id


def analytics_filter(
    info: Info,
    project: str | None,
    source: FeedbackSource | None,
    user_id: str | None,
    tag: str | None,
    since: datetime | None,
    until: datetime | None,
) -> AnalyticsFilter:
    filters = parse(
        AnalyticsFilter,
        {
            "project": project,
            "source": source,
            "user_id": user_id,
            "tag": tag,
            "since": since,
            "until": until,
        },
    )
    return access.scoped_filters(info.context.caller, filters)


@strawberry.type
class Query:
    node: relay.Node | None = relay.node(
        description="Any Trace, Call or Feedback by its global id; null when unknown.",
        permission_classes=[CanRead],
    )

    @strawberry.field(
        permission_classes=[CanRead], description="One trace by its traceId; null when unknown."
    )
    async def trace(self, info: Info, trace_id: str) -> Trace | None:
        row = await info.context.loaders.trace.load(trace_id)
        return None if row is None else Trace.from_public(row)

    @strawberry.field(
        permission_classes=[CanRead],
        description="Traces, newest (or costliest) first, in pages of at most 100.",
    )
    async def traces(
        self,
        info: Info,
        first: int = DEFAULT_FIRST,
        after: str | None = None,
        filter: TraceFilterInput | None = None,
        order_by: TraceOrder = TraceOrder.TIME,
    ) -> TraceConnection:
        page = parse(PageArgs, {"first": first, "after": after})
        given = provided(filter)
        trace_filter = parse(
            TraceFilter, {k: v for k, v in given.items() if k not in SCORE_FILTER_FIELDS}
        )
        scores = parse(ScoreFilter, {k: v for k, v in given.items() if k in SCORE_FILTER_FIELDS})
        ctx = info.context
        rows, next_cursor = await traces_service.list_traces(
            ctx.db,
            org_id=ctx.org_id,
            filters=access.scoped_filters(ctx.caller, trace_filter),
            limit=page.first,
            cursor=page.after,
            scores=scores,
            order=order_by,
        )
        ctx.loaders.trace.prime_many({row.trace_id: row for row in rows})
        await ctx.loaders.prefetch_nested(
            [row.trace_id for row in rows], selected_under(info, "edges", "node")
        )
        cursors = [traces_service.trace_cursor(row, order_by) for row in rows]
        return TraceConnection(
            edges=[
                TraceEdge(cursor=cursor, node=Trace.from_public(row))
                for cursor, row in zip(cursors, rows, strict=True)
            ],
            page_info=page_info(cursors, next_cursor, page.after),
        )

    @strawberry.field(
        permission_classes=[CanRead],
        description="One feedback item by its id (global or its own); null when unknown.",
    )
    async def feedback(self, info: Info, id: strawberry.ID) -> Feedback | None:
        row = await info.context.loaders.feedback.load(feedback_key(id))
        return None if row is None else Feedback.from_public(row)

    @strawberry.field(
        permission_classes=[CanRead], description="Feedback, newest first, in pages of at most 100."
    )
    async def feedbacks(
        self,
        info: Info,
        first: int = DEFAULT_FIRST,
        after: str | None = None,
        filter: FeedbackFilterInput | None = None,
    ) -> FeedbackConnection:
        page = parse(PageArgs, {"first": first, "after": after})
        filters = parse(FeedbackFilter, provided(filter))
        ctx = info.context
        rows, next_cursor = await feedback_service.list_feedback(
            ctx.db,
            org_id=ctx.org_id,
            filters=access.scoped_filters(ctx.caller, filters),
            limit=page.first,
            cursor=page.after,
        )
        ctx.loaders.feedback.prime_many({row.id: row for row in rows})
        cursors = [feedback_service.feedback_cursor(row) for row in rows]
        return FeedbackConnection(
            edges=[
                FeedbackEdge(cursor=cursor, node=Feedback.from_public(row))
                for cursor, row in zip(cursors, rows, strict=True)
            ],
            page_info=page_info(cursors, next_cursor, page.after),
        )

    @strawberry.field(
        permission_classes=[CanRead],
        description="All feedback that passes the filters; windows on trace time.",
    )
    async def feedback_summary(
        self,
        info: Info,
        project: str | None = None,
        source_: SourceArg = None,
        user_id: str | None = None,
        tag: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> FeedbackSummary:
        filters = analytics_filter(info, project, source_, user_id, tag, since, until)
        ctx = info.context
        return FeedbackSummary.from_public(
            await quality.summary(ctx.db, org_id=ctx.org_id, filters=filters)
        )

    @strawberry.field(
        permission_classes=[CanRead], description="Quality and cost per model, most-rated first."
    )
    async def quality_by_model(
        self,
        info: Info,
        project: str | None = None,
        source_: SourceArg = None,
        user_id: str | None = None,
        tag: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[ModelQuality]:
        filters = analytics_filter(info, project, source_, user_id, tag, since, until)
        ctx = info.context
        rows = await quality.by_model(ctx.db, org_id=ctx.org_id, filters=filters)
        return [ModelQuality.from_public(row) for row in rows]

    @strawberry.field(
        permission_classes=[CanRead],
        description="Quality and cost of one model: zeros without feedback, null if never seen.",
    )
    async def model_quality(
        self,
        info: Info,
        model: str,
        project: str | None = None,
        source_: SourceArg = None,
        user_id: str | None = None,
        tag: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> ModelQuality | None:
        filters = analytics_filter(info, project, source_, user_id, tag, since, until)
        ctx = info.context
        try:
            found = await quality.for_model(ctx.db, org_id=ctx.org_id, model=model, filters=filters)
        except NotFound:
            return None
        return ModelQuality.from_public(found)

    @strawberry.field(
        permission_classes=[CanRead],
        description="Quality and cost per version of a prompt; NOT_FOUND when no trace used it.",
    )
    async def prompt_quality(
        self,
        info: Info,
        prompt_id: str,
        project: str | None = None,
        source_: SourceArg = None,
        user_id: str | None = None,
        tag: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[PromptVersionQuality]:
        filters = analytics_filter(info, project, source_, user_id, tag, since, until)
        ctx = info.context
        rows = await quality.by_prompt_version(
            ctx.db, org_id=ctx.org_id, prompt_id=prompt_id, filters=filters
        )
        return [PromptVersionQuality.from_public(row) for row in rows]

    @strawberry.field(
        permission_classes=[CanRead],
        description="Votes on one trace; NOT_FOUND when neither it nor feedback for it exists.",
    )
    async def trace_score(self, info: Info, trace_id: str) -> TraceScore:
        ctx = info.context
        await access.ensure_trace_visible(ctx.db, ctx.caller, trace_id)
        return TraceScore.from_public(
            await quality.trace_score(ctx.db, org_id=ctx.org_id, trace_id=trace_id)
        )
