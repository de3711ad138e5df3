"""The write path is compiled at start-up: the first requests reuse cached statements instead
of compiling them, and the rehearsal leaves nothing behind."""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.engine.default import CACHE_HIT

from agentcost.db import Database
from agentcost.services import rollups
from agentcost.services.sql import calls, feedback, traces
from agentcost.services.warmup import warm_up

pytestmark = pytest.mark.anyio

_WRITES = ("INSERT", "WITH", "DELETE", "UPDATE")
# The hot path's tables (a vote, a trace event); one-time writes such as the token secret are not.
_HOT = (traces.name, calls.name, feedback.name, rollups.rollups.name, "agentcost_rollup_delta")


@pytest.fixture
def writes() -> Iterator[list[tuple[str, Any]]]:
    """Each write to the hot path's tables, on any engine, and whether its compiled form came
    from the cache. Driver SQL (the bulk inserts on SQLite, ``sql.BulkInsert``) is compiled once
    when its statement is built and never by SQLAlchemy, so it counts as cached."""
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, _p: Any, context: Any, _m: Any) -> None:
        if statement.lstrip().upper().startswith(_WRITES) and any(t in statement for t in _HOT):
            compiled = context.compiled is not None
            seen.append(
                (" ".join(statement.split()[:3]), context.cache_hit if compiled else CACHE_HIT)
            )

    event.listen(Engine, "after_cursor_execute", record)
    yield seen
    event.remove(Engine, "after_cursor_execute", record)


async def test_first_writes_after_start_use_compiled_statements(
    client: httpx.AsyncClient, writes: list[tuple[str, Any]]
) -> None:
    event = {"trace_id": "first", "call_id": "c1", "model": "m", "cost": 0.5, "prompt_id": "p"}
    vote = {"id": "v-first", "trace_id": "first", "call_id": "c1", "score": 1}
    assert (await client.post("/api/trace", json=event)).status_code == 201
    assert (await client.post("/api/feedback", json=vote)).status_code == 201
    kinds = {statement for statement, _ in writes}
    assert {"INSERT INTO calls", "INSERT INTO feedback", "WITH finest AS"} <= kinds
    assert [(s, hit) for s, hit in writes if hit is not CACHE_HIT] == []


async def test_the_rehearsal_stores_nothing(db: Database) -> None:
    await warm_up(db)
    async with db.read() as conn:
        for table in (traces, calls, feedback, rollups.rollups):
            assert await conn.scalar(select(func.count()).select_from(table)) == 0, table.name
