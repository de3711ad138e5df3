"""Trace ingestion and reads in the service layer: roll-ups, computed costs, idempotent calls."""

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from genai_prices import Usage, calc_price

from agentcost.db import Database
from agentcost.errors import InvalidInput, NotFound
from agentcost.models import TraceEvent
from agentcost.services import trace_detail, traces
from agentcost.services.cursors import encode
from agentcost.services.filters import TraceFilter
from agentcost.services.sql import BulkInsert

pytestmark = pytest.mark.anyio

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
UNKNOWN_MODEL = "house-model-without-a-price"


def org() -> str:
    return f"org-{uuid.uuid4().hex[:8]}"


def event(**fields: Any) -> TraceEvent:
    return TraceEvent.model_validate(fields)


async def ingest(db: Database, org_id: str, *events: dict[str, Any]):
    return await traces.ingest(db, org_id=org_id, events=[event(**e) for e in events])


def library_price(model: str, input_tokens: int, output_tokens: int) -> float:
    price = calc_price(
        Usage(input_tokens=input_tokens, output_tokens=output_tokens), model_ref=model
    )
    return float(price.total_price)


MULTI_CALL = [
    {
        "trace_id": "multi",
        "call_id": "c1",
        "project": "shop",
        "model": "gpt-4.1-mini",
        "provider": "openai",
        "input_tokens": 100,
        "output_tokens": 10,
        "cost": 0.001,
        "latency_ms": 100.0,
        "timestamp": T0.isoformat(),
        "prompt_id": "support-bot",
        "prompt_version": 2,
        "session_id": "s1",
    },
    {
        "trace_id": "multi",
        "call_id": "c2",
        "project": "shop",
        "model": "gpt-4.1",
        "provider": "openai",
        "input_tokens": 1000,
        "output_tokens": 200,
        "cost": 0.05,
        "latency_ms": 250.5,
        "timestamp": (T0 + timedelta(seconds=5)).isoformat(),
    },
    {
        "trace_id": "multi",
        "call_id": "c3",
        "project": "shop",
        "model": UNKNOWN_MODEL,
        "input_tokens": 7,
        "output_tokens": 3,
        "status": "error",
        "error": "timeout",
        "timestamp": (T0 + timedelta(seconds=9)).isoformat(),
    },
]


def assert_multi_rollup(trace: Any) -> None:
    assert trace.call_count == 3
    assert trace.cost == pytest.approx(0.001 + 0.05)
    assert trace.unpriced_calls == 1
    assert trace.cost_computed is False
    assert trace.input_tokens == 100 + 1000 + 7
    assert trace.output_tokens == 10 + 200 + 3
    assert trace.latency_ms == pytest.approx(100.0 + 250.5)
    assert trace.model == "gpt-4.1"  # the costliest call, not the first or the last
    assert trace.provider == "openai"
    assert trace.error_count == 1
    assert trace.status == "error"
    assert trace.project == "shop"
    assert trace.prompt_id == "support-bot"
    assert trace.prompt_version == 2
    assert trace.session_id == "s1"
    assert trace.started_at == T0
    assert trace.ended_at == T0 + timedelta(seconds=9)


async def test_multi_call_rollup_in_one_batch(db: Database) -> None:
    o = org()
    result = await ingest(db, o, *MULTI_CALL)
    assert (result.accepted, result.duplicates) == (3, 0)
    assert result.trace_ids == ["multi"]
    assert result.call_ids == ["c1", "c2", "c3"]
    assert_multi_rollup(await traces.get_trace(db, org_id=o, trace_id="multi"))


async def test_rollup_is_the_same_when_calls_arrive_one_by_one_in_any_order(db: Database) -> None:
    for order in ([0, 1, 2], [2, 1, 0], [1, 2, 0]):
        o = org()
        for i in order:
            await ingest(db, o, MULTI_CALL[i])
        assert_multi_rollup(await traces.get_trace(db, org_id=o, trace_id="multi"))


async def test_primary_model_tie_goes_to_the_earlier_call_in_any_arrival_order(
    db: Database,
) -> None:
    early = {"trace_id": "tie", "model": "early-model", "cost": 0.002, "timestamp": T0.isoformat()}
    late = {**early, "model": "late-model", "timestamp": (T0 + timedelta(seconds=5)).isoformat()}
    for order in ([early, late], [late, early]):
        o = org()
        for event in order:
            await ingest(db, o, event)
        assert (await traces.get_trace(db, org_id=o, trace_id="tie")).model == "early-model"


