"""The guide's feedback routes, plus GET/PATCH of one item and batch submission."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse

from agentcost.errors import parse_batch
from agentcost.models import (
    MAX_ID,
    MAX_NAME,
    FeedbackCreate,
    FeedbackPublic,
    FeedbackSummary,
    FeedbackUpdate,
    ModelQuality,
    PromptVersionQuality,
    TraceScore,
)
from agentcost.rest_api.deps import DbDep, OrgDep
from agentcost.rest_api.pages import NEXT_CURSOR, link_next_page
from agentcost.services import feedback, quality
from agentcost.services.filters import AnalyticsFilter, FeedbackFilter, Page

router = APIRouter(prefix="/feedback", tags=["feedback"])

Id = Annotated[str, Path(min_length=1, max_length=MAX_ID)]
ModelName = Annotated[str, Path(min_length=1, max_length=MAX_NAME)]
Analytics = Annotated[AnalyticsFilter, Query()]


class FeedbackQuery(FeedbackFilter, Page):
    """Filters and paging of the listing, all in the query string."""


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": FeedbackPublic, "description": "Replaced the feedback of that id."}},
)
async def submit(item: FeedbackCreate, db: DbDep, org: OrgDep) -> JSONResponse:
    """Submit feedback on a trace. Sending a known ``id`` again replaces that feedback."""
    [(saved, created)] = await feedback.submit(db, org_id=org, items=[item])
    return JSONResponse(saved.model_dump(mode="json"), status_code=201 if created else 200)


_BATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"type": "array", "items": {"$ref": "#/components/schemas/FeedbackCreate"}},
                        {
                            "type": "object",
                            "properties": {
                                "items": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/FeedbackCreate"},
                                }
                            },
                            "required": ["items"],
                        },
                    ]
                }
            }
        },
    }
}


@router.post("/batch", status_code=status.HTTP_201_CREATED, openapi_extra=_BATCH_BODY)
async def submit_batch(
    db: DbDep, org: OrgDep, body: Annotated[Any, Body()] = None
) -> list[FeedbackPublic]:
    """All-or-nothing: one bad item rejects the batch, naming the index of each bad item."""
    items = parse_batch(FeedbackCreate, body, wrapper="items")
    return [saved for saved, _ in await feedback.submit(db, org_id=org, items=items)]


@router.get("", responses={200: {"headers": {NEXT_CURSOR: {"schema": {"type": "string"}}}}})
async def list_feedback(
    request: Request,
    response: Response,
    db: DbDep,
    org: OrgDep,
    query: Annotated[FeedbackQuery, Query()],
) -> list[FeedbackPublic]:
    """Newest first. When more rows exist, X-Next-Cursor (and Link) name the next page."""
    page, cursor = await feedback.list_feedback(
        db, org_id=org, filters=query, limit=query.limit, cursor=query.cursor
    )
    link_next_page(request, response, cursor)
    return page


@router.get("/summary")
async def summary(db: DbDep, org: OrgDep, filters: Analytics) -> FeedbackSummary:
    return await quality.summary(db, org_id=org, filters=filters)


@router.get("/quality/models")
async def quality_by_model(db: DbDep, org: OrgDep, filters: Analytics) -> list[ModelQuality]:
    return await quality.by_model(db, org_id=org, filters=filters)


@router.get("/quality/model/{model:path}")
async def quality_of_model(
    model: ModelName, db: DbDep, org: OrgDep, filters: Analytics
) -> ModelQuality:
    return await quality.for_model(db, org_id=org, model=model, filters=filters)


@router.get("/quality/prompt/{prompt_id}")
async def quality_by_prompt_version(
    prompt_id: ModelName, db: DbDep, org: OrgDep, filters: Analytics
) -> list[PromptVersionQuality]:
    return await quality.by_prompt_version(db, org_id=org, prompt_id=prompt_id, filters=filters)


@router.get("/trace/{trace_id}")
async def trace_feedback(trace_id: Id, db: DbDep, org: OrgDep) -> list[FeedbackPublic]:
    """All feedback of a trace, oldest first; 404 when neither trace nor feedback exists."""
    return await feedback.of_trace(db, org_id=org, trace_id=trace_id)


@router.get("/trace/{trace_id}/score")
async def trace_score(trace_id: Id, db: DbDep, org: OrgDep) -> TraceScore:
    return await quality.trace_score(db, org_id=org, trace_id=trace_id)


@router.get("/{feedback_id}")
async def get_feedback(feedback_id: Id, db: DbDep, org: OrgDep) -> FeedbackPublic:
    return await feedback.get(db, org_id=org, feedback_id=feedback_id)


@router.patch("/{feedback_id}")
async def update_feedback(
    feedback_id: Id, changes: FeedbackUpdate, db: DbDep, org: OrgDep
) -> FeedbackPublic:
    """Change some fields; absent fields keep their value."""
    return await feedback.update_feedback(db, org_id=org, feedback_id=feedback_id, changes=changes)


@router.delete("/{feedback_id}")
async def delete_feedback(feedback_id: Id, db: DbDep, org: OrgDep) -> dict[str, Any]:
    await feedback.delete_feedback(db, org_id=org, feedback_id=feedback_id)
    return {"deleted": True, "id": feedback_id}
