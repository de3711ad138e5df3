"""Reads of one statement (``Precompiled.rows``) answer the same whether they skip the engine
(``Database.read_direct``: SQLite in the event loop's thread, PostgreSQL through asyncpg alone)
or the engine runs them; they take the first way unless something watches the engine's
statements."""

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event, func, select

from agentcost import sqlite_driver
from agentcost.db import Database
from agentcost.errors import NotFound
from agentcost.models import FeedbackCreate, FeedbackSource, TraceEvent
from agentcost.services import cursors, feedback, quality, sql, traces
from agentcost.services.filters import FeedbackFilter, ScoreFilter, TraceFilter, TraceOrder
from agentcost.services.sql import Precompiled, of_traces, trace_params

pytestmark = pytest.mark.anyio

ORG = "org-loop"
WHEN = datetime(2026, 5, 4, 3, 2, 1, 123456, tzinfo=UTC)
LATER = datetime(2100, 1, 1, tzinfo=UTC)

# Every read that goes through ``Precompiled.rows``, with values that hit rows, miss and repeat.
READS: dict[str, Callable[[Database], Awaitable[Any]]] = {
    "get_traces": lambda db: traces.get_traces(db, org_id=ORG, trace_ids=["t1", "t2", "nope"]),
    "get_trace": lambda db: traces.get_trace(db, org_id=ORG, trace_id="t2"),
    "get_calls": lambda db: traces.get_calls(db, org_id=ORG, trace_ids=["t1", "t2", "t3"]),
    "get_calls_by_ids": lambda db: traces.get_calls_by_ids(
        db, org_id=ORG, keys=[("t1", "c1"), ("t1", "c2"), ("t2", "nope")]
    ),
    "projects_of": lambda db: traces.projects_of(db, org_id=ORG, trace_ids=["t1", "t2", "t3"]),
    "feedback.get_many": lambda db: feedback.get_many(
        db, org_id=ORG, feedback_ids=["f1", "f2", "f3", "nope"]
    ),
    "feedback.get": lambda db: feedback.get(db, org_id=ORG, feedback_id="f3"),
    "feedback.for_traces": lambda db: feedback.for_traces(
        db, org_id=ORG, trace_ids=["t1", "t2", "t3"]
    ),
    "trace_scores": lambda db: quality.trace_scores(db, org_id=ORG, trace_ids=["t1", "t3", "x"]),
    "list_feedback": lambda db: feedback.list_feedback(
        db, org_id=ORG, filters=FeedbackFilter(since=WHEN, until=LATER), limit=2
    ),
    "list_feedback, every filter": lambda db: feedback.list_feedback(
        db,
        org_id=ORG,
        filters=FeedbackFilter(
            project="default",
            model="m-a",
            score=1,
            source=FeedbackSource.USER,
            trace_id="t1",
            tag="a",
            since=WHEN,
            until=LATER,
        ),
        limit=5,
    ),
    "list_feedback, next page": lambda db: feedback.list_feedback(
        db,
        org_id=ORG,
        filters=FeedbackFilter(),
        limit=5,
        cursor=cursors.encode("feedback", LATER.replace(tzinfo=None).isoformat(), "zz"),
    ),
    "list_traces, every filter": lambda db: traces.list_traces(
        db,
        org_id=ORG,
        filters=TraceFilter(project="default", model="m-a", prompt_id="p", since=WHEN, until=LATER),
        scores=ScoreFilter(min_score=-0.5, max_score=0.5, has_feedback=True),
        limit=5,
    ),
    "list_traces, without votes": lambda db: traces.list_traces(
        db, org_id=ORG, filters=TraceFilter(), scores=ScoreFilter(has_feedback=False), limit=5
    ),
    "list_traces, next page": lambda db: traces.list_traces(
        db,
        org_id=ORG,
        filters=TraceFilter(),
        limit=1,
        cursor=cursors.encode("trace", LATER.replace(tzinfo=None).isoformat(), "zz"),
    ),
    "list_traces by cost, next page": lambda db: traces.list_traces(
        db,
        org_id=ORG,
        filters=TraceFilter(),
        limit=5,
        order=TraceOrder.COST,
        cursor=cursors.encode("trace-cost", 1.0, "zz"),
    ),
    "list_traces by cost, after an unknown cost": lambda db: traces.list_traces(
        db,
        org_id=ORG,
        filters=TraceFilter(),
        limit=5,
        order=TraceOrder.COST,
        cursor=cursors.encode("trace-cost", None, "zz"),
    ),
}


async def _fill(db: Database) -> None:
    """Dates, JSON objects and lists, NULLs, an error status and votes on a trace nobody sent."""
    await traces.ingest(
        db,
        org_id=ORG,
        events=[
            TraceEvent(
                trace_id="t1", call_id="c1", model="m-a", cost=0.25, input_tokens=10,
                timestamp=WHEN, metadata={"prompt_id": "p", "nested": {"k": [1, "two", None]}},
            ),
            TraceEvent(trace_id="t1", call_id="c2", model="m-b", latency_ms=12.5, timestamp=WHEN),
            TraceEvent(
                trace_id="t2", model="m-a", status="error", error="boom", project="other",
                user_id="u1", session_id="s1",
            ),
        ],
    )  # fmt: skip
    await feedback.submit(
        db,
        org_id=ORG,
        items=[
            FeedbackCreate(id="f1", trace_id="t1", score=1, tags=["a", "b"], metadata={"n": 1}),
            FeedbackCreate(id="f2", trace_id="t1", score=-1, comment="meh", user_id="u2"),
            FeedbackCreate(id="f3", trace_id="t3", score=0, call_id="c9", source="automated"),
        ],
    )


