"""The hot write path rehearsed at start-up, so the first requests do not compile it."""

from agentcost.db import Database
from agentcost.models import FeedbackCreate, TraceEvent, utcnow
from agentcost.services import feedback, traces

# Rolled back, so nothing of it is ever stored or seen; the names only mark it in logs.
_ORG = "agentcost-warm-up"
_TRACE = "warm-up"


async def warm_up(db: Database) -> None:
    """A trace with one call and a vote on it, by a client-made id (the path that looks up
    stored feedback), stored and rolled back on the group-commit writer's connection: every
    statement of both grouped writes, roll-up images and apply included, gets compiled."""
    now = utcnow()
    event = TraceEvent(
        trace_id=_TRACE, call_id="c", model="warm-up", cost=0.001, prompt_id="p", prompt_version=1
    )
    vote = FeedbackCreate(id="warm-up", trace_id=_TRACE, call_id="c", score=1)
    await db.rehearse(
        (traces.store, traces.prepare(_ORG, [event], now)),
        (feedback.store, feedback.prepare(_ORG, [vote], now)),
    )
