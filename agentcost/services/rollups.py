"""Quality roll-ups: DESIGN.md's metrics pre-summed per group and per hour of trace time.

Every write that can change an aggregate (feedback submitted, replaced, changed or deleted; a
call arriving for a rated trace) adds the difference it makes to ``quality_rollups`` in the same
transaction: before the write, the contributions of the traces it touches go into a temporary
delta table with sign -1; after it, their new contributions with sign +1; the net, summed per
key and per level, is upserted. A trace's contribution is computed by SQL with exactly the
per-trace rules of the scan path in ``quality.py`` (subjects counted once, call-level votes for
the call's model, unknown traces only in the summary), so the two agree, and the database does
the work: a batch of thousands of votes costs a few statements, not a Python loop per key.

Rows are keyed by dimension (``all``, ``model``, ``prompt``) and level, source (``*`` for all
sources), group key, project and bucket of the trace's start: ten minutes, an hour or a day of
trace time, or all time (see ``LEVELS``); feedback whose trace has not arrived
sits in ``all`` with project ``''`` and bucket ``-1``. Costs are summed as integer nanodollars,
so adding and retracting the same trace leaves no floating-point residue.
"""

from collections import defaultdict
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, fields
from functools import cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    MetaData,
    Table,
    Text,
    bindparam,
    case,
    cast,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.dialects import registry
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.schema import CreateTable

from agentcost.models import QualityRollup
from agentcost.services.sql import (
    Precompiled,
    calls,
    epoch_seconds,
    feedback,
    in_json_list,
    insert_for,
    json_array,
    traces,
)

rollups: Table = QualityRollup.__table__  # type: ignore[attr-defined]

ALL_SOURCES = "*"
# Levels, as suffixes of the dimension: per ten minutes, hour and day of trace time, and all time.
TEN_MINUTES, HOURLY, DAILY, TOTAL = ":m", "", ":d", ":t"
BUCKET_SECONDS = 600  # the finest level's bucket
# Each timed level with its bucket in finest buckets, coarsest first. A window reads whole days
# from the day level and the hours and ten minutes left at its ends from the finer ones, so at
# most twenty minutes of traces at its two edges are left for the scan path.
LEVELS = ((DAILY, 144), (HOURLY, 6), (TEN_MINUTES, 1))
NO_PROJECT = ""
NO_BUCKET = -1
NO_VERSION = -1
_NANOS = 1_000_000_000


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

    def add(self, other: "Counts") -> None:
        self.total += other.total
        self.positive += other.positive
        self.negative += other.negative
        self.rated += other.rated
        self.positive_traces += other.positive_traces
        self.cost_nanos += other.cost_nanos
        self.costed += other.costed
        self.unknown += other.unknown

    @property
    def total_cost(self) -> float | None:
        return self.cost_nanos / _NANOS if self.costed else None


COUNT_FIELDS = [f.name for f in fields(Counts)]
# In the order of the table's primary key, which the apply groups and sorts by: SQLite's sorts
# then compare the varied bucket before the long names, and rows reach the table in its order.
_KEY_COLUMNS = ("dim", "source", "bucket", "key1", "key2", "project")

# Per connection and transaction: the finest rows of one write's before (-) and after (+) images.
_delta = Table(
    "agentcost_rollup_delta",
    MetaData(),
    Column("org_id", Text),
    Column("dim", Text),
    Column("source", Text),
    Column("key1", Text),
    Column("key2", BigInteger),
    Column("project", Text),
    Column("bucket", BigInteger),
    *(Column(name, BigInteger) for name in COUNT_FIELDS),
    prefixes=["TEMPORARY"],
)


@cache
def _create_delta(dialect: str) -> str:
    """The delta table's DDL as SQL text: SQLAlchemy compiles DDL anew on every execution (it
    caches only queries and DML), and each write creates the table if its connection has not."""
    ddl = CreateTable(_delta, if_not_exists=True)
    return str(ddl.compile(dialect=registry.load(dialect)()))


