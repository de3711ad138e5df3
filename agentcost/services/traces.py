"""Trace ingestion (AgentCost events, one per LLM call) and trace reads.

Each event becomes a Call row; its trace's roll-ups (cost, tokens, primary model, ...) are updated
in the same transaction by one atomic upsert, so concurrent events of one trace never lose an
update. An event with a ``call_id`` already stored is a client retry and changes nothing.
"""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache, lru_cache
from typing import Any

from sqlalchemy import Integer, Text, and_, bindparam, case, exists, func, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from agentcost import pricing
from agentcost.db import Database
from agentcost.errors import InvalidInput, NotFound
from agentcost.models import (
    CallPublic,
    IngestResult,
    TraceEvent,
    TracePublic,
    utcnow,
)
from agentcost.services import cursors, rollups
from agentcost.services.filters import (
    UNVOTED,
    VOTED,
    ScoreFilter,
    TraceFilter,
    TraceOrder,
    score_conditions,
    trace_conditions,
)
from agentcost.services.ids import time_ordered_uuids
from agentcost.services.sql import (
    LISTING_SHAPES,
    BulkInsert,
    Precompiled,
    calls,
    feedback,
    in_json_pairs,
    json_array,
    json_merge,
    of_traces,
    trace_params,
    traces,
)

_TRACE_CURSOR = "trace"
_COST_CURSOR = "trace-cost"


@dataclass(slots=True)
class _CallRow:
    values: dict[str, Any]
    named: bool  # the client gave its call id: only such a call can be stored already

    @property
    def key(self) -> tuple[str, str]:
        return self.values["trace_id"], self.values["call_id"]


def _call_row(org_id: str, event: TraceEvent, made_id: str | None, now: datetime) -> _CallRow:
    cost, computed = event.cost, False
    if cost is None:
        cost = pricing.compute_cost(
            event.model, event.provider, event.input_tokens, event.output_tokens
        )
        computed = cost is not None
    failed = event.status.lower() not in ("success", "ok") or event.error is not None
    return _CallRow(
        {
            "org_id": org_id,
            "trace_id": event.trace_id,
            "call_id": event.call_id or made_id,
            "model": event.model,
            "provider": event.provider,
            "input_tokens": event.input_tokens,
            "output_tokens": event.output_tokens,
            "cost": cost,
            "cost_computed": computed,
            "latency_ms": event.latency_ms,
            "status": "error" if failed else "success",
            "error": event.error,
            "agent_id": event.agent_id,
            "session_id": event.session_id,
            "metadata": event.metadata or {},
            "timestamp": event.timestamp or now,
            # Trace-level attributes travel with the call until the roll-up takes them.
            "_project": event.project,
            "_name": event.name,
            "_user_id": event.user_id,
            "_prompt_id": event.prompt_id,
            "_prompt_version": event.prompt_version,
        },
        named=event.call_id is not None,
    )


def _rollup(org_id: str, rows: Sequence[_CallRow], now: datetime) -> dict[str, Any]:
    """One trace's delta from its new calls, in the shape of a traces row."""
    ordered = sorted((r.values for r in rows), key=lambda v: v["timestamp"])
    known = [v["cost"] for v in ordered if v["cost"] is not None]
    # Costliest call wins; on a tie the earliest, so the answer does not depend on arrival order.
    primary = max(ordered, key=lambda v: (_rank(v["cost"]), -v["timestamp"].timestamp()))

    def first(field: str) -> Any:
        return next((v[field] for v in ordered if v[field] is not None), None)

    metadata: dict[str, Any] = {}
    for v in ordered:
        metadata.update(v["metadata"])
    return {
        "org_id": org_id,
        "trace_id": ordered[0]["trace_id"],
        "project": first("_project"),
        "name": first("_name"),
        "session_id": first("session_id"),
        "agent_id": first("agent_id"),
        "user_id": first("_user_id"),
        "prompt_id": first("_prompt_id"),
        "prompt_version": first("_prompt_version"),
        "metadata": metadata,
        "started_at": ordered[0]["timestamp"],
        "ended_at": ordered[-1]["timestamp"],
        "model": primary["model"],
        "provider": primary["provider"],
        "primary_cost": primary["cost"],
        "primary_at": primary["timestamp"],
        "cost": sum(known) if known else None,
        "cost_computed": any(v["cost_computed"] for v in ordered),
        "unpriced_calls": len(ordered) - len(known),
        "input_tokens": sum(v["input_tokens"] for v in ordered),
        "output_tokens": sum(v["output_tokens"] for v in ordered),
        "latency_ms": sum(v["latency_ms"] or 0.0 for v in ordered),
        "call_count": len(ordered),
        "error_count": sum(v["status"] == "error" for v in ordered),
        "created_at": now,
        "updated_at": now,
    }


