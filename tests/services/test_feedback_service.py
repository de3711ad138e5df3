"""Feedback in the service layer: idempotent submission, reads, changes, deletion, listings."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agentcost.db import Database
from agentcost.errors import InvalidInput, NotFound
from agentcost.models import FeedbackCreate, FeedbackUpdate, TraceEvent
from agentcost.services import feedback, traces
from agentcost.services.filters import FeedbackFilter

pytestmark = pytest.mark.anyio

T0 = datetime(2025, 3, 1, tzinfo=UTC)


def org() -> str:
    return f"org-{uuid.uuid4().hex[:8]}"


def item(**fields: Any) -> FeedbackCreate:
    return FeedbackCreate.model_validate(fields)


async def submit(db: Database, org_id: str, *items: dict[str, Any]):
    return await feedback.submit(db, org_id=org_id, items=[item(**i) for i in items])


async def listing(db: Database, org_id: str, **filters: Any) -> list[str]:
    page, _ = await feedback.list_feedback(
        db, org_id=org_id, filters=FeedbackFilter(**filters), limit=1000
    )
    return [f.id for f in page]


async def test_submit_stores_every_field(db: Database) -> None:
    o = org()
    [(saved, created)] = await submit(
        db,
        o,
        {
            "trace_id": "t",
            "score": -1,
            "comment": "Hallucinated a date",
            "source": "human-review",
            "user_id": "jane",
            "tags": ["hallucination", "dates", "hallucination"],
            "metadata": {"ticket": 42},
            "call_id": "c1",
        },
    )
    assert created is True
    got = await feedback.get(db, org_id=o, feedback_id=saved.id)
    assert got == saved
    assert got.trace_id == "t"
    assert got.score == -1
    assert got.comment == "Hallucinated a date"
    assert got.source.value == "human-review"
    assert got.user_id == "jane"
    assert got.tags == ["hallucination", "dates"]  # repeated tags count once
    assert got.metadata == {"ticket": 42}
    assert got.call_id == "c1"
    assert got.created_at == got.updated_at
    assert got.created_at.tzinfo is not None


async def test_awkward_text_and_numbers_are_stored_exactly(db: Database) -> None:
    """Rows reach the database in bulk (services.sql.BulkInsert: bound by the driver on SQLite,
    one JSON document on PostgreSQL)."""
    o = org()
    text = 'naïve "quoted" \\back\\slash\n\ttab 🚀 \u2028 </script>'
    metadata = {"text": text, "float": 0.1 + 0.2, "nested": {"list": [None, True, 2**53 + 1]}}
    [(saved, _)] = await submit(
        db,
        o,
        {
            "id": "f'1",
            "trace_id": text,
            "score": 0,
            "comment": text,
            "tags": [text, "b"],
            "metadata": metadata,
            "user_id": text,
        },
    )
    got = await feedback.get(db, org_id=o, feedback_id="f'1")
    assert (got.trace_id, got.comment, got.user_id, got.tags) == (text, text, text, [text, "b"])
    assert got.metadata == metadata
    assert got == saved


async def test_defaults(db: Database) -> None:
    o = org()
    [(saved, _)] = await submit(db, o, {"trace_id": "t", "score": 0})
    assert saved.source.value == "user"
    assert saved.tags == []
    assert saved.metadata == {}
    assert saved.comment is None
    assert saved.call_id is None
    uuid.UUID(saved.id)  # server-chosen ids are UUIDs


async def test_client_id_makes_submission_idempotent(db: Database) -> None:
    o = org()
    [(first, created1)] = await submit(
        db, o, {"id": "fb-1", "trace_id": "t", "score": 1, "tags": ["a"], "comment": "ok"}
    )
    [(second, created2)] = await submit(
        db, o, {"id": "fb-1", "trace_id": "t", "score": -1, "source": "eval"}
    )
    assert (created1, created2) == (True, False)
    assert await listing(db, o) == ["fb-1"]
    got = await feedback.get(db, org_id=o, feedback_id="fb-1")
    assert got.score == -1
    assert got.source.value == "eval"
    assert got.tags == []  # replaced, not merged
    assert got.comment is None
    assert got.created_at == first.created_at
    assert got.updated_at >= first.updated_at
    assert second == got


async def test_same_client_id_in_two_orgs_is_two_items(db: Database) -> None:
    a, b = org(), org()
    await submit(db, a, {"id": "x", "trace_id": "t", "score": 1})
    await submit(db, b, {"id": "x", "trace_id": "t", "score": -1})
    assert (await feedback.get(db, org_id=a, feedback_id="x")).score == 1
    assert (await feedback.get(db, org_id=b, feedback_id="x")).score == -1


async def test_batch_is_all_or_nothing_on_repeated_ids(db: Database) -> None:
    o = org()
    with pytest.raises(InvalidInput) as info:
        await submit(
            db,
            o,
            {"id": "a", "trace_id": "t", "score": 1},
            {"id": "b", "trace_id": "t", "score": 1},
            {"id": "a", "trace_id": "t", "score": -1},
        )
    [err] = info.value.errors
    assert (err.index, err.field) == (2, "id")
    assert "item 0" in err.reason
    assert await listing(db, o) == []


async def test_empty_submission_is_invalid(db: Database) -> None:
    with pytest.raises(InvalidInput):
        await feedback.submit(db, org_id=org(), items=[])


async def test_update_changes_only_the_given_fields(db: Database) -> None:
    o = org()
    [(saved, _)] = await submit(
        db, o, {"trace_id": "t", "score": 1, "comment": "fine", "tags": ["x"], "user_id": "u"}
    )
    changed = await feedback.update_feedback(
        db,
        org_id=o,
        feedback_id=saved.id,
        changes=FeedbackUpdate.model_validate({"score": -1, "tags": None}),
    )
    assert changed.score == -1
    assert changed.tags == []
    assert changed.comment == "fine"
    assert changed.user_id == "u"
    assert changed.created_at == saved.created_at
    assert changed.updated_at >= saved.updated_at
    assert await feedback.get(db, org_id=o, feedback_id=saved.id) == changed
    # An empty change set answers the item unchanged.
    same = await feedback.update_feedback(
        db, org_id=o, feedback_id=saved.id, changes=FeedbackUpdate()
    )
    assert same == changed


async def test_update_and_delete_of_unknown_ids_are_not_found(db: Database) -> None:
    o = org()
    with pytest.raises(NotFound):
        await feedback.get(db, org_id=o, feedback_id="missing")
    with pytest.raises(NotFound):
        await feedback.update_feedback(
            db, org_id=o, feedback_id="missing", changes=FeedbackUpdate(score=1)
        )
    with pytest.raises(NotFound):
        await feedback.update_feedback(
            db, org_id=o, feedback_id="missing", changes=FeedbackUpdate()
        )
    with pytest.raises(NotFound):
        await feedback.delete_feedback(db, org_id=o, feedback_id="missing")


async def test_delete_twice_is_not_found_the_second_time(db: Database) -> None:
    o = org()
    [(saved, _)] = await submit(db, o, {"trace_id": "t", "score": 1})
    await feedback.delete_feedback(db, org_id=o, feedback_id=saved.id)
    with pytest.raises(NotFound):
        await feedback.delete_feedback(db, org_id=o, feedback_id=saved.id)
    with pytest.raises(NotFound):
        await feedback.get(db, org_id=o, feedback_id=saved.id)
    assert await listing(db, o) == []


async def test_feedback_before_its_trace_is_kept_and_joins(db: Database) -> None:
    o = org()
    await submit(db, o, {"id": "early", "trace_id": "late-trace", "score": 1})
    assert [f.id for f in await feedback.of_trace(db, org_id=o, trace_id="late-trace")] == ["early"]
    assert await listing(db, o, project="shop") == []
    await traces.ingest(
        db,
        org_id=o,
        events=[TraceEvent(trace_id="late-trace", model="gpt-4.1", project="shop", cost=0.1)],
    )
    assert await listing(db, o, project="shop") == ["early"]
    assert await listing(db, o, model="gpt-4.1") == ["early"]


async def test_of_trace(db: Database) -> None:
    o = org()
    with pytest.raises(NotFound):
        await feedback.of_trace(db, org_id=o, trace_id="nothing")
    await traces.ingest(db, org_id=o, events=[TraceEvent(trace_id="quiet", model="m")])
    assert await feedback.of_trace(db, org_id=o, trace_id="quiet") == []
    await submit(db, o, {"id": "1", "trace_id": "quiet", "score": 1})
    await submit(db, o, {"id": "2", "trace_id": "quiet", "score": -1})
    await submit(db, o, {"id": "3", "trace_id": "other", "score": -1})
    assert [f.id for f in await feedback.of_trace(db, org_id=o, trace_id="quiet")] == ["1", "2"]


async def test_listing_filters(db: Database) -> None:
    o = org()
    await traces.ingest(
        db,
        org_id=o,
        events=[
            TraceEvent(trace_id="a", call_id="a1", project="p1", model="gpt-4.1", cost=0.2),
            TraceEvent(trace_id="a", call_id="a2", project="p1", model="gpt-4.1-mini", cost=0.1),
            TraceEvent(trace_id="b", project="p2", model="gpt-4.1-mini", cost=0.1),
        ],
    )
    await submit(
        db,
        o,
        {"id": "f1", "trace_id": "a", "score": 1, "source": "user", "user_id": "u1", "tags": ["x"]},
        {"id": "f2", "trace_id": "a", "score": -1, "source": "eval", "tags": ["x", "y"]},
        {"id": "f3", "trace_id": "a", "call_id": "a2", "score": 0, "user_id": "u2"},
        {"id": "f4", "trace_id": "b", "score": 1, "source": "automated", "tags": ["y"]},
        {"id": "f5", "trace_id": "ghost", "score": -1, "user_id": "u1"},
    )
    assert sorted(await listing(db, o)) == ["f1", "f2", "f3", "f4", "f5"]
    assert sorted(await listing(db, o, project="p1")) == ["f1", "f2", "f3"]
    # Trace votes count for the primary model; a call vote for its call's model.
    assert sorted(await listing(db, o, model="gpt-4.1")) == ["f1", "f2"]
    assert sorted(await listing(db, o, model="gpt-4.1-mini")) == ["f3", "f4"]
    assert sorted(await listing(db, o, score=-1)) == ["f2", "f5"]
    assert sorted(await listing(db, o, score=0)) == ["f3"]
    assert sorted(await listing(db, o, source="eval")) == ["f2"]
    assert sorted(await listing(db, o, trace_id="a")) == ["f1", "f2", "f3"]
    assert sorted(await listing(db, o, user_id="u1")) == ["f1", "f5"]
    assert sorted(await listing(db, o, tag="x")) == ["f1", "f2"]
    assert sorted(await listing(db, o, tag="y", project="p2")) == ["f4"]
    assert await listing(db, o, tag="nope") == []


async def test_listing_window_is_on_feedback_created_at(db: Database) -> None:
    o = org()
    [(first, _)] = await submit(db, o, {"id": "old", "trace_id": "t", "score": 1})
    [(second, _)] = await submit(db, o, {"id": "new", "trace_id": "t", "score": 1})
    assert second.created_at > first.created_at
    assert await listing(db, o, since=second.created_at) == ["new"]
    assert await listing(db, o, until=second.created_at) == ["old"]
    assert await listing(db, o, since=first.created_at, until=second.created_at) == ["old"]
    assert await listing(db, o, since=second.created_at + timedelta(seconds=1)) == []


async def test_listing_pages_newest_first_without_gaps(db: Database) -> None:
    o = org()
    ids = []
    for i in range(11):
        [(saved, _)] = await submit(db, o, {"id": f"f{i:02d}", "trace_id": "t", "score": 1})
        ids.append(saved.id)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page, cursor = await feedback.list_feedback(
            db, org_id=o, filters=FeedbackFilter(), limit=4, cursor=cursor
        )
        seen += [f.id for f in page]
        pages += 1
        if cursor is None:
            break
    assert pages == 3
    assert seen == list(reversed(ids))


async def test_for_traces_batches_and_keeps_empty_lists(db: Database) -> None:
    o = org()
    await submit(db, o, {"id": "1", "trace_id": "a", "score": 1})
    await submit(db, o, {"id": "2", "trace_id": "b", "score": -1})
    got = await feedback.for_traces(db, org_id=o, trace_ids=["a", "b", "c"])
    assert {k: [f.id for f in v] for k, v in got.items()} == {"a": ["1"], "b": ["2"], "c": []}
    assert await feedback.for_traces(db, org_id=o, trace_ids=[]) == {}


async def test_created_at_is_timezone_aware_utc(db: Database) -> None:
    o = org()
    before = datetime.now(UTC)
    [(saved, _)] = await submit(db, o, {"trace_id": "t", "score": 1})
    after = datetime.now(UTC)
    got = await feedback.get(db, org_id=o, feedback_id=saved.id)
    assert before <= got.created_at <= after
    assert got.created_at.utcoffset() == timedelta(0)
    assert got.created_at > T0
