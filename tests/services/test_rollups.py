"""Roll-ups stay equal to a full recomputation after any interleaving of writes, and analytics
read from them equal the scan path for any window, whole hours or not."""

import contextlib
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from agentcost.db import Database
from agentcost.errors import NotFound
from agentcost.models import FeedbackCreate, FeedbackUpdate, TraceEvent, utcnow
from agentcost.services import feedback, quality, rollups, traces
from agentcost.services.filters import AnalyticsFilter

pytestmark = pytest.mark.anyio

T0 = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)
TRACE_IDS = [f"t{i}" for i in range(6)]
SOURCES = ["user", "eval", "automated"]


def event_strategy() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "trace_id": st.sampled_from(TRACE_IDS),
            "model": st.sampled_from(["m-big", "m-small", "m-free"]),
            "cost": st.none() | st.sampled_from([0.0, 0.001, 0.02, 0.3]),
            "project": st.sampled_from(["web", "api"]),
            "call_id": st.sampled_from(["c1", "c2", "c3"]),
            "minutes": st.integers(0, 60 * 60),
            "prompt": st.none() | st.sampled_from([("bot", 1), ("bot", 2), ("bot", None)]),
        }
    )


operation = st.one_of(
    st.tuples(st.just("ingest"), event_strategy()),
    st.tuples(
        st.just("vote"),
        st.fixed_dictionaries(
            {
                "trace_id": st.sampled_from([*TRACE_IDS, "ghost"]),
                "score": st.sampled_from([-1, 0, 1]),
                "source": st.sampled_from(SOURCES),
                "call_id": st.none() | st.sampled_from(["c1", "c2", "c9"]),
                "id": st.none() | st.sampled_from(["v1", "v2", "v3"]),
            }
        ),
    ),
    st.tuples(
        st.just("change"),
        st.fixed_dictionaries(
            {"id": st.sampled_from(["v1", "v2", "v3"]), "score": st.sampled_from([-1, 0, 1])}
        ),
    ),
    st.tuples(st.just("delete"), st.sampled_from(["v1", "v2", "v3"])),
)


async def run(db: Database, org: str, op: tuple[str, Any]) -> None:
    kind, args = op
    if kind == "ingest":
        args = dict(args)
        prompt = args.pop("prompt")
        minutes = args.pop("minutes")
        event = TraceEvent(
            **args,
            timestamp=T0 + timedelta(minutes=minutes),
            prompt_id=prompt and prompt[0],
            prompt_version=prompt and prompt[1],
        )
        await traces.ingest(db, org_id=org, events=[event])
    elif kind == "vote":
        await feedback.submit(db, org_id=org, items=[FeedbackCreate(**args)])
    elif kind == "change":
        with contextlib.suppress(NotFound):  # the id may not have been used yet
            await feedback.update_feedback(
                db, org_id=org, feedback_id=args["id"], changes=FeedbackUpdate(score=args["score"])
            )
    else:
        with contextlib.suppress(NotFound):
            await feedback.delete_feedback(db, org_id=org, feedback_id=args)


async def stored(db: Database, org: str) -> set[tuple[Any, ...]]:
    table = rollups.rollups
    async with db.read() as conn:
        rows = (await conn.execute(select(table).where(table.c.org_id == org))).all()
    zero = tuple(0 for _ in rollups.COUNT_FIELDS)
    return {tuple(r) for r in rows if tuple(r)[-len(zero) :] != zero}


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(operation, min_size=1, max_size=25))
async def test_rollups_equal_a_full_recomputation(db: Database, ops: list[Any]) -> None:
    org = f"o-{uuid.uuid4().hex[:8]}"
    for op in ops:
        await run(db, org, op)
    maintained = await stored(db, org)
    async with db.write() as conn:
        await conn.run_sync(rollups.rebuild, org)
    assert maintained == await stored(db, org)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    ops=st.lists(operation, min_size=5, max_size=30),
    since=st.none() | st.integers(-30, 60 * 60),
    length=st.none() | st.integers(1, 60 * 60),
    project=st.none() | st.sampled_from(["web", "api"]),
    source=st.none() | st.sampled_from(SOURCES),
)
async def test_rollup_reads_equal_the_scan_path_for_any_window(
    db: Database,
    ops: list[Any],
    since: int | None,
    length: int | None,
    project: str | None,
    source: str | None,
) -> None:
    org = f"o-{uuid.uuid4().hex[:8]}"
    for op in ops:
        await run(db, org, op)
    start = None if since is None else T0 + timedelta(minutes=since, seconds=7)
    end = None if length is None else (start or T0) + timedelta(minutes=length)
    filters = AnalyticsFilter(since=start, until=end, project=project, source=source)
    async with db.read() as conn:
        for dim, key1 in (("model", None), ("prompt", "bot"), ("all", None)):
            from_rollups = await quality._group_sums(conn, org, dim, filters, key1=key1)
            scanned = await quality._scan(conn, org, dim, filters, key1)
            assert from_rollups == {k: c for k, c in scanned.items() if c.total}, dim
        # The summary's votes per source, read by the same statements as its counts.
        rolled: dict[str, int] = defaultdict(int)
        counted: dict[str, int] = defaultdict(int)
        with_sources = await quality._group_sums(conn, org, "all", filters, sources=rolled)
        assert with_sources == await quality._group_sums(conn, org, "all", filters)
        await quality._scan(conn, org, "all", filters, None, sources=counted)
        assert {s: n for s, n in rolled.items() if n} == {s: n for s, n in counted.items() if n}
        assert sum(rolled.values()) == sum(c.total for c in with_sources.values())