async def test_cost_is_computed_from_tokens_when_absent(db: Database) -> None:
    o = org()
    await ingest(
        db, o, {"trace_id": "t", "model": "gpt-4.1", "input_tokens": 1234, "output_tokens": 567}
    )
    expected = library_price("gpt-4.1", 1234, 567)
    assert expected > 0
    trace = await traces.get_trace(db, org_id=o, trace_id="t")
    assert trace.cost == pytest.approx(expected)
    assert trace.cost_computed is True
    assert trace.unpriced_calls == 0
    [call] = (await traces.get_calls(db, org_id=o, trace_ids=["t"]))["t"]
    assert call.cost == pytest.approx(expected)
    assert call.cost_computed is True


async def test_sent_cost_wins_over_the_price_table_even_zero(db: Database) -> None:
    o = org()
    await ingest(
        db,
        o,
        {"trace_id": "t", "model": "gpt-4.1", "input_tokens": 10**6, "output_tokens": 0, "cost": 0},
    )
    trace = await traces.get_trace(db, org_id=o, trace_id="t")
    assert trace.cost == 0
    assert trace.cost_computed is False


async def test_unknown_model_cost_is_null_not_zero(db: Database) -> None:
    o = org()
    await ingest(
        db, o, {"trace_id": "t", "model": UNKNOWN_MODEL, "input_tokens": 500, "output_tokens": 50}
    )
    trace = await traces.get_trace(db, org_id=o, trace_id="t")
    assert trace.cost is None
    assert trace.cost_computed is False
    assert trace.unpriced_calls == 1
    [call] = (await traces.get_calls(db, org_id=o, trace_ids=["t"]))["t"]
    assert call.cost is None


async def test_mixed_priced_and_computed_cost(db: Database) -> None:
    o = org()
    await ingest(
        db,
        o,
        {"trace_id": "t", "call_id": "a", "model": "gpt-4.1", "cost": 0.5, "timestamp": T0},
        {
            "trace_id": "t",
            "call_id": "b",
            "model": "gpt-4.1-mini",
            "input_tokens": 2000,
            "output_tokens": 1000,
            "timestamp": T0 + timedelta(seconds=1),
        },
    )
    trace = await traces.get_trace(db, org_id=o, trace_id="t")
    assert trace.cost == pytest.approx(0.5 + library_price("gpt-4.1-mini", 2000, 1000))
    assert trace.cost_computed is True
    assert trace.model == "gpt-4.1"


async def test_a_batch_larger_than_one_statement_stores_every_row(db: Database) -> None:
    """SQLite writes at most BulkInsert.SQLITE_ROWS rows a statement: 600 calls of 300 traces
    take three, the traces two; a resend of half of them is counted and changes nothing."""
    o = org()
    sent = [
        {"trace_id": f"t{i // 2:03d}", "call_id": f"c{i % 2}", "model": "m", "cost": i / 1000}
        for i in range(600)
    ]
    assert len(sent) > 2 * BulkInsert.SQLITE_ROWS
    result = await ingest(db, o, *sent)
    assert (result.accepted, result.duplicates) == (600, 0)
    again = await ingest(db, o, *sent[::2], {**sent[0], "call_id": "late"})
    assert (again.accepted, again.duplicates) == (1, 300)
    listed = await traces.get_traces(db, org_id=o, trace_ids=[f"t{n:03d}" for n in range(300)])
    assert len(listed) == 300
    for n in range(300):
        trace = listed[f"t{n:03d}"]
        extra = 1 if n == 0 else 0
        assert trace.call_count == 2 + extra
        assert trace.cost == pytest.approx((4 * n + 1) / 1000 + extra * sent[0]["cost"])


async def test_duplicate_call_id_is_ignored(db: Database) -> None:
    o = org()
    first = MULTI_CALL[1]
    await ingest(db, o, first)
    again = await ingest(db, o, {**first, "cost": 9.0, "input_tokens": 5})
    assert (again.accepted, again.duplicates) == (0, 1)
    trace = await traces.get_trace(db, org_id=o, trace_id="multi")
    assert trace.call_count == 1
    assert trace.cost == pytest.approx(0.05)
    assert trace.input_tokens == 1000
    # The same call twice inside one batch is one call as well.
    o2 = org()
    result = await ingest(db, o2, first, first, MULTI_CALL[0])
    assert result.accepted == 2
    assert result.duplicates == 1
    trace = await traces.get_trace(db, org_id=o2, trace_id="multi")
    assert trace.call_count == 2


async def test_events_without_call_id_are_separate_calls(db: Database) -> None:
    o = org()
    body = {"trace_id": "t", "model": "gpt-4.1", "cost": 0.25}
    await ingest(db, o, body)
    await ingest(db, o, body)
    trace = await traces.get_trace(db, org_id=o, trace_id="t")
    assert trace.call_count == 2
    assert trace.cost == pytest.approx(0.5)


