"""Quality aggregates in the service layer: DESIGN.md's metric table on hand-made data."""

import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agentcost.db import Database
from agentcost.errors import NotFound
from agentcost.models import FeedbackCreate, TraceEvent
from agentcost.services import feedback, quality, traces
from agentcost.services.filters import AnalyticsFilter

pytestmark = pytest.mark.anyio

T0 = datetime(2025, 3, 1, tzinfo=UTC)
NO_FILTER = AnalyticsFilter()


def org() -> str:
    return f"org-{uuid.uuid4().hex[:8]}"


async def ingest(db: Database, org_id: str, *events: dict[str, Any]) -> None:
    await traces.ingest(db, org_id=org_id, events=[TraceEvent.model_validate(e) for e in events])


async def vote(db: Database, org_id: str, *items: dict[str, Any]) -> None:
    await feedback.submit(
        db, org_id=org_id, items=[FeedbackCreate.model_validate(i) for i in items]
    )


def wilson(pos: int, n: int) -> tuple[float, float]:
    z = 1.959963984540054
    p = pos / n
    denom = 1 + z * z / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return round(100 * (centre - spread) / denom, 1), round(100 * (centre + spread) / denom, 1)


async def models(db: Database, org_id: str, **f: Any) -> dict[str, Any]:
    found = await quality.by_model(db, org_id=org_id, filters=AnalyticsFilter(**f))
    return {q.model: q for q in found}


async def test_empty_org_answers_zeros_and_nulls(db: Database) -> None:
    o = org()
    s = await quality.summary(db, org_id=o, filters=NO_FILTER)
    assert (s.total_feedback, s.positive, s.negative, s.neutral) == (0, 0, 0, 0)
    assert s.rated_traces == 0
    assert s.unknown_trace_feedback == 0
    assert s.by_source == {}
    for name in (
        "positive_pct",
        "negative_pct",
        "avg_score",
        "avg_cost",
        "cost_per_positive",
        "positive_pct_low",
        "positive_pct_high",
        "total_cost",
    ):
        assert getattr(s, name) is None, name
    assert await quality.by_model(db, org_id=o, filters=NO_FILTER) == []


async def test_several_calls_and_several_votes_count_the_cost_once(db: Database) -> None:
    o = org()
    await ingest(
        db,
        o,
        {"trace_id": "t1", "call_id": "a", "model": "gpt-4.1", "cost": 0.03},
        {"trace_id": "t1", "call_id": "b", "model": "gpt-4.1-mini", "cost": 0.01},
        {"trace_id": "t1", "call_id": "c", "model": "gpt-4.1-mini", "cost": 0.02},
        {"trace_id": "t2", "model": "gpt-4.1", "cost": 0.1},
    )
    await vote(
        db,
        o,
        {"trace_id": "t1", "score": 1},
        {"trace_id": "t1", "score": 1},
        {"trace_id": "t1", "score": -1},
        {"trace_id": "t2", "score": -1},
        {"trace_id": "t2", "score": 0},
    )
    q = (await models(db, o))["gpt-4.1"]
    assert (q.total_feedback, q.positive, q.negative, q.neutral) == (5, 2, 2, 1)
    assert q.rated_traces == 2
    assert q.positive_traces == 1  # t1 has mean 1/3 > 0; t2 has mean -1/2
    assert q.total_cost == pytest.approx(0.06 + 0.1)
    assert q.avg_cost == pytest.approx(0.08)
    assert q.cost_per_positive == pytest.approx(0.16)
    assert q.positive_pct == 40.0
    assert q.negative_pct == 40.0
    assert q.neutral_pct == 20.0
    assert q.avg_score == 0.0
    assert (q.positive_pct_low, q.positive_pct_high) == wilson(2, 5)
    # No vote named a gpt-4.1-mini call, so it has no group of its own.
    assert set(await models(db, o)) == {"gpt-4.1"}
    s = await quality.summary(db, org_id=o, filters=NO_FILTER)
    assert (s.total_feedback, s.rated_traces, s.positive_traces) == (5, 2, 1)
    assert s.avg_cost == pytest.approx(0.08)
    assert s.by_source == {"user": 5}