def _rank(cost: float | None) -> float:
    return -1.0 if cost is None else cost


@cache
def _trace_upsert(dialect: str) -> BulkInsert:
    """Built once per dialect: building its CASE clauses costs more than running it."""
    return BulkInsert(dialect, traces, _on_trace_conflict)


def _on_trace_conflict(stmt: Any) -> Any:
    new, old = stmt.excluded, traces.c

    def keep_first(name: str) -> Any:
        return func.coalesce(old[name], new[name])

    def add(name: str) -> Any:
        return old[name] + new[name]

    # Costliest call first, the earlier one on a tie: the same answer in any arrival order.
    new_rank = func.coalesce(new.primary_cost, -1.0)
    old_rank = func.coalesce(old.primary_cost, -1.0)
    newer_primary = or_(
        new_rank > old_rank,
        and_(new_rank == old_rank, new.primary_at < func.coalesce(old.primary_at, new.primary_at)),
    )
    return stmt.on_conflict_do_update(
        index_elements=[old.org_id, old.trace_id],
        set_={
            **{n: keep_first(n) for n in ("name", "session_id", "agent_id", "user_id")},
            "prompt_id": keep_first("prompt_id"),
            "prompt_version": keep_first("prompt_version"),
            "metadata": json_merge(old.metadata, new.metadata),
            "started_at": case(
                (new.started_at < old.started_at, new.started_at), else_=old.started_at
            ),
            "ended_at": case((new.ended_at > old.ended_at, new.ended_at), else_=old.ended_at),
            "model": case((newer_primary, new.model), else_=old.model),
            "provider": case((newer_primary, new.provider), else_=old.provider),
            "primary_cost": case((newer_primary, new.primary_cost), else_=old.primary_cost),
            "primary_at": case((newer_primary, new.primary_at), else_=old.primary_at),
            "cost": case(
                (old.cost.is_(None), new.cost),
                (new.cost.is_(None), old.cost),
                else_=old.cost + new.cost,
            ),
            "cost_computed": or_(old.cost_computed, new.cost_computed),
            **{
                n: add(n)
                for n in (
                    "unpriced_calls",
                    "input_tokens",
                    "output_tokens",
                    "latency_ms",
                    "call_count",
                    "error_count",
                )
            },
            "updated_at": new.updated_at,
        },
    )


@cache
def _call_insert(dialect: str) -> BulkInsert:
    """A plain INSERT: ``write`` leaves out the calls stored already, and a call that got in
    meanwhile would fail the write rather than be counted twice in its trace."""
    return BulkInsert(dialect, calls, lambda stmt: stmt)


# The calls ``:keys`` (a JSON array of [trace id, call id]) of ``:org_id``.
_OF_CALL_KEYS = (
    calls.c.org_id == bindparam("org_id"),
    in_json_pairs(calls.c.trace_id, calls.c.call_id, bindparam("keys", type_=Text)),
)
_STORED_CALLS = select(calls.c.trace_id, calls.c.call_id).where(*_OF_CALL_KEYS)
_CALLS_BY_KEY = Precompiled(select(calls).where(*_OF_CALL_KEYS))


