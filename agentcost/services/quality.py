"""Quality aggregates: DESIGN.md's metric table, computed by SQL in two GROUP BY steps.

Step one folds the votes of each *subject* (a rated trace, or a rated call) into one row, so a
trace with many calls or many votes contributes its cost exactly once. Step two folds subjects
into groups (model, prompt version, the whole org). Python only rounds the final few numbers.
"""

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    Integer,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
    union_all,
)

from agentcost.db import Database
from agentcost.errors import NotFound
from agentcost.models import (
    EPOCH,
    FeedbackSource,
    FeedbackSummary,
    ModelQuality,
    PromptVersionQuality,
    TraceScore,
)
from agentcost.services import traces as traces_service
from agentcost.services.attribution import attributed_cost, attributed_model, join_attribution
from agentcost.services.filters import AnalyticsFilter, analytics_conditions, trace_window
from agentcost.services.rollups import (
    ALL_SOURCES,
    BUCKET_SECONDS,
    COUNT_FIELDS,
    LEVELS,
    NO_VERSION,
    TOTAL,
    Counts,
    rollups,
    to_nanos,
)
from agentcost.services.sql import (
    Precompiled,
    calls,
    count_where,
    feedback,
    of_traces,
    param,
    trace_params,
    traces,
)

_Z = 1.959963984540054  # two-sided 95 %
# The scan path's column of each source's votes, for the summary's by_source.
_SOURCE_COLUMNS = {source: f"votes_{index}" for index, source in enumerate(FeedbackSource)}
# Roll-up rows of all sources and of each, as constants in the statement text: a list of bound
# values is rendered anew on every execution (and SQLite then prepares a new statement).
_EVERY_SOURCE = [literal_column(f"'{s}'") for s in (ALL_SOURCES, *FeedbackSource)]


def _subjects(
    groups: dict[str, Any],
    *,
    conditions: Sequence[Any],
    keep_unknown_traces: bool = False,
    by_call: bool = False,
    per_source: bool = False,
) -> Any:
    """One row per (group, subject) with its vote counts and its cost, counted once, and with
    ``per_source`` its votes from each source (``_SOURCE_COLUMNS``).

    Only per-model groups rate calls as subjects of their own (a call's model may differ from
    its trace's); every other group counts the whole trace once, so no cost is counted twice.
    """
    keys = [expr.label(name) for name, expr in groups.items()]
    subject = [feedback.c.trace_id, calls.c.call_id] if by_call else [feedback.c.trace_id]
    sources = [
        count_where(feedback.c.source == source.value).label(column)
        for source, column in _SOURCE_COLUMNS.items()
        if per_source
    ]
    return (
        select(
            *keys,
            *sources,
            func.count().label("n"),
            count_where(feedback.c.score == 1).label("pos"),
            count_where(feedback.c.score == -1).label("neg"),
            func.sum(feedback.c.score).label("score_sum"),
            func.max(attributed_cost() if by_call else traces.c.cost).label("cost"),
            func.max(traces.c.trace_id.is_not(None).cast(Integer)).label("known"),
        )
        .select_from(join_attribution(feedback, keep_unknown_traces=keep_unknown_traces))
        .where(*conditions)
        .group_by(*groups.values(), *subject)
    )


