"""Feedback: submit (idempotent by client id), read, list, change and delete.

Feedback may arrive before its trace: it is stored as sent and joins the trace at read time.
"""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache, lru_cache
from typing import Any

from sqlalchemy import Integer, Text, bindparam, delete, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from agentcost.db import Database
from agentcost.errors import FieldError, InvalidInput, NotFound
from agentcost.models import (
    FeedbackCreate,
    FeedbackImport,
    FeedbackPublic,
    FeedbackUpdate,
    utcnow,
)
from agentcost.services import cursors, rollups
from agentcost.services import traces as traces_service
from agentcost.services.attribution import attributed_model, join_attribution
from agentcost.services.filters import FeedbackFilter, feedback_attribute_conditions
from agentcost.services.ids import time_ordered_uuids
from agentcost.services.sql import (
    LISTING_SHAPES,
    BulkInsert,
    Precompiled,
    feedback,
    in_json_list,
    json_array,
    of_traces,
    param,
    records,
    trace_params,
    traces,
)

_FEEDBACK_CURSOR = "feedback"
_REPLACED = ("trace_id", "call_id", "score", "comment", "source", "user_id", "tags", "metadata")


@dataclass(slots=True)
class Submission:
    """One submit call's rows (or one chunk of an import's), as ``write`` stores them."""

    org_id: str
    rows: list[dict[str, Any]]
    named: list[str]  # the ids the client sent: only these can replace stored feedback
    # Ids whose row carries a date the client gave (imports only): replacing a stored vote
    # replaces its date too, where otherwise a replaced vote keeps the date it was first given.
    dated: frozenset[str] = frozenset()


def prepare(org_id: str, items: Sequence[FeedbackCreate], now: datetime) -> Submission:
    """The rows to store; feedback ids the client left out are made here."""
    fresh = iter(time_ordered_uuids(sum(item.id is None for item in items)))
    rows = [_row(org_id, item, item.id or next(fresh), now) for item in items]
    dated = frozenset(
        item.id
        for item in items
        if isinstance(item, FeedbackImport) and item.created_at is not None and item.id
    )
    return Submission(org_id, rows, [item.id for item in items if item.id is not None], dated)


def _row(org_id: str, item: FeedbackCreate, feedback_id: str, now: datetime) -> dict[str, Any]:
    # Only an import may date its feedback; a submission is dated by the server's clock.
    created_at = item.created_at if isinstance(item, FeedbackImport) else None
    return {
        "org_id": org_id,
        "id": feedback_id,
        "trace_id": item.trace_id,
        "call_id": item.call_id,
        "score": item.score,
        "comment": item.comment,
        "source": item.source.value,
        "user_id": item.user_id,
        "tags": item.tags or [],
        "metadata": item.metadata or {},
        "created_at": created_at or now,
        "updated_at": now,
    }


async def submit(
    db: Database, *, org_id: str, items: Sequence[FeedbackCreate]
) -> list[tuple[FeedbackPublic, bool]]:
    """Store all items or none; each comes back with True when new, False when it replaced one.

    A known ``id`` replaces that feedback (its ``created_at`` stays), so a client retrying a
    submission never adds a second vote.
    """
    if not items:
        raise InvalidInput.single("items", "must hold at least one feedback item")
    _reject_repeated_ids(items)
    now = utcnow()
    submission = prepare(org_id, items, now)
    stored = await db.write_grouped(store, submission, rows=len(submission.rows))
    # created_at is only ever set on insert, so it equals this call's clock exactly when new.
    return [
        (_public(row, created_at), created_at == now)
        for row, created_at in zip(submission.rows, stored, strict=True)
    ]


@cache
def _upsert(dialect: str, *, dated: bool) -> BulkInsert:
    """Built once per dialect and kind: building ON CONFLICT clauses costs more than running
    them. ``dated`` rows replace the stored date as well."""
    replaced = (*_REPLACED, "updated_at", *(("created_at",) if dated else ()))
    return BulkInsert(
        dialect,
        feedback,
        lambda stmt: stmt.on_conflict_do_update(
            index_elements=[feedback.c.org_id, feedback.c.id],
            set_={name: stmt.excluded[name] for name in replaced},
        ),
    )


# The feedback ``:ids`` (a JSON array) of ``:org_id``.
_OF_IDS = (
    feedback.c.org_id == bindparam("org_id"),
    in_json_list(feedback.c.id, bindparam("ids", type_=Text)),
)
_STORED_DATES = select(feedback.c.id, feedback.c.created_at).where(*_OF_IDS)
_BY_IDS = Precompiled(select(feedback).where(*_OF_IDS))


async def store(conn: AsyncConnection, submissions: Sequence[Submission]) -> list[Any]:
    """Upsert the rows of several submissions (a group commit), roll-ups kept current."""
    async with rollups.maintained(conn, **touches(submissions)):
        return await write(conn, submissions)


