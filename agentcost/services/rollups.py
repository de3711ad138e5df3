"""Quality roll-ups: DESIGN.md's metrics pre-summed per group and per hour of trace time.

Every write that can change an aggregate (feedback submitted, replaced, changed or deleted; a
call arriving for a rated trace) takes a *before* image of the traces it touches, does its
write, takes an *after* image, and adds the difference of their contributions to
``quality_rollups`` in the same transaction. A trace's contribution is computed from its own
rows with exactly the per-trace rules of the scan path in ``quality.py`` (subjects counted once,
call-level votes for the call's model, unknown traces only in the summary), so the two agree.

Rows are keyed by dimension (``all``, ``model``, ``prompt``), source (``*`` for all sources),
group key, project and hour bucket of the trace's start; feedback whose trace has not arrived
sits in ``all`` with project ``''`` and bucket ``-1``. Costs are summed as integer nanodollars,
so adding and retracting the same trace leaves no floating-point residue.
"""

from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Table, func, select, tuple_
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from agentcost.models import QualityRollup, as_utc
from agentcost.services.sql import calls, feedback, insert_for, traces

rollups: Table = QualityRollup.__table__  # type: ignore[attr-defined]

ALL_SOURCES = "*"
# Levels, as suffixes of the dimension: per hour and per day of trace time, and all time.
HOURLY, DAILY, TOTAL = "", ":d", ":t"
NO_PROJECT = ""
NO_BUCKET = -1
NO_VERSION = -1
_NANOS = 1_000_000_000
_CHUNK = 500  # ids per IN (...) list, well inside every driver's parameter limit


def hour_bucket(moment: datetime) -> int:
    return int(as_utc(moment).timestamp()) // 3600


def to_nanos(cost: float | None) -> int:
    return 0 if cost is None else round(cost * _NANOS)


@dataclass(slots=True)
class Counts:
    """Additive sums of one group; the fields ``quality.metrics`` reads."""

    total: int = 0
    positive: int = 0
    negative: int = 0
    rated: int = 0
    positive_traces: int = 0
    cost_nanos: int = 0
    costed: int = 0
    unknown: int = 0

    def add(self, other: "Counts", sign: int = 1) -> None:
        # Spelled out: this runs for every key of every trace a write touches (hot in batches).
        self.total += sign * other.total
        self.positive += sign * other.positive
        self.negative += sign * other.negative
        self.rated += sign * other.rated
        self.positive_traces += sign * other.positive_traces
        self.cost_nanos += sign * other.cost_nanos
        self.costed += sign * other.costed
        self.unknown += sign * other.unknown

    def is_zero(self) -> bool:
        return not (
            self.total
            or self.positive
            or self.negative
            or self.rated
            or self.positive_traces
            or self.cost_nanos
            or self.costed
            or self.unknown
        )

    @property
    def total_cost(self) -> float | None:
        return self.cost_nanos / _NANOS if self.costed else None


Key = tuple[str, str, str, int, str, int]  # dim, source, key1, key2, project, bucket
COUNT_FIELDS = [f.name for f in fields(Counts)]


@dataclass(slots=True)
class _Vote:
    call_id: str | None
    source: str
    score: int


@dataclass(slots=True)
class _TraceState:
    votes: list[_Vote] = field(default_factory=list)
    trace: Any = None  # the traces row, None while the trace has not arrived
    calls: dict[str, Any] = field(default_factory=dict)  # call_id -> calls row, voted ones only


def snapshot(conn: Connection, org_id: str, trace_ids: Iterable[str]) -> dict[str, _TraceState]:
    """What the contributions of these traces depend on: votes, trace rows, voted calls."""
    states: dict[str, _TraceState] = {}
    for chunk in _chunks(sorted(set(trace_ids))):
        for trace_id, call_id, source, score in conn.execute(
            select(
                feedback.c.trace_id, feedback.c.call_id, feedback.c.source, feedback.c.score
            ).where(feedback.c.org_id == org_id, feedback.c.trace_id.in_(chunk))
        ):
            states.setdefault(trace_id, _TraceState()).votes.append(_Vote(call_id, source, score))
    voted = sorted(states)
    for chunk in _chunks(voted):
        for row in conn.execute(
            select(
                traces.c.trace_id,
                traces.c.model,
                traces.c.project,
                traces.c.prompt_id,
                traces.c.prompt_version,
                traces.c.started_at,
                traces.c.cost,
            ).where(traces.c.org_id == org_id, traces.c.trace_id.in_(chunk))
        ):
            states[row.trace_id].trace = row
    pairs = sorted({(t, v.call_id) for t, s in states.items() for v in s.votes if v.call_id})
    for chunk in _chunks(pairs):
        for row in conn.execute(
            select(calls.c.trace_id, calls.c.call_id, calls.c.model, calls.c.cost).where(
                calls.c.org_id == org_id, tuple_(calls.c.trace_id, calls.c.call_id).in_(chunk)
            )
        ):
            states[row.trace_id].calls[row.call_id] = row
    return states