async def test_prompt_fields_and_extra_fields_go_where_the_design_says(db: Database) -> None:
    o = org()
    await ingest(
        db,
        o,
        {
            "trace_id": "meta",
            "model": "gpt-4.1",
            "cost": 0.1,
            "goal_id": "goal-7",
            "sdk_version": "1.2.3",
            "nested": {"a": [1, 2]},
            "metadata": {"prompt_id": "support-bot", "prompt_version": "v3", "team": "x"},
        },
    )
    trace = await traces.get_trace(db, org_id=o, trace_id="meta")
    assert trace.prompt_id == "support-bot"
    assert trace.prompt_version == 3
    assert trace.metadata["goal_id"] == "goal-7"
    assert trace.metadata["sdk_version"] == "1.2.3"
    assert trace.metadata["nested"] == {"a": [1, 2]}
    assert trace.metadata["team"] == "x"


async def test_trace_metadata_merges_across_calls(db: Database) -> None:
    o = org()
    await ingest(db, o, {"trace_id": "m", "model": "a", "metadata": {"k1": 1, "shared": "old"}})
    await ingest(db, o, {"trace_id": "m", "model": "a", "metadata": {"k2": 2, "shared": "new"}})
    trace = await traces.get_trace(db, org_id=o, trace_id="m")
    assert trace.metadata == {"k1": 1, "k2": 2, "shared": "new"}


async def test_empty_ingest_is_invalid(db: Database) -> None:
    with pytest.raises(InvalidInput) as info:
        await traces.ingest(db, org_id=org(), events=[])
    assert info.value.errors[0].field == "events"


async def test_unknown_trace_is_not_found(db: Database) -> None:
    with pytest.raises(NotFound):
        await traces.get_trace(db, org_id=org(), trace_id="nope")
    with pytest.raises(NotFound):
        await trace_detail.get_trace_detail(db, org_id=org(), trace_id="nope")


async def test_orgs_are_isolated(db: Database) -> None:
    a, b = org(), org()
    await ingest(db, a, {"trace_id": "same", "model": "gpt-4.1", "cost": 1.0})
    await ingest(db, b, {"trace_id": "same", "model": "gpt-4.1-mini", "cost": 2.0})
    assert (await traces.get_trace(db, org_id=a, trace_id="same")).cost == 1.0
    assert (await traces.get_trace(db, org_id=b, trace_id="same")).model == "gpt-4.1-mini"
    page, _ = await traces.list_traces(db, org_id=a, filters=TraceFilter(), limit=10)
    assert [t.cost for t in page] == [1.0]


async def test_list_traces_filters_and_pages_without_gaps(db: Database) -> None:
    o = org()
    events = []
    for i in range(7):
        events.append(
            {
                "trace_id": f"t{i}",
                "project": "p-even" if i % 2 == 0 else "p-odd",
                "model": "gpt-4.1" if i < 4 else "gpt-4.1-mini",
                "cost": 0.01 * (i + 1),
                "prompt_id": "bot" if i % 3 == 0 else None,
                "prompt_version": i % 2,
                "timestamp": (T0 + timedelta(hours=i)).isoformat(),
            }
        )
    await ingest(db, o, *events)

    async def ids(limit: int = 100, cursor: str | None = None, **f: Any) -> list[str]:
        page, _ = await traces.list_traces(
            db, org_id=o, filters=TraceFilter(**f), limit=limit, cursor=cursor
        )
        return [t.trace_id for t in page]

    assert await ids() == [f"t{i}" for i in reversed(range(7))]  # newest first
    assert await ids(project="p-even") == ["t6", "t4", "t2", "t0"]
    assert await ids(model="gpt-4.1-mini") == ["t6", "t5", "t4"]
    assert await ids(prompt_id="bot") == ["t6", "t3", "t0"]
    assert await ids(prompt_id="bot", prompt_version=0) == ["t6", "t0"]
    assert await ids(since=T0 + timedelta(hours=2), until=T0 + timedelta(hours=5)) == [
        "t4",
        "t3",
        "t2",
    ]
    seen: list[str] = []
    cursor = None
    while True:
        page, cursor = await traces.list_traces(
            db, org_id=o, filters=TraceFilter(), limit=3, cursor=cursor
        )
        seen += [t.trace_id for t in page]
        if cursor is None:
            break
    assert seen == [f"t{i}" for i in reversed(range(7))]


@pytest.mark.parametrize("offset", [UTC, timezone(timedelta(hours=2)), None])
async def test_a_cursor_pages_the_same_whatever_offset_its_time_is_written_in(
    db: Database, offset: timezone | None
) -> None:
    """A time without offset is UTC, as every stored one; on SQLite, where times are compared
    as text, one written in another offset used to page from the wrong place."""
    o = org()
    await ingest(
        db,
        o,
        *(
            {"trace_id": f"t{i}", "model": "m", "timestamp": (T0 + timedelta(hours=i)).isoformat()}
            for i in range(3)
        ),
    )
    at = (T0 + timedelta(hours=1)).astimezone(offset or UTC)
    written = at.isoformat() if offset else at.replace(tzinfo=None).isoformat()
    page, _ = await traces.list_traces(
        db, org_id=o, filters=TraceFilter(), limit=5, cursor=encode("trace", written, "t1")
    )
    assert [t.trace_id for t in page] == ["t0"]