def _groups_query(subjects: Any, group_names: Sequence[str]) -> Any:
    s = subjects.c
    known = s.known == 1
    keys = [s[name] for name in group_names]
    sources = [
        func.coalesce(func.sum(s[column]), 0).label(column)
        for column in _SOURCE_COLUMNS.values()
        if column in s
    ]
    return select(
        *keys,
        *sources,
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
    async with db.read() as conn:
        groups = await _group_sums(conn, org_id, "model", filters, key1=model)
    result = [ModelQuality(model=key1, **metrics(c)) for (key1, _), c in groups.items()]
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
    return ModelQuality(model=model, **metrics(Counts()))


async def by_prompt_version(
    db: Database, *, org_id: str, prompt_id: str, filters: AnalyticsFilter
) -> list[PromptVersionQuality]:
    """Per version of one prompt, in version order; NotFound when no trace used the prompt."""
    async with db.read() as conn:
        groups = await _group_sums(conn, org_id, "prompt", filters, key1=prompt_id)
        if not groups:
            seen = exists().where(traces.c.org_id == org_id, traces.c.prompt_id == prompt_id)
            if not (await conn.execute(select(seen))).scalar():
                raise NotFound("prompt", prompt_id)
    result = [
        PromptVersionQuality(
            prompt_id=prompt_id, version=None if key2 == NO_VERSION else key2, **metrics(c)
        )
        for (_, key2), c in groups.items()
    ]
    result.sort(key=lambda q: (q.version is None, q.version or 0))
    return result


async def summary(db: Database, *, org_id: str, filters: AnalyticsFilter) -> FeedbackSummary:
    """Everything in the org; feedback on unknown traces counts unless a trace filter is set."""
    sources: dict[str, int] = defaultdict(int)
    async with db.read() as conn:
        groups = await _group_sums(conn, org_id, "all", filters, sources=sources)
    counts = groups.get(_WHOLE_ORG, Counts())
    return FeedbackSummary(
        **metrics(counts),
        unknown_trace_feedback=counts.unknown,
        by_source={source: total for source, total in sorted(sources.items()) if total},
    )


# ---------------------------------------------------------------------------------------------
# Where the sums come from: roll-ups for whole buckets of trace time, the scan path for the
# partial ten minutes at a window's edges and for filters roll-ups do not key (user, tag).

GroupKey = tuple[str, int]
Range = tuple[str, int | None, int | None]  # roll-up level, bucket range [low, high)
Window = tuple[datetime | None, datetime | None]  # of trace time, [since, until)
_WHOLE_ORG: GroupKey = ("", NO_VERSION)  # the one group of the "all" dimension


@dataclass(frozen=True, slots=True)
class _Shape:
    """Which filters a request sets, and how its window splits into roll-up ranges and scans.

    Building an analytics statement (expression objects, then its cache key) costs about as
    much as running it, so each shape's statement is built once, with bound parameters, and
    every request of that shape runs it with its own values (``_bind`` gives both).
    """

    project: bool
    source: bool
    user_id: bool
    tag: bool
    key1: bool
    per_source: bool
    ranges: tuple[tuple[str, bool, bool], ...] = ()  # level, has low, has high
    windows: tuple[tuple[bool, bool], ...] = ()  # scans: has since, has until


def _bind(
    org_id: str,
    filters: AnalyticsFilter,
    key1: str | None,
    ranges: Sequence[Range] = (),
    windows: Sequence[Window] = (),
    *,
    per_source: bool = False,
) -> tuple[_Shape, dict[str, Any]]:
    """A request's shape and the values its statement binds (names as ``param`` gives them),
    from the same arguments, so the two cannot disagree."""
    shape = _Shape(
        project=filters.project is not None,
        source=filters.source is not None,
        user_id=filters.user_id is not None,
        tag=filters.tag is not None,
        key1=key1 is not None,
        per_source=per_source,
        ranges=tuple((level, low is not None, high is not None) for level, low, high in ranges),
        windows=tuple((since is not None, until is not None) for since, until in windows),
    )
    values: dict[str, Any] = {
        "org_id": org_id,
        "key1": key1,
        "project": filters.project,
        "source": None if filters.source is None else filters.source.value,
        "user_id": filters.user_id,
        "tag": filters.tag,
    }
    for index, (_, low, high) in enumerate(ranges):
        values[f"low{index}"], values[f"high{index}"] = low, high
    for index, (since, until) in enumerate(windows):
        values[f"since{index}"], values[f"until{index}"] = since, until
    return shape, values


def _scan_groups(dim: str, key1: bool) -> tuple[dict[str, Any], list[Any], dict[str, Any]]:
    """The scan path's grouping for a dimension: group columns, conditions, _subjects options."""
    if dim == "model":
        model = attributed_model()
        return (
            {"key1": model, "key2": literal(NO_VERSION)},
            [model == param("key1")] if key1 else [],
            {"by_call": True},
        )
    if dim == "prompt":
        return (
            {
                "key1": traces.c.prompt_id,
                "key2": func.coalesce(traces.c.prompt_version, NO_VERSION),
            },
            [traces.c.prompt_id == param("key1")],
            {},
        )
    key1, key2 = _WHOLE_ORG
    return {"key1": literal(key1), "key2": literal(key2)}, [], {"keep_unknown_traces": True}


def _windowed(shape: _Shape) -> list[list[Any]]:
    """Conditions of each scan window: the shape's filters, and the window of trace time.

    A window's scan starts from the traces of that window (an index range on trace time)
    rather than from every vote of the organisation."""
    parts = []
    for index, (since, until) in enumerate(shape.windows):
        window = trace_window(param(f"since{index}", since), param(f"until{index}", until))
        conditions = [
            feedback.c.org_id == param("org_id"),
            *window,
            *analytics_conditions(
                project=param("project", shape.project),
                source=param("source", shape.source),
                user_id=param("user_id", shape.user_id),
                tag=param("tag", shape.tag),
            ),
        ]
        if window:
            in_window = select(traces.c.trace_id).where(traces.c.org_id == param("org_id"), *window)
            conditions.append(feedback.c.trace_id.in_(in_window))
        parts.append(conditions)
    return parts


@cache
def _scan_statement(dim: str, shape: _Shape) -> Any:
    groups, conditions, options = _scan_groups(dim, shape.key1)
    parts = [
        _subjects(groups, conditions=[*window, *conditions], per_source=shape.per_source, **options)
        for window in _windowed(shape)
    ]
    subjects = _one_statement(parts).subquery("subjects")
    return _groups_query(subjects, ["key1", "key2"])


async def _scan(
    conn: Any,
    org_id: str,
    dim: str,
    filters: AnalyticsFilter,
    key1: str | None,
    windows: Sequence[Window] | None = None,
    *,
    sources: dict[str, int] | None = None,
) -> dict[GroupKey, Counts]:
    """The scan path: over the filters' own window, or over several windows of trace time;
    with ``sources``, each source's votes are added to it from the same statement."""
    if windows is None:
        windows = [(filters.since, filters.until)]
    shape, values = _bind(org_id, filters, key1, windows=windows, per_source=sources is not None)
    result: dict[GroupKey, Counts] = {}
    for row in await conn.execute(_scan_statement(dim, shape), values):
        result[(row.key1, int(row.key2))] = Counts(
            total=int(row.total),
            positive=int(row.positive),
            negative=int(row.negative),
            rated=int(row.rated),
            positive_traces=int(row.positive_traces),
            cost_nanos=to_nanos(row.total_cost),
            costed=int(row.costed),
            unknown=int(row.unknown),
        )
        if sources is not None:
            for source, column in _SOURCE_COLUMNS.items():
                sources[source.value] += int(row._mapping[column])
    return result


@cache
def _rollup_statement(dim: str, shape: _Shape) -> Any:
    """Each group's sums over the shape's ranges; with ``per_source`` (the summary, whose
    ``all`` dimension has one group), each source's sums instead, grouped by the source alone:
    the index range yields its rows in source order, so no part sorts them."""
    keys = [rollups.c.source] if shape.per_source else [rollups.c.key1, rollups.c.key2]
    return _one_statement(
        [
            select(
                *keys,
                *(func.sum(rollups.c[name]).label(name) for name in COUNT_FIELDS),
            )
            .where(*_rollup_conditions(dim, shape, index))
            .group_by(*keys)
            for index in range(len(shape.ranges))
        ]
    )


async def _group_sums(
    conn: Any,
    org_id: str,
    dim: str,
    filters: AnalyticsFilter,
    *,
    key1: str | None = None,
    sources: dict[str, int] | None = None,
) -> dict[GroupKey, Counts]:
    """The sums of each non-empty group, exactly as the scan path would give them; with
    ``sources`` (the summary's by_source, so ``dim`` is ``all``), each source's votes are added
    to it by the same statements rather than by a second read of the same roll-up ranges and
    window edges."""
    if filters.user_id is not None or filters.tag is not None:
        return await _scan(conn, org_id, dim, filters, key1, sources=sources)
    ranges, edges = _plan(filters)
    result: dict[GroupKey, Counts] = defaultdict(Counts)
    if ranges:
        shape, values = _bind(org_id, filters, key1, ranges, per_source=sources is not None)
        for row in await conn.execute(_rollup_statement(dim, shape), values):
            counts = Counts(**{name: int(getattr(row, name)) for name in COUNT_FIELDS})
            if sources is None:
                result[(row.key1, int(row.key2))].add(counts)
                continue
            # The all-sources ("*") rows are the group's sums and the others count each
            # source's votes; under a source filter, that source's rows are both.
            if filters.source is not None or row.source == ALL_SOURCES:
                result[_WHOLE_ORG].add(counts)
            if row.source != ALL_SOURCES:
                sources[row.source] += counts.total
    if edges:
        scanned = await _scan(conn, org_id, dim, filters, key1, edges, sources=sources)
        for key, counts in scanned.items():
            result[key].add(counts)
    return {key: counts for key, counts in result.items() if counts.total}


def _rollup_conditions(dim: str, shape: _Shape, index: int) -> list[Any]:
    """Rows of one level and bucket range of a dimension under the filters (one index range:
    an OR of levels would scan the organisation's every row); with ``per_source`` and no
    source asked for, each source's own rows besides the all-sources ("*") ones."""
    level, low, high = shape.ranges[index]
    conditions = [rollups.c.org_id == param("org_id"), rollups.c.dim == dim + level]
    if shape.source:
        conditions.append(rollups.c.source == param("source"))
    elif shape.per_source:
        conditions.append(rollups.c.source.in_(_EVERY_SOURCE))
    else:
        conditions.append(rollups.c.source == ALL_SOURCES)
    if shape.key1:
        conditions.append(rollups.c.key1 == param("key1"))
    if shape.project:
        conditions.append(rollups.c.project == param("project"))
    if low:
        conditions.append(rollups.c.bucket >= param(f"low{index}"))
    if high:
        conditions.append(rollups.c.bucket < param(f"high{index}"))
    return conditions


def _one_statement(parts: list[Any]) -> Any:
    """Several index-range reads as one round trip (each part keeps its own index range)."""
    return parts[0] if len(parts) == 1 else union_all(*parts)


def _plan(filters: AnalyticsFilter) -> tuple[list[Range], list[Window]]:
    """Which roll-up rows and which scans make up [since, until) exactly.

    Without a window the totals level answers alone (feedback on unknown traces included).
    With one, the whole finest buckets inside it come from the roll-ups (as whole days, and
    the hours and ten minutes left at either end) and the partial buckets at its edges from the
    scan path; every bucket then is >= 0, which leaves out feedback whose trace (and so whose
    time) is unknown.
    """
    since, until = filters.since, filters.until
    if since is None and until is None:
        return [(TOTAL, None, None)], []
    # Whole microseconds, not float seconds: a float loses the microsecond past year 5000.
    low = 0 if since is None else max(0, -((EPOCH - since) // _BUCKET))
    high = None if until is None else (until - EPOCH) // _BUCKET
    if high is not None and low >= high:
        return [], [(since, until)]
    edges: list[Window] = []
    if since is not None and since < _moment(low):
        edges.append((since, _moment(low)))
    if until is not None and high is not None and _moment(high) < until:
        edges.append((_moment(high), until))
    return _split(low, high, LEVELS), edges


def _split(low: int, high: int | None, levels: Sequence[tuple[str, int]]) -> list[Range]:
    """Finest buckets [low, high) as the fewest roll-up ranges: the whole buckets of the
    coarsest level that has any, then the rest at either end from the finer levels."""
    if high is not None and low >= high:
        return []
    (level, width), finer = levels[0], levels[1:]
    first = -(-low // width)
    last = None if high is None else high // width
    if last is not None and first >= last:
        return _split(low, high, finer)
    ranges: list[Range] = [(level, first, last)]
    if finer:
        ranges += _split(low, first * width, finer)
        if last is not None:
            ranges += _split(last * width, high, finer)
    return ranges


_BUCKET = timedelta(seconds=BUCKET_SECONDS)


def _moment(bucket: int) -> datetime:
    return EPOCH + bucket * _BUCKET


_SCORES = Precompiled(
    select(
        feedback.c.trace_id,
        func.count().label("total"),
        count_where(feedback.c.score == 1).label("positive"),
        count_where(feedback.c.score == -1).label("negative"),
    )
    .where(*of_traces(feedback))
    .group_by(feedback.c.trace_id)
)


async def trace_scores(
    db: Database, *, org_id: str, trace_ids: Sequence[str]
) -> dict[str, TraceScore]:
    """Scores of many traces in one statement; a trace without votes scores None."""
    result = {t: _score(t, 0, 0, 0) for t in trace_ids}
    if not trace_ids:
        return result
    for row in await _SCORES.rows(db, trace_params(org_id, trace_ids)):
        trace_id = row["trace_id"]
        result[trace_id] = _score(
            trace_id, int(row["total"]), int(row["positive"]), int(row["negative"])
        )
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