def _nanos(cost: Any) -> Any:
    return cast(func.round(cost * _NANOS), BigInteger)


def _flag(condition: Any) -> Any:
    return case((condition, 1), else_=0)


_ORG = bindparam("org_id", type_=Text)
_TRACE_IDS = bindparam("trace_ids", type_=Text)  # a JSON array of trace ids


@cache
def _record(sign: int, some: bool) -> Precompiled:
    """Adds to the delta table the finest-level rows of the voted traces of ``:org_id`` (those in
    ``:trace_ids`` when ``some``, else all of them), each multiplied by ``sign``, with the
    per-trace rules of ``quality._subjects``; built once per variant, as it costs to build."""
    org_id = _ORG
    where = [feedback.c.org_id == org_id]
    if some:
        where.append(in_json_list(feedback.c.trace_id, _TRACE_IDS))
    # Each vote counts for all sources ("*") and for its own.
    votes = union_all(
        *(
            select(
                feedback.c.trace_id,
                feedback.c.call_id,
                feedback.c.score,
                (literal(ALL_SOURCES) if everything else feedback.c.source).label("source"),
            ).where(*where)
            for everything in (True, False)
        )
    ).cte("votes")
    v = votes.c

    def subjects(by_call: bool) -> Any:
        """Votes folded per (source, trace) or, for per-model groups, per (source, subject)."""
        keys = [v.source, v.trace_id]
        columns = []
        source = votes
        if by_call:
            source = votes.outerjoin(
                calls,
                (calls.c.org_id == org_id)
                & (calls.c.trace_id == v.trace_id)
                & (calls.c.call_id == v.call_id),
            )
            keys.append(calls.c.call_id)
            columns = [
                func.max(calls.c.model).label("call_model"),
                func.max(calls.c.cost).label("call_cost"),
            ]
        return (
            select(
                *keys,
                *columns,
                func.count().label("n"),
                func.sum(_flag(v.score == 1)).label("pos"),
                func.sum(_flag(v.score == -1)).label("neg"),
                func.sum(v.score).label("score_sum"),
            )
            .select_from(source)
            .group_by(*keys)
            # A CTE, which both databases compute once for its two readers (the "all" and
            # "prompt" rows); as a subquery SQLite folded the votes twice.
            .cte("per_subject" if by_call else "per_trace")
        )

    def rows(dim: str, s: Any, key1: Any, key2: Any, cost: Any, *, known_only: bool) -> Any:
        on_trace = (traces.c.org_id == org_id) & (traces.c.trace_id == s.c.trace_id)
        known = traces.c.trace_id.is_not(None)
        stmt = select(
            org_id.label("org_id"),
            literal(dim).label("dim"),
            s.c.source,
            key1.label("key1"),
            key2.label("key2"),
            func.coalesce(traces.c.project, NO_PROJECT).label("project"),
            func.coalesce(epoch_seconds(traces.c.started_at) // BUCKET_SECONDS, NO_BUCKET).label(
                "bucket"
            ),
            (sign * s.c.n).label("total"),
            (sign * s.c.pos).label("positive"),
            (sign * s.c.neg).label("negative"),
            (sign * _flag(known)).label("rated"),
            (sign * _flag(known & (s.c.score_sum > 0))).label("positive_traces"),
            (sign * case((known & cost.is_not(None), _nanos(cost)), else_=0)).label("cost_nanos"),
            (sign * _flag(known & cost.is_not(None))).label("costed"),
            (sign * case((known, 0), else_=s.c.n)).label("unknown"),
        )
        if known_only:
            return stmt.select_from(s.join(traces, on_trace))
        return stmt.select_from(s.outerjoin(traces, on_trace))

    per_trace = subjects(by_call=False)
    per_subject = subjects(by_call=True)
    rated_call = per_subject.c.call_id.is_not(None)
    image = union_all(
        rows("all", per_trace, literal(""), literal(NO_VERSION), traces.c.cost, known_only=False),
        rows(
            "prompt",
            per_trace,
            traces.c.prompt_id,
            func.coalesce(traces.c.prompt_version, NO_VERSION),
            traces.c.cost,
            known_only=True,
        ).where(traces.c.prompt_id.is_not(None)),
        rows(
            "model",
            per_subject,
            case((rated_call, per_subject.c.call_model), else_=traces.c.model),
            literal(NO_VERSION),
            case((rated_call, per_subject.c.call_cost), else_=traces.c.cost),
            known_only=True,
        ),
    )
    return Precompiled(insert(_delta).from_select([c.name for c in _delta.c], image))


