"""PostgreSQL reads without the engine (``PgReader``): one statement on a connection of their
own, kept for the next, and the engine answers whenever they cannot."""

import asyncio
from collections.abc import AsyncIterator

import anyio
import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from agentcost.db import Database

pytestmark = pytest.mark.anyio

PID = "SELECT pg_backend_pid()"


@pytest.fixture
async def pg(pg_database_url: str) -> AsyncIterator[Database]:
    database = Database(pg_database_url, pool_size=1)
    try:
        yield database
    finally:
        await database.dispose()


async def _pid(db: Database) -> int | None:
    found = await db.read_direct(PID, ())
    return None if found is None else found[1][0][0]


async def _engine_pid(db: Database) -> int:
    async with db.read() as conn:
        return (await conn.execute(text(PID))).scalar_one()


async def test_a_read_is_one_statement_on_a_connection_kept_for_the_next(pg: Database) -> None:
    found = await pg.read_direct("SELECT $1::int + 1 AS n, $2::text AS s", (41, "x"))
    assert found is not None
    description, rows = found
    # Each column's name and type (PostgreSQL's int4 and text), as a DBAPI cursor describes it.
    assert (description, [tuple(r) for r in rows]) == ([("n", 23), ("s", 25)], [(42, "x")])
    first = await _pid(pg)
    assert first is not None and await _pid(pg) == first
    assert await _engine_pid(pg) != first  # not one of the engine's connections
    assert await pg.read_direct("SELECT 1 AS n WHERE false", ()) == ([("n", 23)], [])


async def test_after_its_connection_is_killed_the_engine_answers_once_then_a_new_one(
    pg: Database,
) -> None:
    killed = await _pid(pg)
    async with pg.write() as conn:
        await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": killed})
    await asyncio.sleep(0.1)
    assert await pg.read_direct("SELECT 1", ()) is None  # its connection is closed, not kept
    again = await _pid(pg)
    assert again is not None and again != killed


async def test_with_every_connection_busy_the_engine_answers(pg: Database) -> None:
    """pool_size=1: a second read while the first holds the only connection is not kept
    waiting."""
    slow, quick = await asyncio.gather(
        pg.read_direct("SELECT pg_sleep(0.3), 1", ()), pg.read_direct("SELECT 2", ())
    )
    assert slow is not None and [r[1] for r in slow[1]] == [1]
    assert quick is None


async def test_an_error_goes_back_to_the_engine_and_the_next_read_reconnects(
    pg: Database,
) -> None:
    before = await _pid(pg)
    assert await pg.read_direct("SELECT * FROM no_such_table", ()) is None
    after = await _pid(pg)
    assert after is not None and after != before


async def test_a_cancelled_read_closes_its_connection(pg: Database) -> None:
    before = await _pid(pg)
    with anyio.move_on_after(0.2):
        await pg.read_direct("SELECT pg_sleep(10)", ())
    after = await _pid(pg)
    assert after is not None and after != before


async def test_no_read_from_another_event_loop_nor_after_dispose(pg_database_url: str) -> None:
    database = Database(pg_database_url, pool_size=1)
    pid = await _pid(database)
    assert pid is not None
    elsewhere = await anyio.to_thread.run_sync(
        lambda: asyncio.run(database.read_direct("SELECT 1", ()))
    )
    assert elsewhere is None
    await database.dispose()
    assert await database.read_direct("SELECT 1", ()) is None
    sync_url = make_url(pg_database_url).set(drivername="postgresql")
    with psycopg.connect(sync_url.render_as_string(hide_password=False)) as conn:
        for _ in range(50):  # the server ends the backend a moment after the goodbye
            row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,))
            if row.fetchone() == (0,):
                break
            await asyncio.sleep(0.02)
        else:
            pytest.fail("the reader's connection is still open after dispose")


async def test_a_url_with_the_engines_own_options_reads_through_the_engine(
    pg_database_url: str,
) -> None:
    url = make_url(pg_database_url).update_query_dict({"prepared_statement_cache_size": "0"})
    database = Database(url)
    try:
        assert await database.read_direct("SELECT 1", ()) is None
        assert await _engine_pid(database) > 0
    finally:
        await database.dispose()
