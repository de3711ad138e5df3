"""A page of traces with calls, feedback and score costs a fixed number of SQL statements."""

import inspect
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event
from strawberry.dataloader import DataLoader

from agentcost.db import Database
from agentcost.graphql_api import schema
from agentcost.graphql_api.context import Context
from agentcost.graphql_api.dataloaders import Loaders, loaded
from agentcost.models import FeedbackCreate, TraceEvent
from agentcost.services import feedback, traces
from agentcost.services.auth import open_principal

pytestmark = pytest.mark.anyio

NESTED = """
query($first: Int!) {
  traces(first: $first) {
    edges {
      node {
        traceId cost
        calls { callId model cost }
        feedback { feedbackId score trace { traceId } }
        score { total score }
      }
    }
    pageInfo { hasNextPage }
  }
}
"""
# Transaction control is not a query; SQLite's BEGIN is issued through the cursor, asyncpg's not.
_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


@contextmanager
def counting(db: Database) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        if not sql.lstrip().upper().startswith(_CONTROL):
            statements.append(sql)

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)


async def seed(db: Database, n: int) -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    events = [
        TraceEvent(
            trace_id=f"t{i:03}",
            call_id=f"c{i}-{j}",
            model="gpt-4.1" if j == 0 else "gpt-4.1-mini",
            cost=0.001 * (j + 1),
            timestamp=start + timedelta(minutes=i, seconds=j),
        )
        for i in range(n)
        for j in range(2)
    ]
    await traces.ingest(db, org_id="default", events=events)
    votes = [
        FeedbackCreate(trace_id=f"t{i:03}", score=1 if j else -1, id=f"f{i}-{j}")
        for i in range(n)
        for j in range(2)
    ]
    await feedback.submit(db, org_id="default", items=votes)


async def run_page(db: Database, first: int) -> tuple[dict[str, Any], list[str]]:
    with counting(db) as statements:
        result = await schema.execute(
            NESTED,
            variable_values={"first": first},
            context_value=Context.create(db, open_principal("default")),
        )
    assert result.errors is None, result.errors
    assert result.data is not None
    return result.data, statements


async def test_fifty_nested_traces_cost_at_most_five_statements(db: Database) -> None:
    await seed(db, 60)
    page, statements = await run_page(db, 50)
    edges = page["traces"]["edges"]
    assert len(edges) == 50
    assert page["traces"]["pageInfo"]["hasNextPage"] is True
    newest = edges[0]["node"]
    assert newest["traceId"] == "t059"
    assert [c["callId"] for c in newest["calls"]] == ["c59-0", "c59-1"]
    assert sorted(f["score"] for f in newest["feedback"]) == [-1, 1]
    assert {f["trace"]["traceId"] for f in newest["feedback"]} == {"t059"}
    assert newest["score"] == {"total": 2, "score": 0.0}
    assert all(len(e["node"]["calls"]) == 2 for e in edges)
    assert len(statements) <= 5, statements
    # The list, then one statement each for calls, feedback and scores; the feedback's
    # trace comes from the loader the list primed.
    assert len(statements) == 4


async def test_statement_count_does_not_grow_with_the_page(db: Database) -> None:
    await seed(db, 60)
    _, small = await run_page(db, 5)
    _, large = await run_page(db, 50)
    assert len(small) == len(large) == 4


FRAGMENTS = """
query {
  traces(first: 5) {
    edges { node { ...Parts ... on Trace { score { total } } } }
  }
}
fragment Parts on Trace { traceId calls { callId } }
"""


async def test_a_page_loads_ahead_the_nested_fields_it_asks_for_fragments_included(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed(db, 8)
    asked: list[tuple[list[str], set[str]]] = []
    prefetch = Loaders.prefetch_nested

    async def recorded(self: Loaders, trace_ids: list[str], fields: set[str]) -> None:
        asked.append((trace_ids, set(fields)))
        await prefetch(self, trace_ids, fields)

    monkeypatch.setattr(Loaders, "prefetch_nested", recorded)
    with counting(db) as statements:
        result = await schema.execute(
            FRAGMENTS, context_value=Context.create(db, open_principal("default"))
        )
    assert result.errors is None, result.errors
    assert result.data is not None
    assert asked == [([f"t{i:03}" for i in range(7, 2, -1)], {"traceId", "calls", "score"})]
    first = result.data["traces"]["edges"][0]["node"]
    assert first == {
        "traceId": "t007",
        "calls": [{"callId": "c7-0"}, {"callId": "c7-1"}],
        "score": {"total": 2},
    }
    assert len(statements) == 3  # the list, calls, scores: no feedback was asked for


async def test_loaded_answers_at_once_what_the_loader_holds_and_loads_the_rest() -> None:
    asked: list[list[str]] = []

    async def load(keys: Sequence[str]) -> list[str]:
        asked.append(list(keys))
        if "broken" in keys:
            raise RuntimeError("the database went away")
        return [key.upper() for key in keys]

    loader: DataLoader[str, str] = DataLoader(load_fn=load)
    loader.prime("held", "HELD")
    assert loaded(loader, "held", str.lower) == "held"  # a plain value: no task, no statement
    assert asked == []

    pending = loaded(loader, "new", str.lower)
    assert inspect.isawaitable(pending)
    assert await pending == "new"
    assert asked == [["new"]]
    assert loaded(loader, "new", len) == 3  # loaded once, then held

    for _ in range(2):  # a failed load stays a failure, never a converted value
        failing = loaded(loader, "broken", str.lower)
        assert inspect.isawaitable(failing)
        with pytest.raises(RuntimeError, match="went away"):
            await failing
    assert asked == [["new"], ["broken"]]