def _sum(column: Any, *, wide: bool) -> Any:
    """A per-key sum. PostgreSQL sums BIGINT as NUMERIC, several times slower; counts of one
    write's traces fit INTEGER (summed as BIGINT), nanodollars may not."""
    if wide:
        return cast(func.sum(column), BigInteger)
    return func.sum(cast(column, Integer))


@cache
def _apply(dialect: str) -> Precompiled:
    """Net delta per key at every level, upserted; built once (ON CONFLICT costs to build).

    On SQLite each finest row is upserted once per level as it is (``_apply_each``); elsewhere
    the levels cascade: the finest buckets are summed from the delta's rows, each coarser level
    from the one below and the totals from the days, so each sort sees the rows of the level
    below, already folded, rather than every delta row once per level (a rebuild's delta holds
    several rows per voted trace). Keys whose before and after images cancel leave at the
    finest level, before any coarser one sorts them: about 40 % of the finest rows of votes on
    traces already stored. Feedback whose trace is unknown has no time: it is only in the
    totals (bucket -1), which no time window reads.
    """
    folded = _fold(_delta, lambda c: c.dim, lambda c: c.bucket)
    finest = folded.having(_nonzero(_sums(_delta))).cte("finest")
    if dialect == "sqlite":
        return _apply_each(finest)
    parts = [
        select(*_level_columns(finest, finest.c.dim + TEN_MINUTES, finest.c.bucket)).where(
            finest.c.bucket >= 0
        )
    ]
    below, below_width = finest, 1
    for level, width in reversed(LEVELS[:-1]):  # hours from ten minutes, days from hours
        factor = width // below_width
        folded = _fold(
            below, lambda c: c.dim, lambda c, f=factor: c.bucket // f, where=below.c.bucket >= 0
        ).cte(f"level{width}")
        parts.append(
            select(*_level_columns(folded, folded.c.dim + level, folded.c.bucket)).where(
                _nonzero(folded.c)
            )
        )
        below, below_width = folded, width
    untimed = select(finest).where(finest.c.bucket < 0)
    totals = union_all(select(below), untimed).subquery("totals")
    parts.append(
        _fold(
            totals,
            lambda c: c.dim + TOTAL,
            lambda c: case((c.bucket >= 0, 0), else_=NO_BUCKET),
        ).having(_nonzero(_sums(totals)))
    )
    levels = union_all(*parts).subquery("levels")
    keys = [levels.c.org_id, *(levels.c[name] for name in _KEY_COLUMNS)]
    ordered = select(levels).order_by(*keys)
    return _added_to_rollups(dialect, ordered)


