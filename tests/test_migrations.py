"""Alembic builds every schema: on start, upgrading in place, and in step with the models."""

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import insert, inspect, select, text
from sqlalchemy.engine import Row, make_url
from sqlmodel import SQLModel

import agentcost.models  # noqa: F401  (the tables)
from agentcost.app import create_app
from agentcost.db import Database
from agentcost.migrate import alembic_config, upgrade
from agentcost.models import FeedbackCreate, TraceEvent
from agentcost.services import feedback, rollups, sql, traces
from agentcost.settings import Settings

pytestmark = pytest.mark.anyio

TABLES = {"traces", "calls", "feedback"}


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


async def current_revision(db: Database) -> str | None:
    async with db.read() as conn:
        return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())


async def start_app_and(settings: Settings, requests: list[tuple[str, str, Any]]) -> list[Any]:
    app = create_app(settings)
    answers = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            for method, path, body in requests:
                r = await c.request(method, path, json=body)
                assert r.status_code < 300, r.text
                answers.append(r.json())
    return answers


async def test_start_migrates_and_a_second_start_keeps_the_data(settings: Settings) -> None:
    await start_app_and(
        settings,
        [
            ("POST", "/api/trace", {"trace_id": "kept", "model": "gpt-4.1", "cost": 0.25}),
            ("POST", "/api/feedback", {"id": "vote", "trace_id": "kept", "score": 1}),
        ],
    )
    db = Database.from_settings(settings)
    try:
        assert await current_revision(db) == head_revision()
    finally:
        await db.dispose()
    trace, vote = await start_app_and(
        settings, [("GET", "/api/traces/kept", None), ("GET", "/api/feedback/vote", None)]
    )
    assert (trace["cost"], trace["score"]["total"]) == (0.25, 1)
    assert vote["trace_id"] == "kept"


async def test_upgrade_is_idempotent_and_in_place(db: Database) -> None:
    async with db.write() as conn:
        await conn.execute(
            text(
                "INSERT INTO feedback (org_id, id, trace_id, score, source, tags, metadata,"
                " created_at, updated_at) VALUES ('default', 'raw', 't', 1, 'user', '[]', '{}',"
                " '2025-01-01 00:00:00', '2025-01-01 00:00:00')"
            )
        )
    await upgrade(db)
    await upgrade(db)
    assert await current_revision(db) == head_revision()
    async with db.read() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM feedback"))).scalar() == 1


@pytest.fixture
def private_database_url(database_url: str) -> Iterator[str]:
    """A database of this test's own (the shared PostgreSQL one must stay at head)."""
    if database_url.startswith("sqlite"):
        yield database_url
        return
    name = f"agentcost_mig_{uuid.uuid4().hex[:10]}"
    url = make_url(database_url)
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False
    )
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_down_to_nothing_and_up_again(private_database_url: str) -> None:
    """The migrations alone build every table, from an empty database to head and back."""
    db = Database(private_database_url)
    try:
        assert await table_names(db) & TABLES == set()
        await upgrade(db)
        assert await table_names(db) >= TABLES
        await downgrade_to(db, "base")
        assert await table_names(db) & TABLES == set()
        assert await current_revision(db) is None
        await upgrade(db)
        assert await table_names(db) >= TABLES
        assert await current_revision(db) == head_revision()
    finally:
        await db.dispose()


async def downgrade_to(db: Database, revision: str) -> None:
    from alembic import command

    def run(connection: Any) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, revision)

    async with db.write() as conn:
        await conn.run_sync(run)


async def table_names(db: Database) -> set[str]:
    async with db.read() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


async def test_models_and_migrations_agree(db: Database) -> None:
    """`alembic check`: autogenerate finds nothing to add on a database at head."""

    def diff(connection: Any) -> list[Any]:
        context = MigrationContext.configure(
            connection,
            opts={"compare_type": True, "render_as_batch": connection.dialect.name == "sqlite"},
        )
        return compare_metadata(context, SQLModel.metadata)

    async with db.read() as conn:
        differences = await conn.run_sync(diff)
    assert differences == []