async def test_cost_per_positive_is_null_without_a_positive_trace(db: Database) -> None:
    o = org()
    await ingest(db, o, {"trace_id": "t", "model": "gpt-4.1", "cost": 0.5})
    await vote(db, o, {"trace_id": "t", "score": -1}, {"trace_id": "t", "score": 0})
    q = (await models(db, o))["gpt-4.1"]
    assert q.cost_per_positive is None
    assert q.avg_cost == 0.5
    assert q.positive_pct == 0.0
    assert q.positive_pct_low == 0.0
    # A trace whose votes cancel out (mean 0) is not a positive trace either.
    await vote(db, o, {"trace_id": "t", "score": 1})
    q = (await models(db, o))["gpt-4.1"]
    assert q.positive_traces == 0
    assert q.cost_per_positive is None


async def test_feedback_on_unknown_trace_counts_in_summary_only_until_it_arrives(
    db: Database,
) -> None:
    o = org()
    await ingest(db, o, {"trace_id": "known", "model": "gpt-4.1", "cost": 0.2})
    await vote(
        db,
        o,
        {"trace_id": "known", "score": 1},
        {"trace_id": "pending", "score": -1, "source": "eval"},
        {"trace_id": "pending", "score": 1, "source": "eval"},
    )
    s = await quality.summary(db, org_id=o, filters=NO_FILTER)
    assert s.total_feedback == 3
    assert s.unknown_trace_feedback == 2
    assert s.rated_traces == 1  # a trace that has not arrived has no cost to count yet
    assert s.by_source == {"user": 1, "eval": 2}
    assert s.avg_cost == pytest.approx(0.2)
    assert s.avg_score == round(1 / 3, 3)
    assert {m: q.total_feedback for m, q in (await models(db, o)).items()} == {"gpt-4.1": 1}
    score = await quality.trace_score(db, org_id=o, trace_id="pending")
    assert (score.total, score.positive, score.negative, score.score) == (2, 1, 1, 0.0)
    # A trace filter (project, time window) leaves out votes whose trace is unknown.
    s = await quality.summary(db, org_id=o, filters=AnalyticsFilter(project="default"))
    assert (s.total_feedback, s.unknown_trace_feedback) == (1, 0)
    s = await quality.summary(db, org_id=o, filters=AnalyticsFilter(source="eval"))
    assert (s.total_feedback, s.unknown_trace_feedback) == (2, 2)

    await ingest(db, o, {"trace_id": "pending", "model": "gpt-4.1-mini", "cost": 0.05})
    s = await quality.summary(db, org_id=o, filters=NO_FILTER)
    assert (s.total_feedback, s.unknown_trace_feedback, s.rated_traces) == (3, 0, 2)
    got = await models(db, o)
    assert got["gpt-4.1-mini"].total_feedback == 2
    assert got["gpt-4.1-mini"].avg_cost == pytest.approx(0.05)


async def test_call_feedback_counts_for_the_call_model_and_cost(db: Database) -> None:
    o = org()
    await ingest(
        db,
        o,
        {"trace_id": "t", "call_id": "big", "model": "gpt-4.1", "cost": 0.09},
        {"trace_id": "t", "call_id": "small", "model": "gpt-4.1-mini", "cost": 0.01},
    )
    await vote(
        db,
        o,
        {"trace_id": "t", "score": 1},
        {"trace_id": "t", "call_id": "small", "score": -1},
        {"trace_id": "t", "call_id": "small", "score": -1},
        # A call id that was never stored falls back to the trace.
        {"trace_id": "t", "call_id": "never-sent", "score": 1},
    )
    got = await models(db, o)
    big, small = got["gpt-4.1"], got["gpt-4.1-mini"]
    assert (big.total_feedback, big.positive, big.rated_traces) == (2, 2, 1)
    assert big.avg_cost == pytest.approx(0.1)  # the whole trace
    assert (small.total_feedback, small.negative, small.rated_traces) == (2, 2, 1)
    assert small.avg_cost == pytest.approx(0.01)  # that call only
    assert small.cost_per_positive is None
    # Everywhere else the trace is one subject: its cost counts once.
    s = await quality.summary(db, org_id=o, filters=NO_FILTER)
    assert (s.total_feedback, s.rated_traces, s.positive_traces) == (4, 1, 0)
    assert s.total_cost == pytest.approx(0.1)
    one = await quality.for_model(db, org_id=o, model="gpt-4.1-mini", filters=NO_FILTER)
    assert one == small


