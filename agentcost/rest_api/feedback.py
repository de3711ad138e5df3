"""The guide's feedback routes, plus GET/PATCH of one item, batch submission and tokens."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request, Response, status

from agentcost.errors import parse_batch
from agentcost.models import (
    MAX_ID,
    MAX_NAME,
    FeedbackCreate,
    FeedbackPublic,
    FeedbackSummary,
    FeedbackToken,
    FeedbackTokenRequest,
    FeedbackUpdate,
    ModelQuality,
    PromptVersionQuality,
    TraceScore,
)
from agentcost.rest_api import model_body
from agentcost.rest_api.batches import batch_body
from agentcost.rest_api.deps import (
    Admin,
    AuthDep,
    Authorization,
    DbDep,
    Reader,
    Writer,
    get_db,
    get_principal,
)
from agentcost.rest_api.pages import NEXT_CURSOR, link_next_page
from agentcost.rest_api.responses import feedback_list_response, model_response
from agentcost.services import access, auth, feedback, quality
from agentcost.services.filters import AnalyticsFilter, FeedbackFilter, Page

router = APIRouter(prefix="/feedback", tags=["feedback"])

Id = Annotated[str, Path(min_length=1, max_length=MAX_ID)]
ModelName = Annotated[str, Path(min_length=1, max_length=MAX_NAME)]
Analytics = Annotated[AnalyticsFilter, Query()]


class FeedbackQuery(FeedbackFilter, Page):
    """Filters and paging of the listing, all in the query string."""


@model_body.post(
    router,
    "",
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": FeedbackPublic, "description": "Replaced the feedback of that id."}},
)
async def submit(
    item: FeedbackCreate, request: Request, authorization: Authorization = None
) -> Response:
    """Submit feedback on a trace. Sending a known ``id`` again replaces that feedback.

    Accepts an ingest or admin key, or an end user's feedback token for this trace.
    """
    db, caller = await get_db(request), await get_principal(request, authorization)
    if caller.feedback is None:
        caller.require(auth.Scope.INGEST)
    items = await access.feedback_submission(db, caller, [item])
    [(saved, created)] = await feedback.submit(db, org_id=caller.org_id, items=items)
    return model_response(saved, 201 if created else 200)


@router.post(
    "/batch",
    status_code=status.HTTP_201_CREATED,
    response_model=list[FeedbackPublic],
    openapi_extra=batch_body("FeedbackCreate", "items"),
)
async def submit_batch(db: DbDep, caller: Writer, body: Annotated[Any, Body()] = None) -> Response:
    """All-or-nothing: one bad item rejects the batch, naming the index of each bad item."""
    items = await access.feedback_submission(
        db, caller, parse_batch(FeedbackCreate, body, wrapper="items")
    )
    stored = await feedback.submit(db, org_id=caller.org_id, items=items)
    return feedback_list_response([saved for saved, _ in stored], status.HTTP_201_CREATED)


@router.post("/token", status_code=status.HTTP_201_CREATED)
async def feedback_token(
    request_body: FeedbackTokenRequest, db: DbDep, caller: Writer, state: AuthDep
) -> FeedbackToken:
    """A signed token that lets an end user's browser vote on this one trace, without a key."""
    await access.ensure_trace_visible(db, caller, request_body.trace_id)
    token, expires_at = auth.issue_feedback_token(
        await state.token_secret(db),
        org_id=caller.org_id,
        trace_id=request_body.trace_id,
        user_id=request_body.user_id,
        ttl_seconds=request_body.ttl_seconds or state.settings.feedback_token_ttl,
    )
    return FeedbackToken(token=token, expires_at=expires_at)


@router.get("", responses={200: {"headers": {NEXT_CURSOR: {"schema": {"type": "string"}}}}})
async def list_feedback(
    request: Request,
    response: Response,
    db: DbDep,
    caller: Reader,
    query: Annotated[FeedbackQuery, Query()],
) -> list[FeedbackPublic]:
    """Newest first. When more rows exist, X-Next-Cursor (and Link) name the next page."""
    page, cursor = await feedback.list_feedback(
        db,
        org_id=caller.org_id,
        filters=access.scoped_filters(caller, query),
        limit=query.limit,
        cursor=query.cursor,
    )
    link_next_page(request, response, cursor)
    return page


@router.get("/summary")
async def summary(db: DbDep, caller: Reader, filters: Analytics) -> FeedbackSummary:
    return await quality.summary(
        db, org_id=caller.org_id, filters=access.scoped_filters(caller, filters)
    )


@router.get("/quality/models")
async def quality_by_model(db: DbDep, caller: Reader, filters: Analytics) -> list[ModelQuality]:
    return await quality.by_model(
        db, org_id=caller.org_id, filters=access.scoped_filters(caller, filters)
    )


@router.get("/quality/model/{model:path}")
async def quality_of_model(
    model: ModelName, db: DbDep, caller: Reader, filters: Analytics
) -> ModelQuality:
    return await quality.for_model(
        db, org_id=caller.org_id, model=model, filters=access.scoped_filters(caller, filters)
    )


@router.get("/quality/prompt/{prompt_id}")
async def quality_by_prompt_version(
    prompt_id: ModelName, db: DbDep, caller: Reader, filters: Analytics
) -> list[PromptVersionQuality]:
    return await quality.by_prompt_version(
        db,
        org_id=caller.org_id,
        prompt_id=prompt_id,
        filters=access.scoped_filters(caller, filters),
    )


@router.get("/trace/{trace_id}")
async def trace_feedback(trace_id: Id, db: DbDep, caller: Reader) -> list[FeedbackPublic]:
    """All feedback of a trace, oldest first; 404 when neither trace nor feedback exists."""
    await access.ensure_trace_visible(db, caller, trace_id)
    return await feedback.of_trace(db, org_id=caller.org_id, trace_id=trace_id)


@router.get("/trace/{trace_id}/score")
async def trace_score(trace_id: Id, db: DbDep, caller: Reader) -> TraceScore:
    await access.ensure_trace_visible(db, caller, trace_id)
    return await quality.trace_score(db, org_id=caller.org_id, trace_id=trace_id)


@router.get("/{feedback_id}")
async def get_feedback(feedback_id: Id, db: DbDep, caller: Reader) -> FeedbackPublic:
    await access.ensure_feedback_visible(db, caller, feedback_id)
    return await feedback.get(db, org_id=caller.org_id, feedback_id=feedback_id)


@router.patch("/{feedback_id}")
async def update_feedback(
    feedback_id: Id, changes: FeedbackUpdate, db: DbDep, caller: Writer
) -> FeedbackPublic:
    """Change some fields; absent fields keep their value."""
    await access.ensure_feedback_visible(db, caller, feedback_id)
    return await feedback.update_feedback(
        db, org_id=caller.org_id, feedback_id=feedback_id, changes=changes
    )


@router.delete("/{feedback_id}")
async def delete_feedback(feedback_id: Id, db: DbDep, caller: Admin) -> dict[str, Any]:
    await access.ensure_feedback_visible(db, caller, feedback_id)
    await feedback.delete_feedback(db, org_id=caller.org_id, feedback_id=feedback_id)
    return {"deleted": True, "id": feedback_id}