async def test_upgrade_from_0001_keeps_traces_and_backfills_the_primary_call_time(
    private_database_url: str,
) -> None:
    """A database written by the first release is upgraded in place, its rows kept and filled."""
    db = Database(private_database_url)
    try:
        await upgrade(db, "0001")
        t0 = datetime(2025, 1, 1, 10, 0, tzinfo=UTC)
        t1 = t0 + timedelta(seconds=9)
        async with db.write() as conn:
            # Only columns release 0001 had; the tables' newer columns are left out.
            await conn.execute(
                insert(sql.traces).values(
                    org_id="o",
                    trace_id="t",
                    project="p",
                    metadata={},
                    started_at=t0,
                    ended_at=t1,
                    model="big",
                    primary_cost=0.5,
                    cost=0.6,
                    cost_computed=False,
                    unpriced_calls=0,
                    input_tokens=0,
                    output_tokens=0,
                    latency_ms=0.0,
                    call_count=2,
                    error_count=0,
                    created_at=t0,
                    updated_at=t0,
                )
            )
            await conn.execute(
                insert(sql.calls),
                [
                    {
                        "org_id": "o",
                        "trace_id": "t",
                        "call_id": call_id,
                        "model": model,
                        "input_tokens": 0,
                        "output_tokens": 0,
                        "cost": cost,
                        "cost_computed": False,
                        "status": "success",
                        "metadata": {},
                        "timestamp": ts,
                    }
                    for call_id, model, cost, ts in (
                        ("c1", "small", 0.1, t0),
                        ("c2", "big", 0.5, t1),
                    )
                ],
            )
        await upgrade(db)
        assert await current_revision(db) == head_revision()
        trace = await traces.get_trace(db, org_id="o", trace_id="t")
        assert (trace.model, trace.cost, trace.call_count) == ("big", 0.6, 2)
        async with db.read() as conn:
            primary_at = (await conn.execute(select(sql.traces.c.primary_at))).scalar()
        assert primary_at == t1
    finally:
        await db.dispose()


@pytest.fixture
async def rated(private_database_url: str) -> AsyncIterator[Database]:
    """A private database at head where org "o" has three rated traces, an hour apart."""
    db = Database(private_database_url)
    try:
        await upgrade(db)
        t0 = datetime(2025, 1, 1, 10, 7, tzinfo=UTC)
        events = [
            TraceEvent(trace_id=f"t{i}", model="m", cost=0.5, timestamp=t0 + timedelta(hours=i))
            for i in range(3)
        ]
        await traces.ingest(db, org_id="o", events=events)
        votes = [FeedbackCreate(trace_id=f"t{i}", score=1) for i in range(3)]
        await feedback.submit(db, org_id="o", items=votes)
        yield db
    finally:
        await db.dispose()


async def test_the_ten_minute_level_goes_down_alone_and_comes_back_recomputed(
    rated: Database,
) -> None:
    at_head = await rollup_rows(rated)
    ten_minutes = {row for row in at_head if row.dim.endswith(rollups.TEN_MINUTES)}
    assert ten_minutes and at_head - ten_minutes
    await downgrade_to(rated, "0004")
    assert await rollup_rows(rated) == at_head - ten_minutes
    await upgrade(rated)
    assert await rollup_rows(rated) == at_head


async def test_sqlite_rollups_lose_their_rowid_and_get_it_back_with_their_rows(
    rated: Database,
) -> None:
    at_head = await rollup_rows(rated)
    assert at_head
    assert await rollups_have_rowid(rated) is (False if rated.is_sqlite else None)
    await downgrade_to(rated, "0005")
    assert await rollups_have_rowid(rated) is (True if rated.is_sqlite else None)
    assert await rollup_rows(rated) == at_head
    await upgrade(rated)
    assert await rollups_have_rowid(rated) is (False if rated.is_sqlite else None)
    assert await rollup_rows(rated) == at_head
    # Writes keep the recreated table current, as a full recomputation has it.
    await feedback.submit(rated, org_id="o", items=[FeedbackCreate(trace_id="t0", score=-1)])
    maintained = await rollup_rows(rated)
    assert maintained != at_head
    async with rated.write() as conn:
        await conn.run_sync(rollups.rebuild, "o")
    assert await rollup_rows(rated) == maintained


async def rollups_have_rowid(db: Database) -> bool | None:
    """Whether SQLite stores the roll-ups with a rowid; None on PostgreSQL, which has none."""
    if not db.is_sqlite:
        return None
    async with db.read() as conn:
        ddl = (await conn.exec_driver_sql(_ROLLUPS_DDL)).scalar_one()
    return "WITHOUT ROWID" not in ddl.upper()


_ROLLUPS_DDL = "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'quality_rollups'"


async def rollup_rows(db: Database) -> set[Row[Any]]:
    async with db.read() as conn:
        return set(await conn.execute(select(rollups.rollups)))