async def test_foreign_cursor_is_invalid_input(db: Database) -> None:
    with pytest.raises(InvalidInput) as info:
        await traces.list_traces(
            db,
            org_id=org(),
            filters=TraceFilter(),
            limit=5,
            cursor=encode("feedback", T0, "x"),
        )
    assert info.value.errors[0].field == "cursor"


async def test_trace_detail_has_calls_feedback_and_score(db: Database) -> None:
    from agentcost.models import FeedbackCreate
    from agentcost.services import feedback

    o = org()
    await ingest(db, o, *MULTI_CALL)
    await feedback.submit(
        db,
        org_id=o,
        items=[
            FeedbackCreate(trace_id="multi", score=1),
            FeedbackCreate(trace_id="multi", score=-1, call_id="c2"),
            FeedbackCreate(trace_id="other", score=1),
        ],
    )
    detail = await trace_detail.get_trace_detail(db, org_id=o, trace_id="multi")
    assert [c.call_id for c in detail.calls] == ["c1", "c2", "c3"]
    assert sorted(f.score for f in detail.feedback) == [-1, 1]
    assert (detail.score.total, detail.score.positive, detail.score.negative) == (2, 1, 1)
    assert detail.score.score == 0.0


# Every value a write stores travels in bulk (services.sql.BulkInsert: bound by the driver on
# SQLite, one JSON document PostgreSQL takes apart): it must come back exactly as sent.
AWKWARD_TEXT = 'naïve "quoted" \\back\\slash\n\ttab 🚀 \u2028 </script>'
AWKWARD_META = {
    "text": AWKWARD_TEXT,
    "nested": {"list": [1, 2.5, None, True, False, "x"], "empty": {}},
    "float": 0.1 + 0.2,
    "big": 2**53 + 1,
    "negative": -1e-300,
}


async def test_stored_values_come_back_exactly_as_sent(db: Database) -> None:
    o = org()
    sent = datetime(2025, 3, 1, 17, 30, 0, 123457, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    await ingest(
        db,
        o,
        {
            "trace_id": "exact",
            "call_id": "c'1",
            "project": AWKWARD_TEXT,
            "name": "ünïcode name",
            "model": UNKNOWN_MODEL,
            "provider": "p",
            "input_tokens": 999_999_999_999,
            "output_tokens": 0,
            "cost": 0.1 + 0.2,
            "latency_ms": 1e-3,
            "status": "error",
            "error": AWKWARD_TEXT,
            "agent_id": "a",
            "session_id": "s",
            "user_id": "u",
            "metadata": {**AWKWARD_META, "prompt_id": "p-1", "prompt_version": 3},
            "timestamp": sent,
        },
    )
    [call] = (await traces.get_calls(db, org_id=o, trace_ids=["exact"]))["exact"]
    assert (call.call_id, call.error, call.input_tokens, call.output_tokens) == (
        "c'1",
        AWKWARD_TEXT,
        999_999_999_999,
        0,
    )
    assert call.cost == 0.1 + 0.2 and call.latency_ms == 1e-3 and call.cost_computed is False
    assert call.metadata == AWKWARD_META | {"prompt_id": "p-1", "prompt_version": 3}
    assert call.timestamp == sent and call.timestamp.tzinfo == UTC
    trace = await traces.get_trace(db, org_id=o, trace_id="exact")
    assert (trace.project, trace.name, trace.prompt_id, trace.prompt_version) == (
        AWKWARD_TEXT,
        "ünïcode name",
        "p-1",
        3,
    )
    assert trace.cost == 0.1 + 0.2 and trace.input_tokens == 999_999_999_999
    assert trace.started_at == trace.ended_at == sent
    assert trace.metadata == call.metadata


async def test_an_adapters_filter_subclass_shares_the_listings_statement(db: Database) -> None:
    """REST's query model adds paging fields to TraceFilter; they are no filters, so its
    listing runs the statement the same filters make through any adapter."""

    class Query(TraceFilter):
        limit: int = 7
        cursor: str | None = None

    o = org()
    await ingest(db, o, {"trace_id": "t1", "model": "m", "project": "web"})
    traces._listing.cache_clear()
    for filters in (TraceFilter(project="web"), Query(project="web")):
        page, _ = await traces.list_traces(db, org_id=o, filters=filters, limit=5)
        assert [t.trace_id for t in page] == ["t1"]
    assert traces._listing.cache_info().currsize == 1