@pytest.fixture
def served_directly(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The statements answered without the engine (not those handed back to it)."""
    answered: list[str] = []
    original = Database.read_direct

    async def read_direct(self: Database, operation: str, parameters: Any) -> Any:
        found = await original(self, operation, parameters)
        if found is not None:
            answered.append(operation)
        return found

    monkeypatch.setattr(Database, "read_direct", read_direct)
    return answered


@pytest.fixture(autouse=True)
def no_hold_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine busy enough to stall a read past the limit would send it to the engine."""
    monkeypatch.setattr(sqlite_driver, "INLINE_HOLD_LIMIT", 60.0)


async def test_each_read_answers_the_same_in_the_loop_and_through_the_engine(
    db: Database, served_directly: list[str]
) -> None:
    await _fill(db)
    first = {name: await read(db) for name, read in READS.items()}
    in_loop = len(served_directly)
    seen: list[str] = []
    event.listen(db.engine.sync_engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    second = {name: await read(db) for name, read in READS.items()}
    assert second == first
    # Through the engine the second time: the listener saw every statement, the loop none.
    assert len(seen) == len(READS) and len(served_directly) == in_loop
    assert in_loop == len(READS)
    # The values themselves, converted as the engine converts them.
    assert first["get_traces"]["t2"].status == "error"
    assert first["get_traces"]["t1"].metadata["nested"] == {"k": [1, "two", None]}
    assert first["get_trace"] == first["get_traces"]["t2"]
    [c1, c2] = first["get_calls"]["t1"]
    assert (c1.call_id, c1.timestamp, c1.cost, c2.latency_ms) == ("c1", WHEN, 0.25, 12.5)
    assert first["get_calls"]["t3"] == [] and set(first["get_calls_by_ids"]) == {
        ("t1", "c1"),
        ("t1", "c2"),
    }
    assert first["projects_of"] == {"t1": "default", "t2": "other"}
    assert first["feedback.get_many"]["f1"].tags == ["a", "b"]
    assert first["feedback.get_many"]["f1"].metadata == {"n": 1}
    assert first["feedback.get_many"]["f2"].comment == "meh"
    assert first["feedback.get"].created_at.tzinfo is not None
    assert [f.id for f in first["feedback.for_traces"]["t1"]] == ["f1", "f2"]
    scores = first["trace_scores"]
    assert (scores["t1"].total, scores["t1"].positive, scores["t1"].negative) == (2, 1, 1)
    assert (scores["t3"].total, scores["x"].total, scores["x"].score) == (1, 0, None)
    page, after = first["list_feedback"]
    assert [f.id for f in page] == ["f3", "f2"] and after is not None
    assert [f.id for f in first["list_feedback, every filter"][0]] == ["f1"]
    # A cursor written without an offset pages too: every vote came before 2100-01-01.
    assert [f.id for f in first["list_feedback, next page"][0]] == ["f3", "f2", "f1"]

    def listed(name: str) -> tuple[list[str], bool]:
        page, after = first[name]
        return [t.trace_id for t in page], after is not None

    # t1's votes average 0; t2 has none, no cost and the newer time.
    assert listed("list_traces, every filter") == (["t1"], False)
    assert listed("list_traces, without votes") == (["t2"], False)
    assert listed("list_traces, next page") == (["t2"], True)
    assert listed("list_traces by cost, next page") == (["t1", "t2"], False)
    assert listed("list_traces by cost, after an unknown cost") == (["t2"], False)


async def test_a_read_of_nothing_found_answers_not_found_both_ways(
    db: Database, served_directly: list[str]
) -> None:
    await _fill(db)
    for _ in range(2):  # without the engine, then through it
        with pytest.raises(NotFound, match="trace"):
            await traces.get_trace(db, org_id=ORG, trace_id="nope")
        with pytest.raises(NotFound, match="feedback"):
            await feedback.get(db, org_id=ORG, feedback_id="nope")
        assert len(served_directly) == 2
        event.listen(db.engine.sync_engine, "before_cursor_execute", lambda *a: None)


async def test_rows_carry_the_types_the_engine_gives(
    db: Database, served_directly: list[str]
) -> None:
    """Compared as dicts with each value's type, before any model could coerce them: booleans,
    dates, JSON, NULLs and labelled counts."""
    await _fill(db)
    statements = {
        "traces": Precompiled(select(sql.traces).where(*of_traces(sql.traces))),
        "counts": Precompiled(
            select(
                sql.feedback.c.trace_id,
                func.count().label("total"),
                func.max(sql.feedback.c.created_at).label("last"),
            )
            .where(*of_traces(sql.feedback))
            .group_by(sql.feedback.c.trace_id)
        ),
    }
    params = trace_params(ORG, ["t1", "t2", "t3"])

    def typed(rows: list[dict[str, Any]]) -> list[dict[str, tuple[type, Any]]]:
        """In trace order: neither statement orders its rows."""
        ordered = sorted(rows, key=lambda row: row["trace_id"])
        return [{k: (type(v), v) for k, v in row.items()} for row in ordered]

    first = {name: typed(await s.rows(db, params)) for name, s in statements.items()}
    assert len(served_directly) == len(statements)
    event.listen(db.engine.sync_engine, "before_cursor_execute", lambda *a: None)
    second = {name: typed(await s.rows(db, params)) for name, s in statements.items()}
    assert second == first
    t1 = next(row for row in first["traces"] if row["trace_id"][1] == "t1")
    assert t1["cost_computed"][0] is bool and t1["started_at"][0] is datetime
    assert t1["metadata"][0] is dict and t1["name"] == (type(None), None)
    assert [(row["trace_id"][1], row["total"]) for row in first["counts"]] == [
        ("t1", (int, 2)),
        ("t3", (int, 1)),
    ]
