"""What a caller may see and change beyond its organisation: project-restricted keys and
end-user feedback tokens.

Organisations need no rule here: every service takes the caller's org_id, so another org's rows
are simply not found. A project-restricted key sees its project only; rows of other projects of
its org answer 404 as if absent, so ids leak nothing.
"""

from typing import TypeVar

from pydantic import BaseModel

from agentcost.db import Database
from agentcost.errors import Forbidden, NotFound, Unauthorized
from agentcost.models import (
    ApiKeyCreate,
    FeedbackCreate,
    FeedbackSource,
    IngestResult,
    TraceEvent,
    TracePublic,
)
from agentcost.services import feedback, traces
from agentcost.services.auth import Principal, issue_feedback_token, vote_id

F = TypeVar("F", bound=BaseModel)


def scoped_filters(principal: Principal, filters: F) -> F:
    """Filters narrowed to the caller's project; naming another project is refused."""
    if principal.project is None:
        return filters
    asked = getattr(filters, "project", None)
    if asked not in (None, principal.project):
        raise Forbidden(f"this key is restricted to project '{principal.project}'")
    return filters.model_copy(update={"project": principal.project})


async def scoped_events(
    db: Database, principal: Principal, events: list[TraceEvent]
) -> list[TraceEvent]:
    """Events without a project go to the key's project; another project is refused, and so is
    a trace id that another project of the org already uses (reported as unknown)."""
    if principal.project is None:
        return events
    scoped = []
    for event in events:
        if "project" not in event.model_fields_set:
            event = event.model_copy(update={"project": principal.project})
        elif event.project != principal.project:
            raise Forbidden(f"this key writes only to project '{principal.project}'")
        scoped.append(event)
    existing = await traces.projects_of(
        db, org_id=principal.org_id, trace_ids=[e.trace_id for e in scoped]
    )
    for trace_id, project in existing.items():
        if project != principal.project:
            raise NotFound("trace", trace_id)
    return scoped


async def ingest(
    db: Database,
    principal: Principal,
    events: list[TraceEvent],
    *,
    token_secret: bytes,
    token_ttl: int,
) -> IngestResult:
    """Store events for the caller; a single event's answer carries a feedback token for its
    trace, for the application to hand to its end user's browser."""
    events = await scoped_events(db, principal, events)
    result = await traces.ingest(db, org_id=principal.org_id, events=events)
    if len(events) != 1:
        return result
    [event] = events
    token, expires_at = issue_feedback_token(
        token_secret,
        org_id=principal.org_id,
        trace_id=event.trace_id,
        user_id=event.user_id,
        ttl_seconds=token_ttl,
    )
    return result.model_copy(
        update={"feedback_token": token, "feedback_token_expires_at": expires_at}
    )


def scoped_key_request(principal: Principal, request: ApiKeyCreate) -> ApiKeyCreate:
    """A project's admin makes keys for that project only, so no key outgrows its maker."""
    if principal.project is None:
        return request
    if request.project not in (None, principal.project):
        raise Forbidden(f"this key is restricted to project '{principal.project}'")
    return request.model_copy(update={"project": principal.project})


async def ensure_trace_visible(db: Database, principal: Principal, trace_id: str) -> None:
    if principal.project is None:
        return
    projects = await traces.projects_of(db, org_id=principal.org_id, trace_ids=[trace_id])
    if projects.get(trace_id) != principal.project:
        raise NotFound("trace", trace_id)


def visible_traces(principal: Principal, found: dict[str, TracePublic]) -> dict[str, TracePublic]:
    """Of traces read by id, those the caller may see (a DataLoader reads many at once)."""
    if principal.project is None:
        return found
    return {k: t for k, t in found.items() if t.project == principal.project}


async def visible_trace_ids(db: Database, principal: Principal, trace_ids: set[str]) -> set[str]:
    """Of these trace ids, those the caller may see (feedback and calls follow their trace)."""
    if principal.project is None:
        return trace_ids
    projects = await traces.projects_of(db, org_id=principal.org_id, trace_ids=list(trace_ids))
    return {t for t, project in projects.items() if project == principal.project}


async def ensure_feedback_visible(db: Database, principal: Principal, feedback_id: str) -> None:
    if principal.project is None:
        return
    item = await feedback.get(db, org_id=principal.org_id, feedback_id=feedback_id)
    try:
        await ensure_trace_visible(db, principal, item.trace_id)
    except NotFound:
        raise NotFound("feedback", feedback_id) from None


async def feedback_submission(
    db: Database, principal: Principal, items: list[FeedbackCreate]
) -> list[FeedbackCreate]:
    """Check and shape feedback before it is stored, for keys and feedback tokens alike."""
    if principal.feedback is None:
        for item in items:
            await ensure_trace_visible(db, principal, item.trace_id)
        return items
    claims = principal.feedback
    if len(items) != 1:
        raise Forbidden("a feedback token submits one vote at a time")
    [item] = items
    if item.trace_id != claims.trace_id:
        raise Unauthorized("this feedback token is for another trace")
    if item.source is not FeedbackSource.USER:
        raise Forbidden("a feedback token may only submit feedback with source 'user'")
    if item.call_id is not None or item.id is not None:
        raise Forbidden("a feedback token votes on its trace; id and call_id are not accepted")
    # One vote per (trace, end user): the id is derived, so voting again replaces the vote.
    return [
        item.model_copy(update={"id": vote_id(claims), "user_id": claims.user_id or item.user_id})
    ]
