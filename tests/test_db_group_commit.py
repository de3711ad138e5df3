"""Group commit (Database.write_grouped): many callers' writes in one transaction, each caller
answered after the commit with its own result or its own exception."""

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from agentcost.db import GATHER_TURNS, Database
from agentcost.migrate import upgrade
from agentcost.models import FeedbackCreate, TraceEvent, utcnow
from agentcost.services import feedback, traces
from agentcost.services.sql import feedback as feedback_table
from agentcost.services.sql import traces as traces_table

pytestmark = pytest.mark.anyio

ORG = "org-group"
group_sizes: list[int] = []


def _row(item_id: str) -> dict[str, Any]:
    now = utcnow()
    return {
        "org_id": ORG,
        "id": item_id,
        "trace_id": "t",
        "score": 1,
        "source": "user",
        "tags": [],
        "metadata": {},
        "created_at": now,
        "updated_at": now,
    }


async def _plain_insert(conn: AsyncConnection, ids: Sequence[str]) -> list[str]:
    """A plain INSERT (no ON CONFLICT): a repeated id fails in the database itself."""
    group_sizes.append(len(ids))
    await conn.execute(insert(feedback_table), [_row(i) for i in ids])
    return [f"stored {i}" for i in ids]


async def _refuse_bad(conn: AsyncConnection, ids: Sequence[str]) -> list[str]:
    """Stores its items, but raises (in Python, mid-transaction) when one of them is "bad"."""
    group_sizes.append(len(ids))
    await conn.execute(insert(feedback_table), [_row(i) for i in ids])
    if "bad" in ids:
        raise ValueError("bad item")
    return list(ids)


async def _stored_ids(db: Database) -> set[str]:
    async with db.read() as conn:
        return set((await conn.execute(select(feedback_table.c.id))).scalars())


async def test_concurrent_writes_share_one_commit_and_get_their_own_results(db: Database) -> None:
    group_sizes.clear()
    ids = [f"f{i}" for i in range(40)]
    results = await asyncio.gather(*(db.write_grouped(_plain_insert, i, rows=1) for i in ids))
    assert results == [f"stored {i}" for i in ids]
    assert await _stored_ids(db) == set(ids)
    assert max(group_sizes) > 1  # queued together, committed together


async def test_writes_reaching_the_queue_over_a_few_loop_turns_share_one_commit(
    db: Database,
) -> None:
    """As requests sent together do: each comes a turn of the event loop after the last."""
    group_sizes.clear()

    async def arrive(item_id: str, turns: int) -> str:
        for _ in range(turns):
            await asyncio.sleep(0)
        return await db.write_grouped(_plain_insert, item_id, rows=1)

    ids = [f"turn{i}" for i in range(GATHER_TURNS)]
    results = await asyncio.gather(*(arrive(i, turns) for turns, i in enumerate(ids)))
    assert results == [f"stored {i}" for i in ids]
    assert group_sizes == [len(ids)]


async def test_a_failing_item_fails_alone_in_python(db: Database) -> None:
    group_sizes.clear()
    ids = ["a", "b", "bad", "c"]
    results = await asyncio.gather(
        *(db.write_grouped(_refuse_bad, i, rows=1) for i in ids), return_exceptions=True
    )
    assert results[:2] == ["a", "b"] and results[3] == "c"
    assert isinstance(results[2], ValueError) and str(results[2]) == "bad item"
    assert await _stored_ids(db) == {"a", "b", "c"}
    assert group_sizes[0] == 4  # tried as one group first, then item by item


async def test_a_failing_item_fails_alone_in_the_database(db: Database) -> None:
    await db.write_grouped(_plain_insert, "taken", rows=1)
    results = await asyncio.gather(
        *(db.write_grouped(_plain_insert, i, rows=1) for i in ("x", "taken", "y")),
        return_exceptions=True,
    )
    assert results[0] == "stored x" and results[2] == "stored y"
    assert isinstance(results[1], Exception)  # the primary key violation, its own
    assert await _stored_ids(db) == {"taken", "x", "y"}


