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


@pytest.mark.parametrize("fails", [False, True], ids=["imported", "failed"])
async def test_sqlite_import_widens_its_page_cache_and_gives_it_back(
    db: Database, fails: bool
) -> None:
    if not db.is_sqlite:
        pytest.skip("a SQLite connection setting")
    pragmas: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("PRAGMA cache_size"):
            pragmas.append(statement)

    def lines() -> Iterator[TraceEvent]:
        yield TraceEvent(trace_id="t", call_id="c", model="m", cost=0.5)
        if fails:
            raise InvalidInput.single("line 2", "is not JSON")

    async with db.write() as conn:
        before = (await conn.exec_driver_sql("PRAGMA cache_size")).scalar_one()
    sa_event.listen(Engine, "before_cursor_execute", record)
    try:
        if fails:
            with pytest.raises(InvalidInput):
                await import_history(db, org_id=f"org-{uuid.uuid4().hex[:8]}", events=lines())
        else:
            await import_history(db, org_id=f"org-{uuid.uuid4().hex[:8]}", events=lines())
    finally:
        sa_event.remove(Engine, "before_cursor_execute", record)
    assert pragmas == [
        "PRAGMA cache_size",
        f"PRAGMA cache_size=-{imports.SQLITE_CACHE_KIB}",
        f"PRAGMA cache_size={before}",
    ]
    async with db.write() as conn:
        assert (await conn.exec_driver_sql("PRAGMA cache_size")).scalar_one() == before