async def test_window_edges_inside_and_on_hour_boundaries(db: Database) -> None:
    """Voted traces every 37 minutes over three days; windows starting and ending on and
    between hour and day boundaries read the same from roll-ups as from the scan path."""
    org = f"o-{uuid.uuid4().hex[:8]}"
    events = [
        TraceEvent(
            trace_id=f"w{m}",
            model=("m-big", "m-small")[m % 2],
            cost=0.001 * (m % 5),
            project=("web", "api")[m % 3 == 0],
            timestamp=T0 + timedelta(minutes=m),
        )
        for m in range(0, 3 * 24 * 60, 37)
    ]
    await traces.ingest(db, org_id=org, events=events)
    votes = [
        FeedbackCreate(trace_id=e.trace_id, score=(1, -1, 0)[i % 3], source=SOURCES[i % 3])
        for i, e in enumerate(events)
    ]
    await feedback.submit(db, org_id=org, items=votes)
    midnight = 15 * 60  # T0 is 09:00 UTC
    offsets = [None, -5, 0, 1, 10, 20, 59, 61, 130, 185, midnight - 10, midnight - 1, midnight]
    offsets += [midnight + 30, midnight + 70]
    offsets += [midnight + 24 * 60, midnight + 24 * 60 + 61, midnight + 48 * 60 + 5, 72 * 60]
    checked = 0
    async with db.read() as conn:
        for since in offsets:
            for until in offsets:
                start = None if since is None else T0 + timedelta(minutes=since)
                end = None if until is None else T0 + timedelta(minutes=until)
                if start is not None and end is not None and start >= end:
                    continue
                filters = AnalyticsFilter(since=start, until=end)
                from_rollups = await quality._group_sums(conn, org, "model", filters)
                scanned = await quality._scan(conn, org, "model", filters, None)
                assert from_rollups == scanned, (since, until)
                checked += bool(scanned)
    assert checked > 150


def test_a_window_reads_whole_buckets_and_scans_only_its_partial_ten_minutes() -> None:
    since = datetime(2025, 6, 1, 9, 7, 30, tzinfo=UTC)
    until = datetime(2025, 6, 3, 11, 23, tzinfo=UTC)
    ranges, edges = quality._plan(AnalyticsFilter(since=since, until=until))
    assert edges == [
        (since, datetime(2025, 6, 1, 9, 10, tzinfo=UTC)),
        (datetime(2025, 6, 3, 11, 20, tzinfo=UTC), until),
    ]
    seconds = {rollups.DAILY: 86_400, rollups.HOURLY: 3_600, rollups.TEN_MINUTES: 600}
    spans = sorted(
        (datetime.fromtimestamp(low * seconds[level], UTC), level)
        for level, low, _ in ranges
        if low is not None
    )
    assert spans == [
        (datetime(2025, 6, 1, 9, 10, tzinfo=UTC), rollups.TEN_MINUTES),
        (datetime(2025, 6, 1, 10, tzinfo=UTC), rollups.HOURLY),
        (datetime(2025, 6, 2, tzinfo=UTC), rollups.DAILY),
        (datetime(2025, 6, 3, tzinfo=UTC), rollups.HOURLY),
        (datetime(2025, 6, 3, 11, tzinfo=UTC), rollups.TEN_MINUTES),
    ]
    ends = sorted(
        datetime.fromtimestamp(high * seconds[level], UTC) for level, _, high in ranges if high
    )
    # Each range ends where the next one starts, and the last where the second edge begins.
    assert ends == [start for start, _ in spans[1:]] + [datetime(2025, 6, 3, 11, 20, tzinfo=UTC)]


def test_window_edges_are_exact_to_the_microsecond_in_any_year() -> None:
    for year in (2025, 5000, 9999):
        boundary = datetime(year, 3, 1, 10, 20, tzinfo=UTC)
        just_after = boundary + timedelta(microseconds=1)
        until = boundary + timedelta(days=1)
        _, edges = quality._plan(AnalyticsFilter(since=just_after, until=until))
        # The bucket that starts at the boundary is cut, not read whole.
        assert edges == [(just_after, boundary + timedelta(minutes=10))], year
        _, on_boundary = quality._plan(AnalyticsFilter(since=boundary, until=until))
        assert on_boundary == [], year


