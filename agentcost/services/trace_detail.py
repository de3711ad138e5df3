"""One trace with everything a detail view shows, composed from the other services."""

from agentcost.db import Database
from agentcost.models import TraceDetail
from agentcost.services import feedback, quality, traces


async def get_trace_detail(db: Database, *, org_id: str, trace_id: str) -> TraceDetail:
    trace = await traces.get_trace(db, org_id=org_id, trace_id=trace_id)
    ids = [trace_id]
    calls = await traces.get_calls(db, org_id=org_id, trace_ids=ids)
    votes = await feedback.for_traces(db, org_id=org_id, trace_ids=ids)
    scores = await quality.trace_scores(db, org_id=org_id, trace_ids=ids)
    return TraceDetail(
        **trace.model_dump(),
        calls=calls[trace_id],
        feedback=votes[trace_id],
        score=scores[trace_id],
    )