def _apply_each(finest: Any) -> Precompiled:
    """SQLite: every finest row upserted at each level, unsorted and unsummed. SQLite's upsert
    takes the rows of one INSERT one after the other, so rows of the same key add up (where
    PostgreSQL refuses to touch a row twice in one statement); sorting each level's rows, which
    cost SQLite several microseconds a row, is then not needed. The apply of 32 votes on stored
    traces (487 delta rows, 100k data) 17.9 -> 13.1 ms, of 1,000 such votes 326 -> 231 ms
    (medians, alternating in one transaction, the same sums); a rebuild of 100k traces' roll-ups
    (737,777 delta rows) 6.9-8.2 s either way. A coarse key whose rows cancel keeps a row of
    zeros, as a group whose votes all moved away always has."""
    levels = union_all(
        *(
            select(literal(level).label("level"), literal(width).label("width"))
            for level, width in LEVELS
        ),
        select(literal(TOTAL).label("level"), literal(None, Integer).label("width")),
    ).cte("levels")
    total = levels.c.width.is_(None)
    bucket = case(
        (total, case((finest.c.bucket >= 0, 0), else_=NO_BUCKET)),
        else_=finest.c.bucket // levels.c.width,
    )
    rows = (
        select(*_level_columns(finest, finest.c.dim + levels.c.level, bucket))
        .select_from(finest.join(levels, or_(total, finest.c.bucket >= 0)))
        .where(true())  # SQLite's grammar: an upsert's SELECT needs a WHERE after its join
    )
    return _added_to_rollups("sqlite", rows)


def _added_to_rollups(dialect: str, rows: Any) -> Precompiled:
    """``rows`` (keys and counts) added to the roll-ups, new keys inserted."""
    stmt = insert_for(dialect, rollups).from_select(["org_id", *_KEY_COLUMNS, *COUNT_FIELDS], rows)
    return Precompiled(
        stmt.on_conflict_do_update(
            index_elements=[rollups.c.org_id, *(rollups.c[k] for k in _KEY_COLUMNS)],
            set_={name: rollups.c[name] + stmt.excluded[name] for name in COUNT_FIELDS},
        )
    )


def _level_columns(rows: Any, dim: Any, bucket: Any, counts: Any = None) -> list[Any]:
    values = counts if counts is not None else {name: rows.c[name] for name in COUNT_FIELDS}
    return [
        *(key.label(name) for name, key in _keys(rows, dim, bucket).items()),
        *(value.label(name) for name, value in values.items()),
    ]


def _keys(rows: Any, dim: Any, bucket: Any) -> dict[str, Any]:
    """The key of ``rows`` with its dimension and bucket replaced, in ``_KEY_COLUMNS`` order."""
    replaced = {"dim": dim, "bucket": bucket}
    return {"org_id": rows.c.org_id} | {k: replaced.get(k, rows.c[k]) for k in _KEY_COLUMNS}


def _sums(rows: Any) -> dict[str, Any]:
    return {name: _sum(rows.c[name], wide=name == "cost_nanos") for name in COUNT_FIELDS}


def _nonzero(counts: Any) -> Any:
    values = counts.values() if isinstance(counts, dict) else (counts[n] for n in COUNT_FIELDS)
    return or_(*(value != 0 for value in values))


def _fold(rows: Any, dim: Any, bucket: Any, *, where: Any = None) -> Any:
    """``rows`` summed per key, its dimension and bucket mapped to another level's."""
    dim_value, bucket_value = dim(rows.c), bucket(rows.c)
    stmt = select(*_level_columns(rows, dim_value, bucket_value, _sums(rows)))
    if where is not None:
        stmt = stmt.where(where)
    return stmt.group_by(*_keys(rows, dim_value, bucket_value).values())


_TRACES_OF_FEEDBACK = select(feedback.c.trace_id).where(
    feedback.c.org_id == _ORG,
    in_json_list(feedback.c.id, bindparam("feedback_ids", type_=Text)),  # a JSON array
)
_HAS_ROWS = select(
    or_(exists().where(traces.c.org_id == _ORG), exists().where(feedback.c.org_id == _ORG))
)
_CLEAR_DELTA = Precompiled(_delta.delete())
_IDS_PER_IMAGE = 10_000
APPLY_EVERY = 200_000  # delta rows (about 17 per voted trace) before it is applied, by default


