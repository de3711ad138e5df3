"""Importing history: a backfill of trace events and feedback, all or nothing.

The batch routes keep the quality roll-ups current per request: each retracts and re-adds its
traces' contributions, and for a backfill of months that is most of the work. An import writes
its chunks with the rows and statements of ``traces.ingest`` and ``feedback.submit``, so every
rule (pricing, trace roll-ups, replacing by feedback id) is theirs, but retracts each touched
trace's contribution once, before the trace's first write, and adds the final contributions
once, at the end (``rollups.Maintenance``).

It is one transaction: readers see the whole import or none of it, and an input error anywhere
(raised by the iterables, e.g. a bad line of a file) leaves nothing behind. Other writes wait
for it meanwhile: all of them on SQLite (one writer; a writer in another process, such as the
server, gives up after its busy timeout), those of the same organisation on PostgreSQL (its
roll-up lock).

An organisation's first import (the usual backfill: it has no rows yet, checked under its
roll-up lock) has nothing to retract, so it retracts nothing and images all its traces once at
the end (``rollups.Maintenance.begin_new``). On SQLite, each of the written tables that is
still empty then has its secondary indexes dropped for the rows and built again after them, in
the same transaction: one sort per index instead of an insert at a random place for each row
(at 100k traces / 200k votes the feedback inserts took 2.0 s instead of 6.6 s, plus 0.8 s for
the two indexes; the trace inserts 1.5 s instead of 3.6 s, plus 0.6 s). PostgreSQL keeps its
indexes: dropping one locks its table against every reader until the import commits.

On SQLite the import's connection gets a page cache of up to ``SQLITE_CACHE_KIB`` for the
transaction: with SQLite's default of 2 MiB the index entries of each row land on pages evicted
(and spilled to the WAL) since they were last used, and a 100k-trace import took a fifth longer
(200,000 votes into an empty table alone: 4.2 s against 1.9 s). The cache grows only as pages
are used and is given back before the commit; imports run in the CLI's process, not the
server's.

On PostgreSQL the import refreshes the planner's statistics of the tables it fills each time
they have doubled: planned with the sizes from before the import, the roll-up images scan whole
tables for each chunk (measured: the final image of 20,000 traces took 37 s instead of 1.8 s,
and each chunk's retraction grew with the tables, quadratic in all).
"""

from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager
from itertools import islice
from typing import TypeVar

from sqlalchemy import literal, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from agentcost.db import Database
from agentcost.errors import InvalidInput
from agentcost.models import FeedbackImport, ImportResult, TraceEvent, utcnow
from agentcost.services import feedback as feedback_service
from agentcost.services import rollups, sql
from agentcost.services import traces as traces_service

T = TypeVar("T")

CHUNK = 5_000
SQLITE_CACHE_KIB = 1_048_576
_FIRST_STATISTICS = 10_000  # rows written before the first ANALYZE; then each time they double
_WRITTEN = (sql.traces, sql.calls, sql.feedback)
_ANALYZE = text(f"ANALYZE {', '.join(table.name for table in _WRITTEN)}")
# Secondary indexes as created (automatic ones, for primary keys and UNIQUE, have no SQL).
_SQLITE_INDEXES = (
    "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL"
)


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
    async with db.write() as conn, _sqlite_cache(conn):
        # One apply at the end: this transaction runs on a pooled connection whose temporary
        # tables spill to disk, and applying in parts cost a sixth of the import's feedback.
        maintenance = rollups.Maintenance(conn, apply_every=None)
        new_org = await maintenance.begin_new(org_id)
        statistics = _Statistics(conn)
        async with _indexes_built_after(conn, enabled=new_org):
            for chunk in _chunks(events, chunk_size):
                ingestion = traces_service.prepare(org_id, chunk, now)
                await maintenance.retract(
                    traces_of=traces_service.touches([ingestion]), adds_votes=False
                )
                [accepted] = await traces_service.write(conn, [ingestion])
                calls += accepted
                duplicates += len(chunk) - accepted
                await statistics.written(len(chunk))
            for chunk in _chunks(feedback, chunk_size):
                submission = feedback_service.prepare(org_id, chunk, now)
                await maintenance.retract(**feedback_service.touches([submission]))
                await feedback_service.write(conn, [submission])
                stored_feedback += len(chunk)
                await statistics.written(len(chunk))
        if not calls + duplicates + stored_feedback:
            raise InvalidInput.single("import", "holds no trace events and no feedback")
        await statistics.refresh()
        await maintenance.finish()
    return ImportResult(calls=calls, duplicate_calls=duplicates, feedback=stored_feedback)


@asynccontextmanager
async def _sqlite_cache(conn: AsyncConnection) -> AsyncIterator[None]:
    """A page cache of up to ``SQLITE_CACHE_KIB`` on SQLite for the block (see the module)."""
    if conn.dialect.name != "sqlite":
        yield
        return
    before = (await conn.exec_driver_sql("PRAGMA cache_size")).scalar_one()
    await conn.exec_driver_sql(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    try:
        yield
    finally:
        await conn.exec_driver_sql(f"PRAGMA cache_size={int(before)}")


@asynccontextmanager
async def _indexes_built_after(conn: AsyncConnection, *, enabled: bool) -> AsyncIterator[None]:
    """On SQLite, the secondary indexes of each written table that is empty are dropped for the
    block and built again after it, in the same transaction (see the module). Only for a new
    organisation: the block must not read through them, and ``rollups.Maintenance`` reads
    feedback by trace only for organisations that had rows. Should the block fail, the rollback
    brings them back."""
    if not enabled or conn.dialect.name != "sqlite":
        yield
        return
    indexes: list[tuple[str, str]] = []
    for table in _WRITTEN:
        if (await conn.execute(select(literal(1)).select_from(table).limit(1))).first() is None:
            found = await conn.exec_driver_sql(_SQLITE_INDEXES, (table.name,))
            indexes.extend((name, ddl) for name, ddl in found)
    for name, _ in indexes:
        await conn.exec_driver_sql(f'DROP INDEX "{name}"')
    yield
    for _, ddl in indexes:
        await conn.exec_driver_sql(ddl)


class _Statistics:
    """PostgreSQL's planner statistics kept in step with a growing import (see the module)."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.enabled = conn.dialect.name == "postgresql"
        self.written_rows = 0
        self.analyzed_rows = 0
        self.next_at = _FIRST_STATISTICS

    @property
    def pending(self) -> int:
        return self.written_rows - self.analyzed_rows

    async def written(self, rows: int) -> None:
        self.written_rows += rows
        if self.written_rows >= self.next_at:
            self.next_at = 2 * self.written_rows
            await self.refresh()

    async def refresh(self) -> None:
        if self.enabled and self.pending:
            await self.conn.execute(_ANALYZE)
        self.analyzed_rows = self.written_rows