def touches(submissions: Sequence[Submission]) -> dict[str, list[tuple[str, str]]]:
    """What the submissions' writes may change, in ``rollups.Maintenance.retract``'s terms."""
    return {
        "traces_of": [(s.org_id, row["trace_id"]) for s in submissions for row in s.rows],
        # Ids made here are new: only the client's own can move a stored vote elsewhere.
        "feedback_of": [(s.org_id, feedback_id) for s in submissions for feedback_id in s.named],
    }


async def write(conn: AsyncConnection, submissions: Sequence[Submission]) -> list[Any]:
    """Upsert the rows of several submissions; each gets its rows' stored created_at. The
    caller keeps the roll-ups current (``touches`` says what to retract), which also makes it
    the only writer of the organisation's feedback meanwhile (SQLite has one writer; on
    PostgreSQL the roll-up lock), so the dates read first are still those stored.

    A multi-row upsert may not touch one row twice (PostgreSQL refuses), so an id sent by two
    submissions of the group goes in a later statement: the later submission replaces the
    earlier one, as when they arrive one after the other.
    """
    created_at = await _stored_dates(conn, submissions)
    rounds: list[list[dict[str, Any]]] = []
    seen: dict[tuple[str, str], int] = {}
    dated: set[int] = set()
    created: dict[int, datetime] = {}
    for submission in submissions:
        for row in submission.rows:
            key = (submission.org_id, row["id"])
            index = seen[key] = seen.get(key, -1) + 1
            if index == len(rounds):
                rounds.append([])
            rounds[index].append(row)
            # A replaced vote keeps the date it was first given, unless this row brings one.
            if row["id"] in submission.dated:
                dated.add(id(row))
                created_at[key] = row["created_at"]
            else:
                created_at.setdefault(key, row["created_at"])
            created[id(row)] = created_at[key]
    for batch in rounds:
        for kind in (False, True):
            await _upsert(conn.dialect.name, dated=kind).run(
                conn, (row for row in batch if (id(row) in dated) is kind)
            )
    return [[created[id(row)] for row in s.rows] for s in submissions]


async def _stored_dates(
    conn: AsyncConnection, submissions: Sequence[Submission]
) -> dict[tuple[str, str], datetime]:
    """(org, id) -> created_at of the submissions' feedback stored already: only ids the
    client gave can be; the ids made here are new."""
    named: dict[str, set[str]] = defaultdict(set)
    for submission in submissions:
        named[submission.org_id].update(submission.named)
    stored = {}
    for org_id, ids in named.items():
        if ids:
            params = {"org_id": org_id, "ids": json_array(ids)}
            for feedback_id, created_at in await conn.execute(_STORED_DATES, params):
                stored[org_id, feedback_id] = created_at
    return stored


def _public(row: dict[str, Any], created_at: datetime) -> FeedbackPublic:
    """The stored item, from the values just written: a submission replaces every field."""
    return FeedbackPublic.model_validate({**row, "created_at": created_at})


def _reject_repeated_ids(items: Sequence[FeedbackCreate]) -> None:
    first_seen: dict[str, int] = {}
    errors = []
    for index, item in enumerate(items):
        if item.id is None:
            continue
        if item.id in first_seen:
            errors.append(
                FieldError(
                    "id", f"repeats the id of item {first_seen[item.id]} of this batch", index
                )
            )
        first_seen.setdefault(item.id, index)
    if errors:
        raise InvalidInput(errors)


async def get(db: Database, *, org_id: str, feedback_id: str) -> FeedbackPublic:
    found = await get_many(db, org_id=org_id, feedback_ids=[feedback_id])
    if feedback_id not in found:
        raise NotFound("feedback", feedback_id)
    return found[feedback_id]


async def get_many(
    db: Database, *, org_id: str, feedback_ids: Sequence[str]
) -> dict[str, FeedbackPublic]:
    """Feedback by id in one statement (for DataLoaders); unknown ids are absent."""
    if not feedback_ids:
        return {}
    rows = await _BY_IDS.rows(db, {"org_id": org_id, "ids": json_array(feedback_ids)})
    return {row["id"]: FeedbackPublic.model_validate(row) for row in rows}


async def update_feedback(
    db: Database, *, org_id: str, feedback_id: str, changes: FeedbackUpdate
) -> FeedbackPublic:
    values: dict[str, Any] = {}
    for name in changes.model_fields_set:
        value = getattr(changes, name)
        if name == "source":
            value = value.value
        elif name in ("tags", "metadata") and value is None:
            value = [] if name == "tags" else {}
        values[name] = value
    where = (feedback.c.org_id == org_id, feedback.c.id == feedback_id)
    async with db.write() as conn, rollups.maintained(conn, feedback_of=[(org_id, feedback_id)]):
        if values:
            changed = update(feedback).where(*where).values(**values, updated_at=utcnow())
            stmt: Any = changed.returning(*feedback.c)
        else:
            stmt = select(feedback).where(*where)
        row = next(records(await conn.execute(stmt)), None)
    if row is None:
        raise NotFound("feedback", feedback_id)
    return FeedbackPublic.model_validate(row)