async def test_unpriced_traces_are_rated_but_not_costed(db: Database) -> None:
    o = org()
    await ingest(
        db,
        o,
        {"trace_id": "priced", "model": "m", "cost": 0.3},
        {"trace_id": "unpriced", "model": "m"},
    )
    await vote(db, o, {"trace_id": "priced", "score": 1}, {"trace_id": "unpriced", "score": 1})
    q = (await models(db, o))["m"]
    assert q.rated_traces == 2
    assert q.positive_traces == 2
    assert q.avg_cost == pytest.approx(0.3)  # mean over the traces whose cost is known
    assert q.total_cost == pytest.approx(0.3)
    # The unknown cost is valued at the known mean, not at zero (see the report).
    assert q.cost_per_positive == pytest.approx(0.3)


async def test_prompt_versions(db: Database) -> None:
    o = org()
    await ingest(
        db,
        o,
        {"trace_id": "v1a", "model": "m", "cost": 0.1, "prompt_id": "bot", "prompt_version": 1},
        {"trace_id": "v1b", "model": "m", "cost": 0.3, "prompt_id": "bot", "prompt_version": 1},
        {"trace_id": "v2", "model": "m", "cost": 0.2, "metadata": {"prompt_id": "bot"}},
        {"trace_id": "v3", "model": "m", "cost": 0.2, "prompt_id": "bot", "prompt_version": "v3"},
        {"trace_id": "other", "model": "m", "cost": 5.0, "prompt_id": "else", "prompt_version": 1},
    )
    await vote(
        db,
        o,
        {"trace_id": "v1a", "score": 1},
        {"trace_id": "v1a", "score": 1},
        {"trace_id": "v1b", "score": -1},
        {"trace_id": "v2", "score": 0},
        {"trace_id": "other", "score": 1},
    )
    found = await quality.by_prompt_version(db, org_id=o, prompt_id="bot", filters=NO_FILTER)
    assert [(q.prompt_id, q.version) for q in found] == [("bot", 1), ("bot", None)]
    v1, unversioned = found
    assert (v1.total_feedback, v1.positive, v1.negative, v1.rated_traces) == (3, 2, 1, 2)
    assert v1.avg_cost == pytest.approx(0.2)
    assert v1.cost_per_positive == pytest.approx(0.4)
    assert v1.avg_score == round(1 / 3, 3)
    assert (unversioned.total_feedback, unversioned.neutral) == (1, 1)
    with pytest.raises(NotFound):
        await quality.by_prompt_version(db, org_id=o, prompt_id="nobody", filters=NO_FILTER)
    # A prompt that exists but has no votes in the filter answers an empty list.
    assert (
        await quality.by_prompt_version(
            db, org_id=o, prompt_id="bot", filters=AnalyticsFilter(source="eval")
        )
        == []
    )


async def test_for_model_zeros_and_not_found(db: Database) -> None:
    o = org()
    await ingest(
        db,
        o,
        {"trace_id": "t", "call_id": "a", "model": "openai/gpt-4o", "cost": 0.2},
        {"trace_id": "t", "call_id": "b", "model": "helper", "cost": 0.1},
    )
    q = await quality.for_model(db, org_id=o, model="openai/gpt-4o", filters=NO_FILTER)
    assert q.model == "openai/gpt-4o"
    assert (q.total_feedback, q.rated_traces) == (0, 0)
    assert q.avg_score is None and q.cost_per_positive is None
    helper = await quality.for_model(db, org_id=o, model="helper", filters=NO_FILTER)
    assert helper.total_feedback == 0  # a model seen only in a non-primary call
    with pytest.raises(NotFound):
        await quality.for_model(db, org_id=o, model="never-used", filters=NO_FILTER)


