"""Mutation resolvers: parse with the shared pydantic shapes, call one service. Expected
failures (InvalidInput, NotFound) leave the resolver as exceptions and come back as members of
the result union through the schema's exception handlers."""

from typing import Annotated

import strawberry

from agentcost.errors import parse, parse_batch
from agentcost.graphql_api.context import Info
from agentcost.graphql_api.errors import InvalidInputError, NotFoundError
from agentcost.graphql_api.inputs import (
    FeedbackInput,
    FeedbackUpdateInput,
    TraceEventInput,
    provided,
)
from agentcost.graphql_api.permissions import CanAdmin, CanIngest
from agentcost.graphql_api.queries import feedback_key
from agentcost.graphql_api.types import (
    DeleteFeedbackPayload,
    Feedback,
    FeedbackBatchPayload,
    IngestResult,
    SubmitFeedbackPayload,
)
from agentcost.models import FeedbackCreate, FeedbackUpdate, Scope, TraceEvent
from agentcost.services import access
from agentcost.services import feedback as feedback_service

SubmitFeedbackResult = Annotated[
    SubmitFeedbackPayload | InvalidInputError, strawberry.union("SubmitFeedbackResult")
]
SubmitFeedbackBatchResult = Annotated[
    FeedbackBatchPayload | InvalidInputError, strawberry.union("SubmitFeedbackBatchResult")
]
UpdateFeedbackResult = Annotated[
    Feedback | InvalidInputError | NotFoundError, strawberry.union("UpdateFeedbackResult")
]
DeleteFeedbackResult = Annotated[
    DeleteFeedbackPayload | InvalidInputError | NotFoundError,
    strawberry.union("DeleteFeedbackResult"),
]
IngestTraceResult = Annotated[
    IngestResult | InvalidInputError, strawberry.union("IngestTraceResult")
]


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Store feedback; a known id replaces that feedback. Accepts an ingest or "
        "admin key, or an end user's feedback token for the trace."
    )
    async def submit_feedback(self, info: Info, input: FeedbackInput) -> SubmitFeedbackResult:
        item = parse(FeedbackCreate, provided(input))
        ctx = info.context
        if ctx.caller.feedback is None:
            ctx.caller.require(Scope.INGEST)
        items = await access.feedback_submission(ctx.db, ctx.caller, [item])
        [(saved, created)] = await feedback_service.submit(ctx.db, org_id=ctx.org_id, items=items)
        return SubmitFeedbackPayload(feedback=Feedback.from_public(saved), created=created)

    @strawberry.mutation(
        description="All-or-nothing: one bad item rejects the batch.",
        permission_classes=[CanIngest],
    )
    async def submit_feedback_batch(
        self, info: Info, inputs: list[FeedbackInput]
    ) -> SubmitFeedbackBatchResult:
        items = parse_batch(FeedbackCreate, [provided(i) for i in inputs], wrapper="items")
        ctx = info.context
        items = await access.feedback_submission(ctx.db, ctx.caller, items)
        saved = await feedback_service.submit(ctx.db, org_id=ctx.org_id, items=items)
        return FeedbackBatchPayload(
            feedback=[Feedback.from_public(item) for item, _ in saved],
            created=sum(created for _, created in saved),
        )

    @strawberry.mutation(
        description="Change some fields of a feedback item (global or own id).",
        permission_classes=[CanIngest],
    )
    async def update_feedback(
        self, info: Info, id: strawberry.ID, input: FeedbackUpdateInput
    ) -> UpdateFeedbackResult:
        changes = parse(FeedbackUpdate, provided(input))
        key = feedback_key(id)
        ctx = info.context
        await access.ensure_feedback_visible(ctx.db, ctx.caller, key)
        saved = await feedback_service.update_feedback(
            ctx.db, org_id=ctx.org_id, feedback_id=key, changes=changes
        )
        return Feedback.from_public(saved)

    @strawberry.mutation(
        description="Delete a feedback item (global or own id).", permission_classes=[CanAdmin]
    )
    async def delete_feedback(self, info: Info, id: strawberry.ID) -> DeleteFeedbackResult:
        key = feedback_key(id)
        ctx = info.context
        await access.ensure_feedback_visible(ctx.db, ctx.caller, key)
        await feedback_service.delete_feedback(ctx.db, org_id=ctx.org_id, feedback_id=key)
        return DeleteFeedbackPayload(feedback_id=key)

    @strawberry.mutation(
        description="One LLM call event; events sharing a traceId build a trace. The answer "
        "carries a feedback token for the trace.",
        permission_classes=[CanIngest],
    )
    async def ingest_trace(self, info: Info, input: TraceEventInput) -> IngestTraceResult:
        return await _ingest(info, [parse(TraceEvent, provided(input))])

    @strawberry.mutation(
        description="All-or-nothing: one bad event rejects the batch.",
        permission_classes=[CanIngest],
    )
    async def ingest_traces(self, info: Info, inputs: list[TraceEventInput]) -> IngestTraceResult:
        return await _ingest(
            info, parse_batch(TraceEvent, [provided(i) for i in inputs], wrapper="events")
        )


async def _ingest(info: Info, events: list[TraceEvent]) -> IngestResult:
    ctx = info.context
    assert ctx.token_secret is not None  # set for every authenticated request
    result = await access.ingest(
        ctx.db, ctx.caller, events, token_secret=ctx.token_secret, token_ttl=ctx.token_ttl
    )
    return IngestResult.from_public(result)
