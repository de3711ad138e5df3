"""Importing history: a backfill of trace events and feedback, all or nothing.

The batch routes keep the quality roll-ups current per request: each retracts and re-adds its
traces' contributions, and for a backfill of months that is most of the work. An import writes
its chunks with the rows and statements of ``traces.ingest`` and ``feedback.submit``, so every
rule (pricing, trace roll-ups, replacing by feedback id) is theirs, but retracts each touched
trace's contribution once, before the trace's first write, and adds the final contributions
once, at the end (``rollups.Maintenance``).

It is one transaction: readers see the whole import or none of it, and an input error anywhere
(raised by the iterables, e.g. a bad line of a file) leaves nothing behind. Other writes wait
for it meanwhile: all of them on SQLite (one writer), those of the same organisation on
PostgreSQL (its roll-up lock).
"""

from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from typing import TypeVar

from agentcost.db import Database
from agentcost.errors import InvalidInput
from agentcost.models import FeedbackImport, ImportResult, TraceEvent, utcnow
from agentcost.services import feedback as feedback_service
from agentcost.services import rollups
from agentcost.services import traces as traces_service

T = TypeVar("T")

CHUNK = 5_000


def _chunks(items: Iterable[T], size: int) -> Iterator[Sequence[T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


async def import_history(
    db: Database,
    *,
    org_id: str,
    events: Iterable[TraceEvent] = (),
    feedback: Iterable[FeedbackImport] = (),
    chunk_size: int = CHUNK,
) -> ImportResult:
    """Store the events, then the feedback, in one transaction; both are read as they go.

    Within the import, as in the API, a call id already stored is a duplicate and a feedback id
    already stored is replaced (a later line with the same id replaces an earlier one).
    """
    calls = duplicates = stored_feedback = 0
    now = utcnow()
    async with db.write() as conn:
        maintenance = rollups.Maintenance(conn)
        for chunk in _chunks(events, chunk_size):
            ingestion = traces_service.prepare(org_id, chunk, now)
            await maintenance.retract(traces_of=traces_service.touches([ingestion]))
            [accepted] = await traces_service.write(conn, [ingestion])
            calls += accepted
            duplicates += len(chunk) - accepted
        for chunk in _chunks(feedback, chunk_size):
            submission = feedback_service.prepare(org_id, chunk, now)
            await maintenance.retract(**feedback_service.touches([submission]))
            await feedback_service.write(conn, [submission])
            stored_feedback += len(chunk)
        if not calls + duplicates + stored_feedback:
            raise InvalidInput.single("import", "holds no trace events and no feedback")
        await maintenance.finish()
    return ImportResult(calls=calls, duplicate_calls=duplicates, feedback=stored_feedback)