async def test_a_write_of_many_traces_applies_its_delta_in_parts(db: Database) -> None:
    """Every ``apply_every`` rows the delta is applied and emptied (it stays small enough for a
    connection's memory); the roll-ups end exactly as a full recomputation."""
    org = f"o-{uuid.uuid4().hex[:8]}"
    ids = [f"p{i}" for i in range(5)]
    await traces.ingest(
        db,
        org_id=org,
        events=[
            TraceEvent(
                trace_id=trace_id,
                model=("m-big", "m-small")[i % 2],
                cost=0.01 * i,
                project="web",
                call_id="c1",
                timestamp=T0 + timedelta(minutes=11 * i),  # one ten-minute slot each
            )
            for i, trace_id in enumerate(ids)
        ],
    )
    first = [FeedbackCreate(id=f"v{i}", trace_id=t, score=1) for i, t in enumerate(ids)]
    await feedback.submit(db, org_id=org, items=first)
    # Each vote moves to the next trace, with another score and source: five before images
    # and five after images.
    moved = [
        FeedbackCreate(id=f"v{i}", trace_id=ids[(i + 1) % 5], score=-1, source="eval")
        for i in range(5)
    ]
    async with db.write() as conn:
        # A trace's image here is four rows (dimensions all and model, sources * and its own):
        # two traces' images are applied at once, one is held.
        maintenance = rollups.Maintenance(conn, apply_every=5)
        for part in (ids[:2], ids[2:4], ids[4:]):  # as an import's chunks come
            await maintenance.retract(traces_of=[(org, t) for t in part])
        held = await conn.scalar(text("SELECT count(DISTINCT bucket) FROM agentcost_rollup_delta"))
        await feedback.write(conn, [feedback.prepare(org, moved, utcnow())])
        await maintenance.finish()
    assert held == 1  # the fifth trace's image only: the first four are applied
    maintained = await stored(db, org)
    columns = list(rollups.rollups.c.keys())
    models = {
        row[columns.index("key1")] for row in maintained if row[columns.index("dim")] == "model"
    }
    assert models == {"m-big", "m-small"}
    async with db.write() as conn:
        await conn.run_sync(rollups.rebuild, org)
    assert maintained == await stored(db, org)


async def test_trace_events_after_image_only_traces_that_may_hold_votes(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trace without votes contributes nothing before or after a trace event, so the event
    costs no after image, unless a later step of the same transaction may add votes to it."""
    images: list[tuple[int, list[str] | None]] = []
    record = rollups.Maintenance._record

    async def recorded(
        self: rollups.Maintenance, sign: int, org_id: str, trace_ids: list[str] | None
    ) -> list[str]:
        images.append((sign, trace_ids))
        return await record(self, sign, org_id, trace_ids)

    monkeypatch.setattr(rollups.Maintenance, "_record", recorded)
    org = f"o-{uuid.uuid4().hex[:8]}"

    def event(trace_id: str, call_id: str) -> TraceEvent:
        return TraceEvent(trace_id=trace_id, call_id=call_id, model="m-big", cost=0.5, timestamp=T0)

    await traces.ingest(db, org_id=org, events=[event("t1", "c1"), event("t2", "c1")])
    assert images == [(-1, ["t1", "t2"])]
    await feedback.submit(db, org_id=org, items=[FeedbackCreate(trace_id="t1", score=1)])
    images.clear()
    await traces.ingest(db, org_id=org, events=[event("t1", "c2")])
    await traces.ingest(db, org_id=org, events=[event("t2", "c2")])
    assert images == [(-1, ["t1"]), (1, ["t1"]), (-1, ["t2"])]

    images.clear()
    async with db.write() as conn:
        maintenance = rollups.Maintenance(conn)
        await maintenance.retract(traces_of=[(org, "t2")], adds_votes=False)
        await traces.write(conn, [traces.prepare(org, [event("t2", "c3")], utcnow())])
        vote = feedback.prepare(org, [FeedbackCreate(trace_id="t2", score=-1)], utcnow())
        await maintenance.retract(**feedback.touches([vote]))
        await feedback.write(conn, [vote])
        await maintenance.finish()
    assert images == [(-1, ["t2"]), (1, ["t2"])]
    maintained = await stored(db, org)
    dims = {row[list(rollups.rollups.c.keys()).index("dim")] for row in maintained}
    assert {"all", "model"} <= dims
    async with db.write() as conn:
        await conn.run_sync(rollups.rebuild, org)
    assert maintained == await stored(db, org)