@dataclass(slots=True)
class Ingestion:
    """One ingest call's events (or one chunk of an import's), keyed by call."""

    org_id: str
    now: datetime
    rows: dict[tuple[str, str], _CallRow]


async def ingest(db: Database, *, org_id: str, events: Sequence[TraceEvent]) -> IngestResult:
    """Store the events all-or-nothing; the answer comes after the commit."""
    if not events:
        raise InvalidInput.single("events", "must hold at least one event")
    ingestion = prepare(org_id, events, utcnow())
    accepted = await db.write_grouped(store, ingestion, rows=len(ingestion.rows))
    return IngestResult(
        accepted=accepted,
        duplicates=len(events) - accepted,
        trace_ids=list(dict.fromkeys(key[0] for key in ingestion.rows)),
        call_ids=[key[1] for key in ingestion.rows],
    )


def prepare(org_id: str, events: Sequence[TraceEvent], now: datetime) -> Ingestion:
    """The call rows to store, priced; call ids the client left out are made here."""
    rows: dict[tuple[str, str], _CallRow] = {}
    fresh = iter(time_ordered_uuids(sum(event.call_id is None for event in events)))
    for event in events:
        made = None if event.call_id else next(fresh).replace("-", "")
        row = _call_row(org_id, event, made, now)
        rows.setdefault(row.key, row)  # the same call twice in one batch is one call
    return Ingestion(org_id, now, rows)


async def store(conn: AsyncConnection, ingestions: Sequence[Ingestion]) -> list[int]:
    """Store several ingest calls' calls (a group commit), roll-ups kept current."""
    async with rollups.maintained(conn, traces_of=touches(ingestions), adds_votes=False):
        return await write(conn, ingestions)


def touches(ingestions: Sequence[Ingestion]) -> list[tuple[str, str]]:
    """The (org, trace) pairs whose roll-ups the ingestions' writes may change."""
    return [(i.org_id, trace_id) for i in ingestions for trace_id, _ in i.rows]


async def write(conn: AsyncConnection, ingestions: Sequence[Ingestion]) -> list[int]:
    """Insert the calls of several ingestions and roll each trace up once; each ingestion gets
    the number of its calls that were new. The caller keeps the quality roll-ups current, which
    also makes it the only writer of the organisation's calls meanwhile (SQLite has one writer;
    on PostgreSQL the roll-up lock), so the calls found stored stay the only ones.

    A call sent by two ingestions belongs to the earlier one, as if they had arrived one after
    the other; the later one counts it as a duplicate.
    """
    stored = await _stored(conn, ingestions)
    new: dict[tuple[str, str, str], int] = {}  # each new call's ingestion
    for index, ingestion in enumerate(ingestions):
        for key in ingestion.rows:
            full_key = (ingestion.org_id, *key)
            if full_key not in stored:
                new.setdefault(full_key, index)
    accepted = [0] * len(ingestions)
    by_trace: dict[tuple[str, str], list[_CallRow]] = defaultdict(list)
    latest: dict[tuple[str, str], datetime] = {}
    for index, ingestion in enumerate(ingestions):
        for key, row in ingestion.rows.items():
            if new.get((ingestion.org_id, *key)) == index:
                accepted[index] += 1
                by_trace[ingestion.org_id, key[0]].append(row)
                latest[ingestion.org_id, key[0]] = ingestion.now
    dialect = conn.dialect.name
    await _call_insert(dialect).run(conn, (r.values for rows in by_trace.values() for r in rows))
    await _trace_upsert(dialect).run(
        conn,
        (
            _rollup(org_id, rows, latest[org_id, trace_id])
            for (org_id, trace_id), rows in by_trace.items()
        ),
    )
    return accepted