class Maintenance:
    """The roll-up bookkeeping of one transaction's writes, which may come in several steps.

    ``retract`` takes the contribution of each trace a step is about to touch, once per trace
    however many steps touch it; ``finish`` adds back the final contributions of all of them and
    upserts the net. A bulk import thus pays once per trace, not once per chunk, and nothing at
    all for an organisation ``begin_new`` found without rows. A trace found without votes by a
    step that adds none (trace events) has no contribution after it either, so unless a later
    step may add votes to it, ``finish`` leaves it out: most trace events then cost no after
    image and no apply.
    """

    def __init__(self, conn: AsyncConnection, *, apply_every: int | None = APPLY_EVERY) -> None:
        self.conn = conn
        self._touched: dict[str, set[str]] = {}
        self._voteless: dict[str, set[str]] = {}  # touched, without votes before or since
        self._new: set[str] = set()  # orgs without rows before the write: imaged whole at the end
        self._apply_every = apply_every
        self._in_delta = 0  # rows in the delta table, not yet applied
        self._delta_ready = False

    async def begin_new(self, org_id: str) -> bool:
        """Before the first write of an organisation's rows: whether it has none yet (asked under
        its lock). Then it has no contribution to retract, so ``retract`` skips it (nor does it
        read the organisation's feedback by trace, so the write may do without the indexes that
        serves), and ``finish`` images all its traces in one statement instead of by id lists.
        """
        await lock(self.conn, org_id)
        self._touched[org_id] = set()  # locked: retract need not lock it again
        if (await self.conn.execute(_HAS_ROWS, {"org_id": org_id})).scalar_one():
            return False
        self._new.add(org_id)
        return True

    async def retract(
        self,
        *,
        traces_of: Iterable[tuple[str, str]] = (),
        feedback_of: Iterable[tuple[str, str]] = (),
        adds_votes: bool = True,
    ) -> None:
        """Before a write: (org, trace id) pairs it touches, and (org, feedback id) pairs whose
        current trace it may move votes away from; ``adds_votes`` false for a write that adds,
        moves or changes no feedback.

        One write may hold several organisations' rows (a group commit); orgs are locked in
        order, so two writers never wait on each other's locks in opposite orders.
        """
        conn = self.conn
        trace_ids: dict[str, set[str]] = defaultdict(set)
        feedback_ids: dict[str, set[str]] = defaultdict(set)
        for org_id, trace_id in traces_of:
            trace_ids[org_id].add(trace_id)
        for org_id, feedback_id in feedback_of:
            feedback_ids[org_id].add(feedback_id)
        for org_id in sorted((trace_ids.keys() | feedback_ids.keys()) - self._new):
            touched = self._touched.get(org_id)
            if touched is None:
                touched = self._touched[org_id] = set()
                await lock(conn, org_id)
            ids = trace_ids[org_id]
            if feedback_ids[org_id]:
                found = await conn.execute(
                    _TRACES_OF_FEEDBACK,
                    {"org_id": org_id, "feedback_ids": json_array(feedback_ids[org_id])},
                )
                ids.update(found.scalars())
            voteless = self._voteless.setdefault(org_id, set())
            if adds_votes:
                voteless -= ids
            ids -= touched
            if ids:
                touched |= ids
                without_votes = await self._record(-1, org_id, sorted(ids))
                if not adds_votes:
                    voteless.update(without_votes)

    async def finish(self) -> None:
        """After the last write: the touched traces' new contributions, and the net upserted."""
        for org_id, touched in self._touched.items():
            ids = touched - self._voteless.get(org_id, set())
            if ids:
                await self._record(1, org_id, sorted(ids))
        for org_id in self._new:
            await self._record(1, org_id, None)
        await self._flush()
        self._touched.clear()
        self._voteless.clear()
        self._new.clear()

    async def _record(self, sign: int, org_id: str, trace_ids: list[str] | None) -> list[str]:
        """Images of the org's traces in ``trace_ids``, or of all of them; returns ids of
        ``trace_ids`` known to have no votes (an image adds a row per voted trace, so a part
        that added none had none)."""
        if not self._delta_ready:
            await self.conn.exec_driver_sql(_create_delta(self.conn.dialect.name))
            self._delta_ready = True
        if trace_ids is None:
            await self._recorded(await _record(sign, False).run(self.conn, {"org_id": org_id}))
            return []
        without_votes = []
        # Bounded lists: PostgreSQL matches ids against the whole array for each row it reads.
        for start in range(0, len(trace_ids), _IDS_PER_IMAGE):
            chunk = trace_ids[start : start + _IDS_PER_IMAGE]
            recorded = await _record(sign, True).run(
                self.conn, {"org_id": org_id, "trace_ids": json_array(chunk)}
            )
            if not await self._recorded(recorded):
                without_votes += chunk
        return without_votes

    async def _recorded(self, recorded: Any) -> int:
        """Counts the rows an image added; returns their number. A driver that cannot count
        (-1) is taken to have added some, so their traces are never taken for voteless."""
        added = recorded.rowcount if recorded.rowcount >= 0 else 1
        self._in_delta += added
        if self._apply_every is not None and self._in_delta >= self._apply_every:
            await self._flush()
        return added

    async def _flush(self) -> None:
        """Upsert the delta so far and empty it. Sums commute, so applying the before images
        and the after images in several parts ends in the same roll-ups as applying them at
        once; every ``apply_every`` rows, the parts keep the delta table (and the apply's sort)
        to a bounded size, which lets a connection hold its temporary tables in memory.
        Without a bound, the coarser levels are upserted once instead of once per part."""
        if self._in_delta:
            await _apply(self.conn.dialect.name).run(self.conn)
            await _CLEAR_DELTA.run(self.conn)
            self._in_delta = 0


