"""The demo data set: what `agentcost demo` reports is what the analytics then show."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import Table, func, select

from agentcost.db import Database
from agentcost.demo import MODELS, UNPRICED_MODEL, DemoStats, seed_demo
from agentcost.models import FeedbackSource
from agentcost.services import quality
from agentcost.services.filters import AnalyticsFilter, TraceFilter
from agentcost.services.sql import calls, traces
from agentcost.services.traces import list_traces

pytestmark = pytest.mark.anyio

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
ALL = AnalyticsFilter()


async def _count(db: Database, table: Table, org_id: str) -> int:
    stmt = select(func.count()).select_from(table).where(table.c.org_id == org_id)
    async with db.read() as conn:
        return (await conn.execute(stmt)).scalar_one()


async def _analytics(db: Database, org_id: str) -> dict[str, object]:
    """Every aggregate the demo is meant to show, as plain data for comparison."""
    prompts = {
        prompt_id: [
            q.model_dump(exclude={"prompt_id"})
            for q in await quality.by_prompt_version(
                db, org_id=org_id, prompt_id=prompt_id, filters=ALL
            )
        ]
        for prompt_id in ("support-bot", "summarizer", "code-review")
    }
    return {
        "summary": (await quality.summary(db, org_id=org_id, filters=ALL)).model_dump(),
        "models": [q.model_dump() for q in await quality.by_model(db, org_id=org_id, filters=ALL)],
        "prompts": prompts,
    }


async def test_demo_counts_reach_the_analytics(db: Database) -> None:
    stats = await seed_demo(db, org_id="demo", traces=600, seed=7, now=NOW)

    assert stats.traces == 600
    assert await _count(db, traces, "demo") == stats.traces
    assert await _count(db, calls, "demo") == stats.calls > stats.traces  # multi-call traces
    assert 0 < stats.explicit_cost_calls < stats.calls

    summary = await quality.summary(db, org_id="demo", filters=ALL)
    assert summary.total_feedback == stats.feedback
    assert summary.unknown_trace_feedback == stats.unknown_trace_feedback > 0
    assert stats.feedback_before_trace > 0
    assert summary.by_source == stats.by_source
    assert set(summary.by_source) == {s.value for s in FeedbackSource}

    by_model = {q.model: q for q in await quality.by_model(db, org_id="demo", filters=ALL)}
    assert set(by_model) == set(MODELS)
    # Unknown traces count only in the summary, so the per-model groups add up to the rest.
    assert sum(q.total_feedback for q in by_model.values()) == (
        stats.feedback - stats.unknown_trace_feedback
    )
    unpriced = by_model[UNPRICED_MODEL]
    assert unpriced.total_feedback > 0
    assert unpriced.avg_cost is None and unpriced.cost_per_positive is None
    for name, q in by_model.items():
        if name != UNPRICED_MODEL:
            assert q.avg_cost is not None and q.avg_cost > 0
    # The story the demo tells: the mini model is cheaper, and rated lower, than gpt-4.1.
    big, mini = by_model["gpt-4.1"], by_model["gpt-4.1-mini"]
    assert mini.avg_cost is not None and big.avg_cost is not None
    assert mini.avg_cost < big.avg_cost / 3
    assert mini.positive_pct is not None and big.positive_pct is not None
    assert mini.positive_pct < big.positive_pct

    unpriced_traces, _ = await list_traces(
        db, org_id="demo", filters=TraceFilter(model=UNPRICED_MODEL), limit=1000
    )
    assert unpriced_traces
    assert all(t.cost is None and t.unpriced_calls == t.call_count for t in unpriced_traces)

    for prompt_id, versions in stats.prompts.items():
        found = await quality.by_prompt_version(db, org_id="demo", prompt_id=prompt_id, filters=ALL)
        assert [q.version for q in found] == list(versions)
        assert all(q.total_feedback > 0 for q in found)
    support = await quality.by_prompt_version(
        db, org_id="demo", prompt_id="support-bot", filters=ALL
    )
    assert support[0].avg_score is not None and support[-1].avg_score is not None
    assert support[-1].avg_score > support[0].avg_score  # v3 beats v1


async def test_same_seed_same_analytics(db: Database) -> None:
    first = await seed_demo(db, org_id="first", traces=300, seed=11, now=NOW)
    second = await seed_demo(db, org_id="second", traces=300, seed=11, now=NOW)
    other = await seed_demo(db, org_id="other", traces=300, seed=12, now=NOW)

    def counts(stats: DemoStats) -> DemoStats:
        stats.org_id = ""
        return stats

    assert counts(first) == counts(second)
    assert await _analytics(db, "first") == await _analytics(db, "second")
    assert await _analytics(db, "first") != await _analytics(db, "other")
    assert counts(other) != counts(first)


async def test_rerun_replaces_instead_of_duplicating(db: Database) -> None:
    stats = await seed_demo(db, org_id="demo", traces=100, seed=3, now=NOW)
    before = await _analytics(db, "demo")
    await seed_demo(db, org_id="demo", traces=100, seed=3, now=NOW)

    assert await _count(db, traces, "demo") == stats.traces
    assert await _count(db, calls, "demo") == stats.calls
    assert await _analytics(db, "demo") == before
