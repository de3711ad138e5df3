"""Quality aggregates: DESIGN.md's metric table, computed by SQL in two GROUP BY steps.

Step one folds the votes of each *subject* (a rated trace, or a rated call) into one row, so a
trace with many calls or many votes contributes its cost exactly once. Step two folds subjects
into groups (model, prompt version, the whole org). Python only rounds the final few numbers.
"""

import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Integer, exists, func, literal, or_, select

from agentcost.db import Database
from agentcost.errors import NotFound
from agentcost.models import (
    FeedbackSummary,
    ModelQuality,
    PromptVersionQuality,
    TraceScore,
)
from agentcost.services import traces as traces_service
from agentcost.services.attribution import attributed_cost, attributed_model, join_attribution
from agentcost.services.filters import AnalyticsFilter, analytics_conditions
from agentcost.services.sql import calls, count_where, feedback, traces

_Z = 1.959963984540054  # two-sided 95 %


def _subjects(
    org_id: str,
    filters: AnalyticsFilter,
    groups: dict[str, Any],
    *,
    conditions: Sequence[Any] = (),
    keep_unknown_traces: bool = False,
    by_call: bool = False,
) -> Any:
    """One row per (group, subject) with its vote counts and its cost, counted once.

    Only per-model groups rate calls as subjects of their own (a call's model may differ from
    its trace's); every other group counts the whole trace once, so no cost is counted twice.
    """
    keys = [expr.label(name) for name, expr in groups.items()]
    subject = [feedback.c.trace_id, calls.c.call_id] if by_call else [feedback.c.trace_id]
    return (
        select(
            *keys,
            func.count().label("n"),
            count_where(feedback.c.score == 1).label("pos"),
            count_where(feedback.c.score == -1).label("neg"),
            func.sum(feedback.c.score).label("score_sum"),
            func.max(attributed_cost() if by_call else traces.c.cost).label("cost"),
            func.max(traces.c.trace_id.is_not(None).cast(Integer)).label("known"),
        )
        .select_from(join_attribution(feedback, keep_unknown_traces=keep_unknown_traces))
        .where(*analytics_conditions(org_id, filters), *conditions)
        .group_by(*groups.values(), *subject)
        .subquery("subjects")
    )


def _groups_query(subjects: Any, group_names: Sequence[str]) -> Any:
    s = subjects.c
    known = s.known == 1
    keys = [s[name] for name in group_names]
    return select(
        *keys,
        func.coalesce(func.sum(s.n), 0).label("total"),
        func.coalesce(func.sum(s.pos), 0).label("positive"),
        func.coalesce(func.sum(s.neg), 0).label("negative"),
        count_where(known).label("rated"),
        count_where(known & (s.score_sum > 0)).label("positive_traces"),
        func.sum(s.cost).label("total_cost"),
        func.count(s.cost).label("costed"),
        func.coalesce(func.sum(s.n * (1 - s.known)), 0).label("unknown"),
    ).group_by(*keys)


def metrics(row: Any) -> dict[str, Any]:
    """The metric fields of one group from its counts; ratios are None for an empty group."""
    total, pos, neg = int(row.total), int(row.positive), int(row.negative)
    rated, positive_traces, costed = int(row.rated), int(row.positive_traces), int(row.costed)
    neutral = total - pos - neg
    avg_cost = row.total_cost / costed if costed else None
    # Rated subjects with unknown cost (unpriced models) are valued at the mean of the known ones
    # rather than at zero, which would flatter the model.
    cost_per_positive = (
        avg_cost * rated / positive_traces if avg_cost is not None and positive_traces else None
    )
    low, high = _wilson(pos, total)
    return {
        "total_feedback": total,
        "positive": pos,
        "negative": neg,
        "neutral": neutral,
        "positive_pct": _pct(pos, total),
        "negative_pct": _pct(neg, total),
        "neutral_pct": _pct(neutral, total),
        "avg_score": round((pos - neg) / total, 3) if total else None,
        "rated_traces": rated,
        "positive_traces": positive_traces,
        "total_cost": None if row.total_cost is None else round(float(row.total_cost), 10),
        "avg_cost": _money(avg_cost),
        "cost_per_positive": _money(cost_per_positive),
        "positive_pct_low": low,
        "positive_pct_high": high,
    }


def _pct(count: int, total: int) -> float | None:
    return round(100 * count / total, 1) if total else None


def _money(value: float | None) -> float | None:
    """Three significant figures, as the guide shows costs (0.00369, 0.000766)."""
    return None if value is None else float(f"{value:.3g}")


def _wilson(positive: int, total: int) -> tuple[float | None, float | None]:
    if not total:
        return None, None
    p = positive / total
    z2 = _Z * _Z
    centre = (p + z2 / (2 * total)) / (1 + z2 / total)
    half = _Z * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total)) / (1 + z2 / total)
    return round(100 * max(0.0, centre - half), 1), round(100 * min(1.0, centre + half), 1)