@asynccontextmanager
async def maintained(
    conn: AsyncConnection,
    *,
    traces_of: Iterable[tuple[str, str]] = (),
    feedback_of: Iterable[tuple[str, str]] = (),
    adds_votes: bool = True,
) -> AsyncIterator[None]:
    """Keep roll-ups current across the write in the block (see ``Maintenance.retract``)."""
    maintenance = Maintenance(conn)
    await maintenance.retract(traces_of=traces_of, feedback_of=feedback_of, adds_votes=adds_votes)
    yield
    await maintenance.finish()


async def lock(conn: AsyncConnection, org_id: str) -> None:
    """Make the transaction the organisation's only roll-up writer until it ends: before and
    after images stay consistent only if nobody else writes the org's rows between them. SQLite
    has one writer anyway; on PostgreSQL a transaction-scoped advisory lock per org."""
    if conn.dialect.name == "postgresql":
        await conn.execute(select(_advisory_lock(org_id)))


def _advisory_lock(org_id: str) -> Any:
    return func.pg_advisory_xact_lock(func.hashtextextended(f"agentcost-rollups:{org_id}", 0))


def rebuild(conn: Connection, org_id: str | None = None) -> None:
    """Recompute every roll-up from the rows (a migration's backfill, and the tests' oracle)."""
    delete = rollups.delete()
    if org_id is not None:
        delete = delete.where(rollups.c.org_id == org_id)
    conn.execute(delete)
    conn.exec_driver_sql(_create_delta(conn.dialect.name))
    orgs_stmt = select(feedback.c.org_id).distinct()
    if org_id is not None:
        orgs_stmt = orgs_stmt.where(feedback.c.org_id == org_id)
    for org in conn.execute(orgs_stmt).scalars().all():
        conn.exec_driver_sql(*_record(1, False).bound(conn.dialect, {"org_id": org}))
    conn.exec_driver_sql(*_apply(conn.dialect.name).bound(conn.dialect, {}))
    conn.exec_driver_sql(*_CLEAR_DELTA.bound(conn.dialect, {}))
