"""An import stores what the same events and votes sent through ingest and submit store, with
roll-ups equal to a full recomputation; it is all or nothing, and it keeps feedback's dates."""

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.engine import Engine

from agentcost.db import Database
from agentcost.errors import FieldError, InvalidInput
from agentcost.models import FeedbackCreate, FeedbackImport, TraceEvent
from agentcost.services import feedback, imports, rollups, traces
from agentcost.services.filters import FeedbackFilter
from agentcost.services.imports import import_history
from agentcost.services.sql import calls
from agentcost.services.sql import feedback as feedback_table
from agentcost.services.sql import traces as traces_table

pytestmark = pytest.mark.anyio

T0 = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)
TRACE_IDS = [f"t{i}" for i in range(5)]
SERVER_CLOCK = {"created_at", "updated_at"}  # when the rows were written, not what they hold

events = st.builds(
    lambda trace_id, model, cost, call_id, minutes, prompt: TraceEvent(
        trace_id=trace_id,
        model=model,
        # Sums of these are exact in any order, so the two paths' floats compare equal.
        cost=cost,
        call_id=call_id,
        project="web",
        timestamp=T0 + timedelta(minutes=minutes),
        prompt_id=prompt,
        prompt_version=1 if prompt else None,
    ),
    trace_id=st.sampled_from(TRACE_IDS),
    model=st.sampled_from(["m-big", "m-small"]),
    cost=st.none() | st.sampled_from([0.0, 0.25, 0.5, 0.125]),
    call_id=st.sampled_from(["c1", "c2", "c3"]),
    minutes=st.integers(0, 6 * 60),
    prompt=st.none() | st.just("bot"),
)
votes = st.builds(
    FeedbackImport,
    trace_id=st.sampled_from([*TRACE_IDS, "ghost"]),
    score=st.sampled_from([-1, 0, 1]),
    source=st.sampled_from(["user", "eval"]),
    call_id=st.none() | st.sampled_from(["c1", "c9"]),
    id=st.none() | st.sampled_from(["v1", "v2", "v3"]),
)


async def snapshot(db: Database, org: str) -> dict[str, Any]:
    """The org's rows, with server-made ids and write times left out."""
    zero = rollups.COUNT_FIELDS
    async with db.read() as conn:

        async def rows(table: Any, *, drop: set[str]) -> list[tuple[Any, ...]]:
            kept = [c for c in table.c if c.name not in drop | {"org_id"}]
            found = await conn.execute(select(*kept).where(table.c.org_id == org))
            return sorted((tuple(r) for r in found), key=repr)

        return {
            "traces": await rows(traces_table, drop=SERVER_CLOCK),
            "calls": await rows(calls, drop=SERVER_CLOCK),
            # Ids the server made differ between the two paths; client ids must match.
            "feedback": await rows(feedback_table, drop=SERVER_CLOCK | {"id"}),
            "feedback ids": sorted(
                (
                    await conn.execute(
                        select(feedback_table.c.id).where(
                            feedback_table.c.org_id == org, feedback_table.c.id.like("v%")
                        )
                    )
                ).scalars()
            ),
            # A group whose votes all moved away keeps a row of zeros: the same as no row.
            "rollups": [r for r in await rows(rollups.rollups, drop=set()) if any(r[-len(zero) :])],
        }


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    before=st.lists(st.one_of(events, votes), max_size=6),
    imported_events=st.lists(events, max_size=12),
    imported_votes=st.lists(votes, max_size=12),
    chunk_size=st.integers(1, 5),
)
async def test_an_import_stores_what_the_api_stores(
    db: Database,
    before: list[Any],
    imported_events: list[TraceEvent],
    imported_votes: list[FeedbackImport],
    chunk_size: int,
) -> None:
    if not imported_events and not imported_votes:
        imported_votes = [FeedbackImport(trace_id="t0", score=1)]
    by_api, by_import = (f"o-{uuid.uuid4().hex[:8]}" for _ in range(2))
    for org in (by_api, by_import):  # the same history already there
        for item in before:
            if isinstance(item, TraceEvent):
                await traces.ingest(db, org_id=org, events=[item])
            else:
                await feedback.submit(db, org_id=org, items=[item])

    for event in imported_events:
        await traces.ingest(db, org_id=by_api, events=[event])
    for vote in imported_votes:  # one at a time: a later line with the same id replaces
        await feedback.submit(db, org_id=by_api, items=[vote])
    result = await import_history(
        db,
        org_id=by_import,
        events=imported_events,
        feedback=imported_votes,
        chunk_size=chunk_size,
    )

    assert result.feedback == len(imported_votes)
    assert result.calls + result.duplicate_calls == len(imported_events)
    imported = await snapshot(db, by_import)
    assert imported == await snapshot(db, by_api)
    async with db.write() as conn:
        await conn.run_sync(rollups.rebuild, by_import)
    assert (await snapshot(db, by_import))["rollups"] == imported["rollups"]


