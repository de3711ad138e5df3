"""PostgreSQL reads without the engine (``PgReader``): one statement on a connection of their
own, kept for the next, and the engine answers whenever they cannot."""

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import asyncpg
import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from agentcost import pg_reader
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


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The reader's connection attempts (not the engine's), by what each came to: a connection
    or an error."""
    made: list[object] = []
    original = asyncpg.connect

    async def counted(*args: Any, **options: Any) -> asyncpg.Connection:
        if sys._getframe(1).f_globals.get("__name__") != pg_reader.__name__:
            return await original(*args, **options)
        try:
            connection = await original(**options)
        except Exception as error:
            made.append(error)
            raise
        made.append(connection)
        return connection

    monkeypatch.setattr(asyncpg, "connect", counted)
    return made


async def _pid(db: Database) -> int | None:
    found = await db.read_direct(PID, ())
    return None if found is None else found[1][0][0]


async def _engine_pid(db: Database) -> int:
    async with db.read() as conn:
        return (await conn.execute(text(PID))).scalar_one()


async def _within(seconds: float, check: Callable[[], Awaitable[bool]]) -> bool:
    """Whether ``check`` comes true within ``seconds`` (the server ends a backend a moment
    after its client left, and the client learns of an ended backend a moment after)."""
    for _ in range(round(seconds / 0.02)):
        if await check():
            return True
        await asyncio.sleep(0.02)
    return await check()


def _activity(url: str, where: str, *args: object) -> int:
    sync_url = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(sync_url) as conn:
        row = conn.execute(f"SELECT count(*) FROM pg_stat_activity WHERE {where}", args).fetchone()
    assert row is not None
    return int(row[0])


async def test_a_read_is_one_statement_on_a_connection_kept_for_the_next(
    pg: Database, connects: list[object]
) -> None:
    found = await pg.read_direct("SELECT $1::int + 1 AS n, $2::text AS s", (41, "x"))
    assert found is not None
    description, rows = found
    # Each column's name and type (PostgreSQL's int4 and text), as a DBAPI cursor describes it.
    assert (description, [tuple(r) for r in rows]) == ([("n", 23), ("s", 25)], [(42, "x")])
    assert await pg.read_direct("SELECT 1 AS n WHERE false", ()) == ([("n", 23)], [])
    first = await _pid(pg)
    assert first is not None and await _pid(pg) == first
    assert await _engine_pid(pg) != first  # not one of the engine's connections
    assert len(connects) == 1


async def test_the_statements_kept_prepared_are_the_most_recently_used(
    pg: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pg_reader, "_PREPARED", 2)
    prepared: list[str] = []
    original = asyncpg.connection.Connection.prepare

    async def counted(self: asyncpg.Connection, query: str, *args: Any, **options: Any) -> Any:
        prepared.append(query)
        return await original(self, query, *args, **options)

    monkeypatch.setattr(asyncpg.connection.Connection, "prepare", counted)
    for n in (1, 2, 1, 3, 1):
        found = await pg.read_direct(f"SELECT {n} AS n", ())
        assert found is not None and found[1][0][0] == n
    # The third statement pushed out the second, used less recently than the first.
    assert prepared == ["SELECT 1 AS n", "SELECT 2 AS n", "SELECT 3 AS n"]


async def test_a_connection_the_server_ended_is_replaced_without_the_engine(
    pg: Database,
) -> None:
    killed = await _pid(pg)
    async with pg.write() as conn:
        await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": killed})
    reader = pg._pg_reader
    assert reader is not None
    idle = reader._idle[0].connection

    async def noticed() -> bool:
        return idle.is_closed()

    assert await _within(5, noticed)
    again = await _pid(pg)
    assert again is not None and again != killed


async def _one_slot(db: Database) -> None:
    """pool_size=1, exactly: a read beside a short one waits for its connection, and one beside
    a long one goes to the engine after ``WAIT`` (a slot lost or given twice shows here)."""
    wait = pg_reader.WAIT
    try:
        for holds, pg_reader.WAIT, waits in ((0.01, 5.0, True), (0.5, 0.05, False)):
            held, beside = await asyncio.gather(
                db.read_direct(f"SELECT pg_sleep({holds}), pg_backend_pid()", ()),
                db.read_direct(PID, ()),
            )
            assert held is not None
            if waits:
                assert beside is not None and beside[1][0][0] == held[1][0][1]
            else:
                assert beside is None
    finally:
        pg_reader.WAIT = wait


async def test_with_every_connection_busy_a_read_waits_a_little_for_one(
    pg: Database, connects: list[object]
) -> None:
    await _one_slot(pg)
    assert len(connects) == 1


async def test_a_lock_on_every_connection_stalls_no_other_read(
    pg: Database, pg_database_url: str
) -> None:
    """A migration's lock holds the reads of its table; the engine answers the others."""
    async with pg.write() as conn:
        await conn.execute(text("CREATE TABLE locked_for_test (id int)"))
    try:
        async with pg.write() as conn:
            await conn.execute(text("LOCK TABLE locked_for_test IN ACCESS EXCLUSIVE MODE"))
            blocked = asyncio.create_task(
                pg.read_direct("SELECT count(*) FROM locked_for_test", ())
            )

            async def waiting() -> bool:
                return (
                    _activity(
                        pg_database_url, "wait_event_type = 'Lock' AND datname = current_database()"
                    )
                    == 1
                )

            assert await _within(5, waiting)  # the read holds the only connection, in the lock
            with anyio.fail_after(2 * pg_reader.WAIT + 1):
                assert await pg.read_direct("SELECT 1", ()) is None
            assert not blocked.done()
        found = await blocked
        assert found is not None and [tuple(r) for r in found[1]] == [(0,)]
    finally:
        async with pg.write() as conn:
            await conn.execute(text("DROP TABLE locked_for_test"))
    await _one_slot(pg)