async def by_model(
    db: Database, *, org_id: str, filters: AnalyticsFilter, model: str | None = None
) -> list[ModelQuality]:
    """Per attributed model, most-rated first."""
    model_expr = attributed_model()
    conditions = [] if model is None else [model_expr == model]
    subjects = _subjects(
        org_id, filters, {"model": model_expr}, conditions=conditions, by_call=True
    )
    stmt = _groups_query(subjects, ["model"])
    async with db.read() as conn:
        rows = (await conn.execute(stmt)).all()
    result = [ModelQuality(model=row.model, **metrics(row)) for row in rows]
    result.sort(key=lambda q: (-q.total_feedback, q.model))
    return result


async def for_model(
    db: Database, *, org_id: str, model: str, filters: AnalyticsFilter
) -> ModelQuality:
    """One model; zeros when it has no feedback in the filters, NotFound when never seen."""
    found = await by_model(db, org_id=org_id, filters=filters, model=model)
    if found:
        return found[0]
    seen = or_(
        exists().where(traces.c.org_id == org_id, traces.c.model == model),
        exists().where(calls.c.org_id == org_id, calls.c.model == model),
    )
    async with db.read() as conn:
        if not (await conn.execute(select(seen))).scalar():
            raise NotFound("model", model)
    return ModelQuality(model=model, **metrics(_EMPTY))


async def by_prompt_version(
    db: Database, *, org_id: str, prompt_id: str, filters: AnalyticsFilter
) -> list[PromptVersionQuality]:
    """Per version of one prompt, in version order; NotFound when no trace used the prompt."""
    subjects = _subjects(
        org_id,
        filters,
        {"version": traces.c.prompt_version},
        conditions=[traces.c.prompt_id == prompt_id],
    )
    stmt = _groups_query(subjects, ["version"])
    async with db.read() as conn:
        rows = (await conn.execute(stmt)).all()
        if not rows:
            seen = exists().where(traces.c.org_id == org_id, traces.c.prompt_id == prompt_id)
            if not (await conn.execute(select(seen))).scalar():
                raise NotFound("prompt", prompt_id)
    result = [
        PromptVersionQuality(prompt_id=prompt_id, version=row.version, **metrics(row))
        for row in rows
    ]
    result.sort(key=lambda q: (q.version is None, q.version or 0))
    return result


async def summary(db: Database, *, org_id: str, filters: AnalyticsFilter) -> FeedbackSummary:
    """Everything in the org; feedback on unknown traces counts unless a trace filter is set."""
    subjects = _subjects(org_id, filters, {"all": literal(1)}, keep_unknown_traces=True)
    totals = _groups_query(subjects, [])
    by_source = (
        select(feedback.c.source, func.count())
        .select_from(join_attribution(feedback, keep_unknown_traces=True))
        .where(*analytics_conditions(org_id, filters))
        .group_by(feedback.c.source)
    )
    async with db.read() as conn:
        row = (await conn.execute(totals)).first() or _EMPTY
        sources = {source: count for source, count in await conn.execute(by_source)}
    return FeedbackSummary(
        **metrics(row), unknown_trace_feedback=int(row.unknown), by_source=sources
    )


async def trace_scores(
    db: Database, *, org_id: str, trace_ids: Sequence[str]
) -> dict[str, TraceScore]:
    """Scores of many traces in one statement; a trace without votes scores None."""
    result = {t: _score(t, 0, 0, 0) for t in trace_ids}
    if not trace_ids:
        return result
    stmt = (
        select(
            feedback.c.trace_id,
            func.count(),
            count_where(feedback.c.score == 1),
            count_where(feedback.c.score == -1),
        )
        .where(feedback.c.org_id == org_id, feedback.c.trace_id.in_(set(trace_ids)))
        .group_by(feedback.c.trace_id)
    )
    async with db.read() as conn:
        for trace_id, total, pos, neg in await conn.execute(stmt):
            result[trace_id] = _score(trace_id, int(total), int(pos), int(neg))
    return result


async def trace_score(db: Database, *, org_id: str, trace_id: str) -> TraceScore:
    """Score of one trace: known or with feedback waiting for it, else NotFound."""
    score = (await trace_scores(db, org_id=org_id, trace_ids=[trace_id]))[trace_id]
    if score.total == 0:
        await traces_service.ensure_trace_known(db, org_id=org_id, trace_id=trace_id)
    return score


def _score(trace_id: str, total: int, pos: int, neg: int) -> TraceScore:
    return TraceScore(
        trace_id=trace_id,
        total=total,
        positive=pos,
        negative=neg,
        neutral=total - pos - neg,
        score=round((pos - neg) / total, 3) if total else None,
    )


class _Empty:
    total = positive = negative = rated = positive_traces = costed = unknown = 0
    total_cost = None


_EMPTY = _Empty()
