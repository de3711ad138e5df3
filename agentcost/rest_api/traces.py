"""AgentCost-compatible trace ingestion and trace reads."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request, Response, status

from agentcost.errors import parse_batch
from agentcost.models import (
    MAX_ID,
    IngestResult,
    Scope,
    TraceDetail,
    TraceEvent,
    TracePublic,
)
from agentcost.rest_api import model_body
from agentcost.rest_api.batches import batch_body
from agentcost.rest_api.deps import (
    AuthDep,
    Authorization,
    DbDep,
    Reader,
    Writer,
    authenticate,
    get_auth,
    get_db,
)
from agentcost.rest_api.pages import NEXT_CURSOR, link_next_page
from agentcost.rest_api.responses import model_response
from agentcost.services import access, trace_detail, traces
from agentcost.services.filters import Page, TraceFilter

router = APIRouter(tags=["traces"])

TraceId = Annotated[str, Path(min_length=1, max_length=MAX_ID)]


class TraceQuery(TraceFilter, Page):
    """Filters and paging of the listing, all in the query string."""


@model_body.post(router, "/trace", status_code=status.HTTP_201_CREATED, response_model=IngestResult)
async def ingest_trace(
    event: TraceEvent, request: Request, authorization: Authorization = None
) -> Response:
    """One LLM call event; events sharing a trace_id build one trace.

    The answer carries a feedback token for the trace, to hand to the end user's browser.
    """
    db, state = await get_db(request), await get_auth(request)
    caller = await authenticate(db, state, authorization)
    caller.require(Scope.INGEST)
    result = await access.ingest(
        db,
        caller,
        [event],
        token_secret=await state.token_secret(db),
        token_ttl=state.settings.feedback_token_ttl,
    )
    return model_response(result, status.HTTP_201_CREATED)


@router.post(
    "/trace/batch",
    status_code=status.HTTP_201_CREATED,
    response_model=IngestResult,
    openapi_extra=batch_body("TraceEvent", "events"),
)
async def ingest_batch(
    db: DbDep, caller: Writer, state: AuthDep, body: Annotated[Any, Body()] = None
) -> Response:
    """All-or-nothing: one bad event rejects the batch, naming the index of each bad event."""
    result = await access.ingest(
        db,
        caller,
        parse_batch(TraceEvent, body, wrapper="events"),
        token_secret=await state.token_secret(db),
        token_ttl=state.settings.feedback_token_ttl,
    )
    return model_response(result, status.HTTP_201_CREATED)


@router.get("/traces", responses={200: {"headers": {NEXT_CURSOR: {"schema": {"type": "string"}}}}})
async def list_traces(
    request: Request,
    response: Response,
    db: DbDep,
    caller: Reader,
    query: Annotated[TraceQuery, Query()],
) -> list[TracePublic]:
    """Newest first. When more rows exist, X-Next-Cursor (and Link) name the next page."""
    page, cursor = await traces.list_traces(
        db,
        org_id=caller.org_id,
        filters=access.scoped_filters(caller, query),
        limit=query.limit,
        cursor=query.cursor,
    )
    link_next_page(request, response, cursor)
    return page


@router.get("/traces/{trace_id}")
async def get_trace(trace_id: TraceId, db: DbDep, caller: Reader) -> TraceDetail:
    """The trace with its calls, its feedback and its score."""
    await access.ensure_trace_visible(db, caller, trace_id)
    return await trace_detail.get_trace_detail(db, org_id=caller.org_id, trace_id=trace_id)