async def test_a_statement_the_server_refuses_goes_to_the_engine_and_keeps_the_connection(
    pg: Database,
) -> None:
    before = await _pid(pg)
    assert await pg.read_direct("SELECT * FROM no_such_table", ()) is None
    # A JSON text with a NUL in it, which PostgreSQL refuses at execution.
    assert await pg.read_direct("SELECT $1::text::jsonb", ('"a\\u0000b"',)) is None
    assert await _pid(pg) == before
    await _one_slot(pg)


async def test_a_cancelled_read_stops_on_the_server_too(pg: Database, pg_database_url: str) -> None:
    before = await _pid(pg)
    marker = "/* cancelled-read */"
    with anyio.move_on_after(0.3):
        await pg.read_direct(f"SELECT pg_sleep(10) {marker}", ())

    async def stopped() -> bool:
        return _activity(pg_database_url, "state = 'active' AND query LIKE %s", f"%{marker}") == 0

    assert await _within(5, stopped)
    after = await _pid(pg)
    assert after is not None and after != before
    await _one_slot(pg)


async def test_no_new_connection_for_a_while_after_one_could_not_be_opened(
    pg: Database, connects: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pg_reader, "CONNECT_RETRY", 1.0)
    refusing = make_url(pg.url).set(port=1)  # nothing listens there
    assert pg._pg_reader is not None
    options = pg._pg_reader._options
    assert options is not None
    monkeypatch.setitem(options, "port", refusing.port)
    assert await pg.read_direct("SELECT 1", ()) is None
    assert await pg.read_direct("SELECT 1", ()) is None
    assert len(connects) == 1 and isinstance(connects[0], OSError)
    assert await _engine_pid(pg) > 0  # the engine reads all the same
    monkeypatch.setitem(options, "port", make_url(pg.url).port or 5432)
    await asyncio.sleep(1.05)
    assert await _pid(pg) is not None and len(connects) == 2
    await _one_slot(pg)


async def test_no_read_from_another_event_loop_nor_after_dispose(
    pg_database_url: str, connects: list[object]
) -> None:
    database = Database(pg_database_url, pool_size=1)
    pid = await _pid(database)
    assert pid is not None
    elsewhere = await anyio.to_thread.run_sync(
        lambda: asyncio.run(database.read_direct("SELECT 1", ()))
    )
    assert elsewhere is None and len(connects) == 1  # not even tried
    assert await _pid(database) == pid  # and its connection, of this loop, still kept
    await database.dispose()
    assert await database.read_direct("SELECT 1", ()) is None and len(connects) == 1

    async def gone() -> bool:
        return _activity(pg_database_url, "pid = %s", pid) == 0

    assert await _within(5, gone)


async def test_a_read_running_at_dispose_finishes_and_its_connection_closes(
    pg_database_url: str,
) -> None:
    database = Database(pg_database_url, pool_size=1)
    pid = await _pid(database)
    running = asyncio.create_task(database.read_direct("SELECT pg_sleep(0.3), 7", ()))
    await asyncio.sleep(0.1)
    await database.dispose()
    found = await running
    assert found is not None and [r[1] for r in found[1]] == [7]

    async def gone() -> bool:
        return _activity(pg_database_url, "pid = %s", pid) == 0

    assert await _within(5, gone)


async def test_a_pool_without_a_limit_reads_through_the_engine(
    pg_database_url: str, connects: list[object]
) -> None:
    database = Database(pg_database_url, pool_size=0)  # SQLAlchemy's "no limit"
    try:
        assert await database.read_direct("SELECT 1", ()) is None and connects == []
    finally:
        await database.dispose()


async def test_a_url_with_the_engines_own_options_reads_through_the_engine(
    pg_database_url: str, connects: list[object]
) -> None:
    url = make_url(pg_database_url).update_query_dict({"prepared_statement_cache_size": "0"})
    database = Database(url)
    try:
        assert await database.read_direct("SELECT 1", ()) is None
        assert await _engine_pid(database) > 0
        assert connects == []  # the reader never tried (the engine connects through its own)
    finally:
        await database.dispose()