async def delete_feedback(db: Database, *, org_id: str, feedback_id: str) -> None:
    async with db.write() as conn, rollups.maintained(conn, feedback_of=[(org_id, feedback_id)]):
        deleted = (
            await conn.execute(
                delete(feedback)
                .where(feedback.c.org_id == org_id, feedback.c.id == feedback_id)
                .returning(feedback.c.id)
            )
        ).first()
    if deleted is None:
        raise NotFound("feedback", feedback_id)


async def list_feedback(
    db: Database, *, org_id: str, filters: FeedbackFilter, limit: int, cursor: str | None = None
) -> tuple[list[FeedbackPublic], str | None]:
    """Newest first; the second value is the cursor of the next page, None on the last page."""
    after: tuple[Any, Any] = (None, None)
    if cursor is not None:
        after = cursors.decode(_FEEDBACK_CURSOR, cursor, sort_type=datetime)
    given = {
        name: value
        for name, value in (
            ("source", None if filters.source is None else filters.source.value),
            ("user_id", filters.user_id),
            ("tag", filters.tag),
            ("score", filters.score),
            ("trace_id", filters.trace_id),
            ("since", filters.since),
            ("until", filters.until),
            ("project", filters.project),
            ("model", filters.model),
            ("after_created", after[0]),
            ("after_id", after[1]),
        )
        if value is not None
    }
    values = given | {"org_id": org_id, "limit": limit + 1}
    rows = await _listing(frozenset(given)).rows(db, values)
    page = [FeedbackPublic.model_validate(r) for r in rows[:limit]]
    next_cursor = feedback_cursor(page[-1]) if len(rows) > limit else None
    return page, next_cursor


@lru_cache(maxsize=LISTING_SHAPES)
def _listing(given: frozenset[str]) -> Precompiled:
    """The listing's statement for one set of given filters, built once (while among the
    ``LISTING_SHAPES`` sets used last): building it and having SQLAlchemy hash it took a sixth
    of a page's time on SQLite, and as a ``Precompiled`` read it skips the engine, which took
    over a third (on PostgreSQL four round trips, one now)."""
    stmt = select(feedback).where(
        feedback.c.org_id == bindparam("org_id"),
        *feedback_attribute_conditions(
            source=param("source", "source" in given),
            user_id=param("user_id", "user_id" in given),
            tag=param("tag", "tag" in given),
        ),
    )
    for column in (feedback.c.score, feedback.c.trace_id):
        if column.name in given:
            stmt = stmt.where(column == bindparam(column.name))
    if "since" in given:
        stmt = stmt.where(feedback.c.created_at >= bindparam("since"))
    if "until" in given:
        stmt = stmt.where(feedback.c.created_at < bindparam("until"))
    if "project" in given or "model" in given:
        stmt = join_attribution(stmt)
        if "project" in given:
            stmt = stmt.where(traces.c.project == bindparam("project"))
        if "model" in given:
            stmt = stmt.where(attributed_model() == bindparam("model"))
    if "after_created" in given:
        stmt = stmt.where(
            tuple_(feedback.c.created_at, feedback.c.id)
            < tuple_(
                bindparam("after_created", type_=feedback.c.created_at.type),
                bindparam("after_id", type_=feedback.c.id.type),
            )
        )
    order = (feedback.c.created_at.desc(), feedback.c.id.desc())
    return Precompiled(stmt.order_by(*order).limit(bindparam("limit", type_=Integer)))


def feedback_cursor(item: FeedbackPublic) -> str:
    """The cursor that continues the listing after this item (GraphQL edges)."""
    return cursors.encode(_FEEDBACK_CURSOR, item.created_at, item.id)


_OF_TRACES = Precompiled(
    select(feedback)
    .where(*of_traces(feedback))
    # trace_id first: the index order, so no plan sorts all of the org's votes
    .order_by(feedback.c.trace_id, feedback.c.created_at, feedback.c.id)
)


async def for_traces(
    db: Database, *, org_id: str, trace_ids: Sequence[str]
) -> dict[str, list[FeedbackPublic]]:
    """Feedback of many traces in one statement, each trace's oldest first."""
    result: dict[str, list[FeedbackPublic]] = {t: [] for t in trace_ids}
    if not trace_ids:
        return result
    for row in await _OF_TRACES.rows(db, trace_params(org_id, trace_ids)):
        result[row["trace_id"]].append(FeedbackPublic.model_validate(row))
    return result


async def of_trace(db: Database, *, org_id: str, trace_id: str) -> list[FeedbackPublic]:
    """Feedback of one trace; NotFound when neither the trace nor any feedback for it exists."""
    found = (await for_traces(db, org_id=org_id, trace_ids=[trace_id]))[trace_id]
    if not found:
        await traces_service.ensure_trace_known(db, org_id=org_id, trace_id=trace_id)
    return found