async def test_feedback_keeps_the_date_it_was_given(db: Database) -> None:
    org = f"o-{uuid.uuid4().hex[:8]}"
    given_at = datetime(2024, 3, 5, 12, 30, tzinfo=UTC)
    started = datetime.now(UTC)
    await import_history(
        db,
        org_id=org,
        feedback=[
            FeedbackImport(id="dated", trace_id="t1", score=1, created_at=given_at),
            FeedbackImport(id="undated", trace_id="t1", score=-1),
        ],
    )
    dated = await feedback.get(db, org_id=org, feedback_id="dated")
    undated = await feedback.get(db, org_id=org, feedback_id="undated")
    assert dated.created_at == given_at
    assert undated.created_at >= started
    # The listing is by date given, newest first.
    page, _ = await feedback.list_feedback(db, org_id=org, filters=FeedbackFilter(), limit=10)
    assert [item.id for item in page] == ["undated", "dated"]


async def test_a_line_that_replaces_a_vote_replaces_its_date_when_it_gives_one(
    db: Database,
) -> None:
    org = f"o-{uuid.uuid4().hex[:8]}"
    first, later, earlier = (datetime(2024, month, 1, tzinfo=UTC) for month in (1, 6, 3))

    async def imported(*lines: FeedbackImport) -> tuple[int, datetime]:
        await import_history(db, org_id=org, feedback=lines)
        stored = await feedback.get(db, org_id=org, feedback_id="v")
        return stored.score, stored.created_at

    # Within one import the later line wins, date included.
    assert await imported(
        FeedbackImport(id="v", trace_id="t1", score=1, created_at=first),
        FeedbackImport(id="v", trace_id="t1", score=-1, created_at=later),
    ) == (-1, later)
    # A later import may move the date back; a line without a date keeps the stored one, as a
    # submission through the API does.
    assert await imported(FeedbackImport(id="v", trace_id="t1", score=0, created_at=earlier)) == (
        0,
        earlier,
    )
    assert await imported(FeedbackImport(id="v", trace_id="t1", score=1)) == (1, earlier)
    [(item, new)] = await feedback.submit(
        db, org_id=org, items=[FeedbackCreate(id="v", trace_id="t1", score=-1)]
    )
    assert (new, item.created_at) == (False, earlier)


async def test_a_failure_midway_leaves_nothing(db: Database) -> None:
    org = f"o-{uuid.uuid4().hex[:8]}"
    await traces.ingest(db, org_id=org, events=[TraceEvent(trace_id="kept", model="m", cost=1.0)])
    await feedback.submit(db, org_id=org, items=[FeedbackCreate(trace_id="kept", score=1)])
    stored = await snapshot(db, org)

    def lines() -> Iterator[TraceEvent]:
        for minute in range(7):  # two chunks written before the bad line
            yield TraceEvent(trace_id=f"new{minute}", model="m", cost=0.5)
        raise InvalidInput([FieldError("history.jsonl line 8: score", "must be one of ...")])

    with pytest.raises(InvalidInput, match="line 8"):
        await import_history(
            db,
            org_id=org,
            events=lines(),
            feedback=[FeedbackImport(trace_id="kept", score=-1)],
            chunk_size=3,
        )
    assert await snapshot(db, org) == stored