async def _stored(conn: AsyncConnection, ingestions: Sequence[Ingestion]) -> set[tuple[str, ...]]:
    """The (org, trace, call) keys of the ingestions' calls stored already: only calls whose id
    the client gave can be; the ids made here are new."""
    named: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for ingestion in ingestions:
        named[ingestion.org_id].update(key for key, row in ingestion.rows.items() if row.named)
    stored: set[tuple[str, ...]] = set()
    for org_id, keys in named.items():
        if keys:
            params = {"org_id": org_id, "keys": json_array(keys)}
            found = await conn.execute(_STORED_CALLS, params)
            stored.update((org_id, trace_id, call_id) for trace_id, call_id in found)
    return stored


_TRACES_BY_ID = Precompiled(select(traces).where(*of_traces(traces)))
_PROJECTS = Precompiled(select(traces.c.trace_id, traces.c.project).where(*of_traces(traces)))
_CALLS_OF_TRACES = Precompiled(
    select(calls)
    .where(*of_traces(calls))
    .order_by(calls.c.trace_id, calls.c.timestamp, calls.c.call_id)
)


async def get_trace(db: Database, *, org_id: str, trace_id: str) -> TracePublic:
    found = await get_traces(db, org_id=org_id, trace_ids=[trace_id])
    if trace_id not in found:
        raise NotFound("trace", trace_id)
    return found[trace_id]


async def get_traces(
    db: Database, *, org_id: str, trace_ids: Sequence[str]
) -> dict[str, TracePublic]:
    """Traces by id in one statement (for pages and DataLoaders); unknown ids are absent."""
    if not trace_ids:
        return {}
    rows = await _TRACES_BY_ID.rows(db, trace_params(org_id, trace_ids))
    return {row["trace_id"]: trace_public(row) for row in rows}


async def list_traces(
    db: Database,
    *,
    org_id: str,
    filters: TraceFilter,
    limit: int,
    cursor: str | None = None,
    scores: ScoreFilter | None = None,
    order: TraceOrder = TraceOrder.TIME,
) -> tuple[list[TracePublic], str | None]:
    """Newest (or costliest) first; the second value is the next page's cursor, None at the end.

    ``scores`` narrows by the traces' votes. A cursor belongs to one order: one issued for the
    other order is an input error rather than a silently wrong page.
    """
    values = filters.model_dump(include=_FILTER_FIELDS, exclude_none=True)
    markers: set[str] = set()
    if scores is not None:
        values |= scores.model_dump(include={"min_score", "max_score"}, exclude_none=True)
        if scores.has_feedback is not None:
            markers.add(VOTED if scores.has_feedback else UNVOTED)
    if cursor is not None:
        values |= _after(cursor, order)
        if order is TraceOrder.COST and "after_cost" not in values:
            markers.add(_AFTER_UNKNOWN_COST)
    listing = _listing(frozenset(values.keys() | markers), order)
    rows = await listing.rows(db, values | {"org_id": org_id, "limit": limit + 1})
    page = [trace_public(r) for r in rows[:limit]]
    next_cursor = trace_cursor(page[-1], order) if len(rows) > limit else None
    return page, next_cursor


# TraceFilter's own fields: an adapter's subclass (REST's query adds limit and cursor) would
# otherwise make another shape of the same statement, or bind a value by a name it uses.
_FILTER_FIELDS = set(TraceFilter.model_fields)
_AFTER_UNKNOWN_COST = "after_unknown_cost"  # a cost cursor at a trace of unknown cost


def _after(cursor: str, order: TraceOrder) -> dict[str, Any]:
    """The keyset values of a cursor, named as ``_listing`` binds them."""
    if order is TraceOrder.COST:
        cost, trace_id = cursors.decode(_COST_CURSOR, cursor, sort_type=float)
        return (
            {"after_id": trace_id} if cost is None else {"after_cost": cost, "after_id": trace_id}
        )
    started, trace_id = cursors.decode(_TRACE_CURSOR, cursor, sort_type=datetime)
    return {"after_started": started, "after_id": trace_id}


