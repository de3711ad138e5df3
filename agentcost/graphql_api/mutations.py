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
from agentcost.graphql_api.queries import feedback_key
from agentcost.graphql_api.types import (
    DeleteFeedbackPayload,
    Feedback,
    FeedbackBatchPayload,
    IngestResult,
    SubmitFeedbackPayload,
)
from agentcost.models import FeedbackCreate, FeedbackUpdate, TraceEvent
from agentcost.services import feedback as feedback_service
from agentcost.services import traces as traces_service

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
    @strawberry.mutation(description="Store feedback; a known id replaces that feedback.")
    async def submit_feedback(self, info: Info, input: FeedbackInput) -> SubmitFeedbackResult:
        item = parse(FeedbackCreate, provided(input))
        ctx = info.context
        [(saved, created)] = await feedback_service.submit(ctx.db, org_id=ctx.org_id, items=[item])
        return SubmitFeedbackPayload(feedback=Feedback.from_public(saved), created=created)

    @strawberry.mutation(description="All-or-nothing: one bad item rejects the batch.")
    async def submit_feedback_batch(
        self, info: Info, inputs: list[FeedbackInput]
    ) -> SubmitFeedbackBatchResult:
        items = parse_batch(FeedbackCreate, [provided(i) for i in inputs], wrapper="items")
        ctx = info.context
        saved = await feedback_service.submit(ctx.db, org_id=ctx.org_id, items=items)
        return FeedbackBatchPayload(
            feedback=[Feedback.from_public(item) for item, _ in saved],
            created=sum(created for _, created in saved),
        )

    @strawberry.mutation(description="Change some fields of a feedback item (global or own id).")
    async def update_feedback(
        self, info: Info, id: strawberry.ID, input: FeedbackUpdateInput
    ) -> UpdateFeedbackResult:
        changes = parse(FeedbackUpdate, provided(input))
        ctx = info.context
        saved = await feedback_service.update_feedback(
            ctx.db, org_id=ctx.org_id, feedback_id=feedback_key(id), changes=changes
        )
        return Feedback.from_public(saved)

    @strawberry.mutation(description="Delete a feedback item (global or own id).")
    async def delete_feedback(self, info: Info, id: strawberry.ID) -> DeleteFeedbackResult:
        key = feedback_key(id)
        ctx = info.context
        await feedback_service.delete_feedback(ctx.db, org_id=ctx.org_id, feedback_id=key)
        return DeleteFeedbackPayload(feedback_id=key)

    @strawberry.mutation(description="One LLM call event; events sharing a traceId build a trace.")
    async def ingest_trace(self, info: Info, input: TraceEventInput) -> IngestTraceResult:
        event = parse(TraceEvent, provided(input))
        ctx = info.context
        return IngestResult.from_public(
            await traces_service.ingest(ctx.db, org_id=ctx.org_id, events=[event])
        )

    @strawberry.mutation(description="All-or-nothing: one bad event rejects the batch.")
    async def ingest_traces(self, info: Info, inputs: list[TraceEventInput]) -> IngestTraceResult:
        events = parse_batch(TraceEvent, [provided(i) for i in inputs], wrapper="events")
        ctx = info.context
        return IngestResult.from_public(
            await traces_service.ingest(ctx.db, org_id=ctx.org_id, events=events)
        )