def contributions(states: dict[str, _TraceState]) -> dict[Key, Counts]:
    """The roll-up rows these traces add up to, with the scan path's per-trace rules."""
    hourly: dict[Key, Counts] = defaultdict(Counts)
    for state in states.values():
        sources = sorted({v.source for v in state.votes})
        for source in [ALL_SOURCES, *sources]:
            votes = [v for v in state.votes if source in (ALL_SOURCES, v.source)]
            _contribute(hourly, state, source, votes)
    return _levels(hourly)


def _levels(hourly: dict[Key, Counts]) -> dict[Key, Counts]:
    """Each hour's sums also go to its day and to the all-time totals. Feedback whose trace is
    unknown has no time: it is only in the totals (bucket -1), which no time window reads."""
    out: dict[Key, Counts] = defaultdict(Counts)
    for (dim, source, key1, key2, project, bucket), counts in hourly.items():
        if bucket == NO_BUCKET:
            out[(dim + TOTAL, source, key1, key2, project, NO_BUCKET)].add(counts)
            continue
        out[(dim + HOURLY, source, key1, key2, project, bucket)].add(counts)
        out[(dim + DAILY, source, key1, key2, project, bucket // 24)].add(counts)
        out[(dim + TOTAL, source, key1, key2, project, 0)].add(counts)
    return out


def _contribute(
    out: dict[Key, Counts], state: _TraceState, source: str, votes: list[_Vote]
) -> None:
    trace = state.trace
    if trace is None:
        orphan = _votes(votes, rated=False, cost=None)
        orphan.unknown = len(votes)
        out[("all", source, "", NO_VERSION, NO_PROJECT, NO_BUCKET)].add(orphan)
        return
    place = (trace.project, hour_bucket(trace.started_at))
    whole = _votes(votes, rated=True, cost=trace.cost)
    out[("all", source, "", NO_VERSION, *place)].add(whole)
    if trace.prompt_id is not None:
        version = NO_VERSION if trace.prompt_version is None else trace.prompt_version
        out[("prompt", source, trace.prompt_id, version, *place)].add(whole)
    # Per model, a vote naming a stored call rates that call (its model, its cost).
    by_subject: dict[str | None, list[_Vote]] = defaultdict(list)
    for vote in votes:
        by_subject[vote.call_id if vote.call_id in state.calls else None].append(vote)
    for call_id, subject_votes in by_subject.items():
        call = None if call_id is None else state.calls[call_id]
        model = trace.model if call is None else call.model
        cost = trace.cost if call is None else call.cost
        out[("model", source, model, NO_VERSION, *place)].add(
            _votes(subject_votes, rated=True, cost=cost)
        )


def _votes(votes: list[_Vote], *, rated: bool, cost: float | None) -> Counts:
    score = sum(v.score for v in votes)
    return Counts(
        total=len(votes),
        positive=sum(v.score == 1 for v in votes),
        negative=sum(v.score == -1 for v in votes),
        rated=int(rated),
        positive_traces=int(rated and score > 0),
        cost_nanos=to_nanos(cost) if rated else 0,
        costed=int(rated and cost is not None),
    )


def apply(
    conn: Connection,
    org_id: str,
    before: dict[Key, Counts],
    after: dict[Key, Counts],
) -> None:
    """Add after - before to the stored roll-ups, in key order (no deadlock between writers)."""
    delta: dict[Key, Counts] = defaultdict(Counts)
    for key, counts in after.items():
        delta[key].add(counts)
    for key, counts in before.items():
        delta[key].add(counts, -1)
    rows = [
        {"org_id": org_id, **dict(zip(_KEY_COLUMNS, key, strict=True)), **_as_dict(counts)}
        for key, counts in sorted(delta.items())
        if not counts.is_zero()
    ]
    if not rows:
        return
    stmt = insert_for(conn.dialect.name, rollups)
    stmt = stmt.on_conflict_do_update(
        index_elements=[rollups.c.org_id, *(rollups.c[k] for k in _KEY_COLUMNS)],
        set_={name: rollups.c[name] + stmt.excluded[name] for name in COUNT_FIELDS},
    )
    conn.execute(stmt, rows)


_KEY_COLUMNS = ("dim", "source", "key1", "key2", "project", "bucket")


def _as_dict(counts: Counts) -> dict[str, int]:
    return {name: getattr(counts, name) for name in COUNT_FIELDS}


class _Tracker:
    """One organisation's side of ``maintained``: before and after images of its traces."""

    def __init__(self, conn: AsyncConnection, org_id: str) -> None:
        self.conn = conn
        self.org_id = org_id
        self.trace_ids: set[str] = set()
        self._voted: set[str] = set()
        self._before: dict[Key, Counts] = {}

    async def before(
        self, *, trace_ids: Iterable[str] = (), feedback_ids: Sequence[str] = ()
    ) -> None:
        """Lock and read the traces the write will touch (also those of replaced feedback)."""
        if self.conn.dialect.name == "postgresql":
            # One writer per org at a time keeps before/after images consistent.
            await self.conn.execute(select(_advisory_lock(self.org_id)))
        self.trace_ids = set(trace_ids)
        if feedback_ids:
            for chunk in _chunks(sorted(set(feedback_ids))):
                result = await self.conn.execute(
                    select(feedback.c.trace_id).where(
                        feedback.c.org_id == self.org_id, feedback.c.id.in_(chunk)
                    )
                )
                self.trace_ids.update(result.scalars())
        self._before = await self.conn.run_sync(self._contributions, self.trace_ids)

    async def after(self, *, votes_changed: bool = True) -> None:
        """Apply the difference; a write that adds no votes only matters to voted traces."""
        trace_ids = self.trace_ids if votes_changed else self._voted
        if not trace_ids:
            return
        after = await self.conn.run_sync(self._contributions, trace_ids)
        await self.conn.run_sync(apply, self.org_id, self._before, after)

    def _contributions(self, conn: Connection, trace_ids: set[str]) -> dict[Key, Counts]:
        states = snapshot(conn, self.org_id, trace_ids)
        self._voted.update(states)
        return contributions(states)


@asynccontextmanager
async def maintained(
    conn: AsyncConnection,
    *,
    traces_of: Iterable[tuple[str, str]] = (),
    feedback_of: Iterable[tuple[str, str]] = (),
    votes_changed: bool = True,
) -> AsyncIterator[None]:
    """Keep roll-ups current across the write in the block: (org, trace id) pairs it touches,
    and (org, feedback id) pairs whose current trace it may move votes away from.

    One write may hold several organisations' rows (a group commit); orgs are taken in order,
    so two writers never wait on each other's locks in opposite orders.
    """
    trace_ids: dict[str, set[str]] = defaultdict(set)
    feedback_ids: dict[str, set[str]] = defaultdict(set)
    for org_id, trace_id in traces_of:
        trace_ids[org_id].add(trace_id)
    for org_id, feedback_id in feedback_of:
        feedback_ids[org_id].add(feedback_id)
    trackers = []
    for org_id in sorted(trace_ids.keys() | feedback_ids.keys()):
        tracker = _Tracker(conn, org_id)
        await tracker.before(trace_ids=trace_ids[org_id], feedback_ids=sorted(feedback_ids[org_id]))
        trackers.append(tracker)
    yield
    for tracker in trackers:
        await tracker.after(votes_changed=votes_changed)


def _advisory_lock(org_id: str) -> Any:
    return func.pg_advisory_xact_lock(func.hashtextextended(f"agentcost-rollups:{org_id}", 0))


def rebuild(conn: Connection, org_id: str | None = None) -> None:
    """Recompute every roll-up from the rows (a migration's backfill, and the tests' oracle)."""
    delete = rollups.delete()
    if org_id is not None:
        delete = delete.where(rollups.c.org_id == org_id)
    conn.execute(delete)
    orgs_stmt = select(feedback.c.org_id).distinct()
    if org_id is not None:
        orgs_stmt = orgs_stmt.where(feedback.c.org_id == org_id)
    for org in conn.execute(orgs_stmt).scalars().all():
        trace_ids = (
            conn.execute(select(feedback.c.trace_id).where(feedback.c.org_id == org).distinct())
            .scalars()
            .all()
        )
        for chunk in _chunks(sorted(trace_ids), size=5000):
            apply(conn, org, {}, contributions(snapshot(conn, org, chunk)))


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