async def test_postgresql_statistics_are_refreshed_each_time_the_import_doubles(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    refreshed: list[int] = []
    refresh = imports._Statistics.refresh

    async def recorded(self: imports._Statistics) -> None:
        if self.enabled and self.pending:
            refreshed.append(self.pending)
        await refresh(self)

    monkeypatch.setattr(imports._Statistics, "refresh", recorded)
    monkeypatch.setattr(imports, "_FIRST_STATISTICS", 2)
    result = await import_history(
        db,
        org_id=f"o-{uuid.uuid4().hex[:8]}",
        events=[TraceEvent(trace_id=f"t{i}", model="m", cost=0.5) for i in range(9)],
        feedback=[FeedbackImport(trace_id="t0", score=1) for _ in range(4)],
        chunk_size=1,
    )
    assert (result.calls, result.feedback) == (9, 4)
    # After 2 rows, 2 more (4 in all), 4 more (8), then the rest before the roll-ups are added.
    assert refreshed == ([2, 2, 4, 5] if db.dialect == "postgresql" else [])


async def test_an_empty_import_is_refused(db: Database) -> None:
    with pytest.raises(InvalidInput, match="holds no trace events and no feedback"):
        await import_history(db, org_id="o-empty", events=iter(()), feedback=[])


@pytest.fixture
def statements() -> Iterator[list[str]]:
    """Every statement the test's engines run, in order."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    sa_event.listen(Engine, "before_cursor_execute", record)
    yield seen
    sa_event.remove(Engine, "before_cursor_execute", record)


@pytest.mark.parametrize("fails", [False, True], ids=["imported", "failed"])
async def test_sqlite_import_widens_its_page_cache_and_gives_it_back(
    db: Database, fails: bool, statements: list[str]
) -> None:
    if not db.is_sqlite:
        pytest.skip("a SQLite connection setting")

    def lines() -> Iterator[TraceEvent]:
        yield TraceEvent(trace_id="t", call_id="c", model="m", cost=0.5)
        if fails:
            raise InvalidInput.single("line 2", "is not JSON")

    async with db.write() as conn:
        before = (await conn.exec_driver_sql("PRAGMA cache_size")).scalar_one()
    start = len(statements)
    if fails:
        with pytest.raises(InvalidInput):
            await import_history(db, org_id=f"org-{uuid.uuid4().hex[:8]}", events=lines())
    else:
        await import_history(db, org_id=f"org-{uuid.uuid4().hex[:8]}", events=lines())
    pragmas = [s for s in statements[start:] if s.startswith("PRAGMA cache_size")]
    assert pragmas == [
        "PRAGMA cache_size",
        f"PRAGMA cache_size=-{imports.SQLITE_CACHE_KIB}",
        f"PRAGMA cache_size={before}",
    ]
    async with db.write() as conn:
        assert (await conn.exec_driver_sql("PRAGMA cache_size")).scalar_one() == before


def history(traces_count: int) -> tuple[list[TraceEvent], list[FeedbackImport]]:
    """Events and votes touching every path of a write: named and made ids, several calls to
    a trace, a call-level vote, a vote replaced by id, votes on a trace that never arrives."""
    events = [
        TraceEvent(
            trace_id=f"t{i}",
            call_id=f"c{step}",
            model=["m-big", "m-small"][(i + step) % 2],
            cost=0.25 * (step + 1),
            timestamp=T0 + timedelta(minutes=7 * i + step),
            prompt_id="bot" if i % 3 else None,
            prompt_version=1 + i % 2 if i % 3 else None,
        )
        for i in range(traces_count)
        for step in range(1 + i % 3)
    ]
    votes = [
        FeedbackImport(
            trace_id=f"t{i % (traces_count + 2)}",  # the last two traces never arrive
            call_id="c1" if i % 4 == 0 else None,
            score=[1, -1, 0][i % 3],
            source=["user", "eval"][i % 2],
            id=f"v{i % 5}" if i % 2 else None,  # named ids recur: later lines replace
        )
        for i in range(3 * traces_count)
    ]
    return events, votes


async def sqlite_indexes(db: Database) -> list[tuple[str, str]]:
    """The secondary indexes of the tables an import writes, as created."""
    async with db.read() as conn:
        found = []
        for table in (traces_table, calls, feedback_table):
            found += (await conn.exec_driver_sql(imports._SQLITE_INDEXES, (table.name,))).all()
        assert len(found) == 6  # four of traces, two of feedback
        return sorted((name, ddl) for name, ddl in found)


async def test_an_import_into_an_empty_database_builds_its_indexes_after_the_rows(
    db: Database, statements: list[str]
) -> None:
    indexes = await sqlite_indexes(db) if db.is_sqlite else []
    events, votes = history(20)
    imported, by_api = (f"o-{uuid.uuid4().hex[:8]}" for _ in range(2))

    result = await import_history(db, org_id=imported, events=events, feedback=votes, chunk_size=7)

    assert (result.calls, result.duplicate_calls, result.feedback) == (len(events), 0, len(votes))
    dropped = [s for s in statements if s.startswith("DROP INDEX")]
    created = [s for s in statements if s.startswith("CREATE INDEX")]
    if db.is_sqlite:  # every secondary index of traces and feedback, dropped and built again
        assert sorted(dropped) == sorted(f'DROP INDEX "{name}"' for name, _ in indexes)
        assert sorted(created) == sorted(ddl for _, ddl in indexes)
        assert statements.index(created[0]) > max(
            i for i, s in enumerate(statements) if s.startswith("INSERT INTO feedback")
        )
        assert await sqlite_indexes(db) == indexes
    else:  # PostgreSQL would lock the tables against every reader meanwhile
        assert (dropped, created) == ([], [])
    for event in events:
        await traces.ingest(db, org_id=by_api, events=[event])
    for vote in votes:
        await feedback.submit(db, org_id=by_api, items=[vote])
    stored = await snapshot(db, imported)
    assert stored == await snapshot(db, by_api)
    async with db.write() as conn:
        await conn.run_sync(rollups.rebuild, imported)
    assert (await snapshot(db, imported))["rollups"] == stored["rollups"]


async def test_an_import_into_an_empty_database_that_fails_leaves_it_as_it_was(
    db: Database,
) -> None:
    indexes = await sqlite_indexes(db) if db.is_sqlite else []
    events, votes = history(6)

    def lines() -> Iterator[FeedbackImport]:
        yield from votes
        raise InvalidInput.single("history.jsonl line 40", "is not JSON")

    with pytest.raises(InvalidInput, match="line 40"):
        await import_history(db, org_id="o-new", events=events, feedback=lines(), chunk_size=4)
    async with db.read() as conn:
        for table in (traces_table, calls, feedback_table, rollups.rollups):
            assert (await conn.execute(select(table.c.org_id))).first() is None
    if db.is_sqlite:
        assert await sqlite_indexes(db) == indexes


async def test_a_new_organisation_is_imaged_once_an_existing_one_per_touched_trace(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    images: list[tuple[int, str, list[str] | None]] = []
    record = rollups.Maintenance._record

    async def recorded(
        self: rollups.Maintenance, sign: int, org_id: str, trace_ids: list[str] | None
    ) -> list[str]:
        images.append((sign, org_id, trace_ids))
        return await record(self, sign, org_id, trace_ids)

    monkeypatch.setattr(rollups.Maintenance, "_record", recorded)
    events, votes = history(4)
    await traces.ingest(db, org_id="o-old", events=[TraceEvent(trace_id="t0", model="m")])
    images.clear()
    for org in ("o-new", "o-old"):
        await import_history(db, org_id=org, events=events, feedback=votes, chunk_size=5)

    # Nothing retracted for the new org (it had no rows), and all its traces imaged at once;
    # the other org retracts each trace before its first write and adds them back at the end.
    assert images[0] == (1, "o-new", None)
    old = images[1:]
    assert all(org == "o-old" for _, org, _ in old)
    touched = sorted({e.trace_id for e in events} | {v.trace_id for v in votes})
    assert sorted(i for sign, _, ids in old if sign < 0 for i in ids or ()) == touched
    assert [ids for sign, _, ids in old if sign > 0] == [touched]
    for org in ("o-new", "o-old"):
        kept = (await snapshot(db, org))["rollups"]
        assert kept
        async with db.write() as conn:
            await conn.run_sync(rollups.rebuild, org)
        assert (await snapshot(db, org))["rollups"] == kept