async def test_windows_select_traces_by_trace_time(db: Database) -> None:
    o = org()
    await ingest(
        db,
        o,
        {"trace_id": "old", "model": "m", "cost": 1.0, "timestamp": T0},
        {"trace_id": "new", "model": "m", "cost": 3.0, "timestamp": T0 + timedelta(days=7)},
    )
    # Both votes arrive now, long after either trace: the window still follows trace time.
    await vote(db, o, {"trace_id": "old", "score": 1}, {"trace_id": "new", "score": -1})
    week1 = AnalyticsFilter(since=T0, until=T0 + timedelta(days=7))
    q = (await models(db, o, since=week1.since, until=week1.until))["m"]
    assert (q.total_feedback, q.positive, q.avg_cost) == (1, 1, 1.0)
    s = await quality.summary(db, org_id=o, filters=AnalyticsFilter(since=T0 + timedelta(days=7)))
    assert (s.total_feedback, s.negative, s.avg_cost) == (1, 1, 3.0)
    s = await quality.summary(db, org_id=o, filters=AnalyticsFilter(until=T0))
    assert s.total_feedback == 0


async def test_project_source_user_and_tag_filters(db: Database) -> None:
    o = org()
    await ingest(
        db,
        o,
        {"trace_id": "a", "project": "p1", "model": "m", "cost": 0.1},
        {"trace_id": "b", "project": "p2", "model": "m", "cost": 0.2},
    )
    await vote(
        db,
        o,
        {"trace_id": "a", "score": 1, "source": "user", "user_id": "u", "tags": ["t1"]},
        {"trace_id": "a", "score": -1, "source": "eval", "tags": ["t1", "t2"]},
        {"trace_id": "b", "score": 1, "source": "eval", "user_id": "u"},
    )

    async def total(**f: Any) -> int:
        return (await quality.summary(db, org_id=o, filters=AnalyticsFilter(**f))).total_feedback

    assert await total(project="p1") == 2
    assert await total(project="p2") == 1
    assert await total(source="eval") == 2
    assert await total(source="eval", project="p1") == 1
    assert await total(user_id="u") == 2
    assert await total(tag="t1") == 2
    assert await total(tag="t2") == 1
    assert await total(source="automated") == 0
    s = await quality.summary(db, org_id=o, filters=AnalyticsFilter(source="eval"))
    # Trace b's only eval vote is positive, trace a's negative.
    assert (s.rated_traces, s.positive_traces) == (2, 1)
    assert s.cost_per_positive == pytest.approx(0.3)


async def test_trace_scores(db: Database) -> None:
    o = org()
    await ingest(db, o, {"trace_id": "abc-123", "model": "m"}, {"trace_id": "quiet", "model": "m"})
    await vote(
        db,
        o,
        *[{"trace_id": "abc-123", "score": 1} for _ in range(4)],
        {"trace_id": "abc-123", "score": -1},
        {"trace_id": "abc-123", "call_id": "x", "score": 0},
    )
    s = await quality.trace_score(db, org_id=o, trace_id="abc-123")
    assert (s.total, s.positive, s.negative, s.neutral) == (6, 4, 1, 1)
    assert s.score == 0.5
    quiet = await quality.trace_score(db, org_id=o, trace_id="quiet")
    assert (quiet.total, quiet.score) == (0, None)
    with pytest.raises(NotFound):
        await quality.trace_score(db, org_id=o, trace_id="missing")
    many = await quality.trace_scores(db, org_id=o, trace_ids=["abc-123", "quiet", "missing"])
    assert {k: v.total for k, v in many.items()} == {"abc-123": 6, "quiet": 0, "missing": 0}


async def test_orgs_do_not_see_each_other(db: Database) -> None:
    a, b = org(), org()
    await ingest(db, a, {"trace_id": "t", "model": "m", "cost": 1.0})
    await vote(db, a, {"trace_id": "t", "score": 1})
    await vote(db, b, {"trace_id": "t", "score": -1})
    sa = await quality.summary(db, org_id=a, filters=NO_FILTER)
    sb = await quality.summary(db, org_id=b, filters=NO_FILTER)
    assert (sa.total_feedback, sa.positive, sa.unknown_trace_feedback) == (1, 1, 0)
    assert (sb.total_feedback, sb.negative, sb.unknown_trace_feedback) == (1, 1, 1)
    assert await quality.by_model(db, org_id=b, filters=NO_FILTER) == []