@lru_cache(maxsize=LISTING_SHAPES)
def _listing(given: frozenset[str], order: TraceOrder) -> Precompiled:
    """The listing's statement for one set of given filters, cursor values and markers, built
    once and read without the engine, as the feedback listing's (``feedback._listing``); kept
    for the ``LISTING_SHAPES`` sets used last, so a caller cycling through the few thousand
    possible sets cannot grow the process."""
    stmt = select(traces).where(
        traces.c.org_id == bindparam("org_id"), *trace_conditions(given), *score_conditions(given)
    )
    # Typed: a bound value in a tuple comparison gets no type from its column.
    after_id = bindparam("after_id", type_=traces.c.trace_id.type)
    if order is TraceOrder.COST:
        cost = traces.c.cost
        if _AFTER_UNKNOWN_COST in given:
            stmt = stmt.where(cost.is_(None), traces.c.trace_id < after_id)
        elif "after_cost" in given:
            after_cost = bindparam("after_cost", type_=cost.type)
            stmt = stmt.where(
                or_(
                    cost < after_cost,
                    and_(cost == after_cost, traces.c.trace_id < after_id),
                    cost.is_(None),
                )
            )
        stmt = stmt.order_by(cost.desc().nulls_last(), traces.c.trace_id.desc())
    else:
        if "after_started" in given:
            after_started = bindparam("after_started", type_=traces.c.started_at.type)
            stmt = stmt.where(
                tuple_(traces.c.started_at, traces.c.trace_id) < tuple_(after_started, after_id)
            )
        stmt = stmt.order_by(traces.c.started_at.desc(), traces.c.trace_id.desc())
    return Precompiled(stmt.limit(bindparam("limit", type_=Integer)))


def trace_cursor(trace: TracePublic, order: TraceOrder = TraceOrder.TIME) -> str:
    """The cursor that continues a listing in ``order`` after this trace (GraphQL edges)."""
    if order is TraceOrder.COST:
        return cursors.encode(_COST_CURSOR, trace.cost, trace.trace_id)
    return cursors.encode(_TRACE_CURSOR, trace.started_at, trace.trace_id)


async def get_calls(
    db: Database, *, org_id: str, trace_ids: Sequence[str]
) -> dict[str, list[CallPublic]]:
    """Calls of many traces in one statement, each trace's in time order."""
    result: dict[str, list[CallPublic]] = {t: [] for t in trace_ids}
    if not trace_ids:
        return result
    for row in await _CALLS_OF_TRACES.rows(db, trace_params(org_id, trace_ids)):
        result[row["trace_id"]].append(CallPublic.model_validate(row))
    return result


async def get_calls_by_ids(
    db: Database, *, org_id: str, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], CallPublic]:
    """Calls by (trace_id, call_id) in one statement (for node lookups); unknown keys are absent."""
    if not keys:
        return {}
    rows = await _CALLS_BY_KEY.rows(db, {"org_id": org_id, "keys": json_array(keys)})
    return {(row["trace_id"], row["call_id"]): CallPublic.model_validate(row) for row in rows}


def trace_public(row: dict[str, Any]) -> TracePublic:
    """From a row's own dict (``records``), which takes the status in place of a copy."""
    row["status"] = "error" if row["error_count"] else "success"
    return TracePublic.model_validate(row)


async def ensure_trace_known(db: Database, *, org_id: str, trace_id: str) -> None:
    """NotFound unless the trace was ingested or has feedback waiting for it."""
    seen = or_(
        exists().where(traces.c.org_id == org_id, traces.c.trace_id == trace_id),
        exists().where(feedback.c.org_id == org_id, feedback.c.trace_id == trace_id),
    )
    async with db.read() as conn:
        if not (await conn.execute(select(seen))).scalar():
            raise NotFound("trace", trace_id)


async def projects_of(db: Database, *, org_id: str, trace_ids: Sequence[str]) -> dict[str, str]:
    """The project of each ingested trace among the ids; ids not ingested are absent."""
    rows = await _PROJECTS.rows(db, trace_params(org_id, trace_ids))
    return {row["trace_id"]: row["project"] for row in rows}