async def test_a_cancelled_waiter_leaves_the_writer_working(db: Database) -> None:
    release = asyncio.Event()

    async def blocked(conn: AsyncConnection, ids: Sequence[str]) -> list[str]:
        await release.wait()
        return await _plain_insert(conn, ids)

    first = asyncio.create_task(db.write_grouped(blocked, "first", rows=1))
    await asyncio.sleep(0.05)  # the writer now holds "first"
    waiting = asyncio.create_task(db.write_grouped(_plain_insert, "gone", rows=1))
    await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    release.set()
    assert await asyncio.wait_for(first, 10) == "stored first"
    assert (
        await asyncio.wait_for(db.write_grouped(_plain_insert, "after", rows=1), 10)
        == "stored after"
    )
    assert await _stored_ids(db) == {"first", "after"}  # a cancelled, untaken item is skipped


async def test_dispose_answers_queued_writes_first(settings: Any) -> None:
    db = Database.from_settings(settings)
    await upgrade(db)
    pending = [
        asyncio.create_task(db.write_grouped(_plain_insert, f"d{i}", rows=1)) for i in range(5)
    ]
    await asyncio.sleep(0)
    await asyncio.wait_for(db.dispose(), 10)
    assert [t.result() for t in pending] == [f"stored d{i}" for i in range(5)]


async def test_same_feedback_id_twice_in_one_group_replaces_in_order(db: Database) -> None:
    first, second = await asyncio.gather(
        feedback.submit(db, org_id=ORG, items=[FeedbackCreate(id="same", trace_id="t1", score=1)]),
        feedback.submit(db, org_id=ORG, items=[FeedbackCreate(id="same", trace_id="t1", score=-1)]),
    )
    assert first[0][1] is True and second[0][1] is False
    assert second[0][0].score == -1
    assert second[0][0].created_at == first[0][0].created_at
    stored = await feedback.get(db, org_id=ORG, feedback_id="same")
    assert stored.score == -1 and stored.created_at == first[0][0].created_at


async def test_a_stored_vote_replaced_twice_in_one_group_keeps_its_first_date(
    db: Database,
) -> None:
    [(stored, _)] = await feedback.submit(
        db, org_id=ORG, items=[FeedbackCreate(id="kept", trace_id="t1", score=1)]
    )
    first, second = await asyncio.gather(
        feedback.submit(db, org_id=ORG, items=[FeedbackCreate(id="kept", trace_id="t1", score=0)]),
        feedback.submit(db, org_id=ORG, items=[FeedbackCreate(id="kept", trace_id="t2", score=-1)]),
    )
    assert first[0][1] is False and second[0][1] is False
    assert first[0][0].created_at == second[0][0].created_at == stored.created_at
    got = await feedback.get(db, org_id=ORG, feedback_id="kept")
    assert (got.trace_id, got.score, got.created_at) == ("t2", -1, stored.created_at)


async def test_concurrent_feedback_each_answered_with_its_own_row(db: Database) -> None:
    answers = await asyncio.gather(
        *(
            feedback.submit(
                db, org_id=ORG, items=[FeedbackCreate(trace_id=f"t{i}", score=i % 3 - 1)]
            )
            for i in range(30)
        )
    )
    for i, [(saved, created)] in enumerate(answers):
        assert created and saved.trace_id == f"t{i}" and saved.score == i % 3 - 1
        assert await feedback.get(db, org_id=ORG, feedback_id=saved.id) == saved


async def test_concurrent_events_of_one_trace_roll_up_once_each(db: Database) -> None:
    def ingest(call_id: str, cost: float):  # type: ignore[no-untyped-def]
        return traces.ingest(
            db,
            org_id=ORG,
            events=[TraceEvent(trace_id="shared", call_id=call_id, model="m", cost=cost)],
        )

    results = await asyncio.gather(
        *(ingest(f"c{i}", 0.5) for i in range(10)), ingest("c0", 0.5), ingest("c1", 0.5)
    )
    assert [r.accepted for r in results] == [1] * 10 + [0, 0]
    assert [r.duplicates for r in results] == [0] * 10 + [1, 1]
    trace = await traces.get_trace(db, org_id=ORG, trace_id="shared")
    assert trace.call_count == 10 and trace.cost == pytest.approx(5.0)
    async with db.read() as conn:
        count = (await conn.execute(select(func.count()).select_from(traces_table))).scalar()
    assert count == 1
