"""The one-trip aiosqlite adapter: each statement is one trip to the connection's thread, and
SQLAlchemy still gets the rows, row counts and errors the stock adapter gives."""

from pathlib import Path

import aiosqlite
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from agentcost.db import Database

pytestmark = pytest.mark.anyio


@pytest.fixture
async def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'driver.db'}")
    async with database.write() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL)"))
    yield database
    await database.dispose()


@pytest.fixture
def trips(db: Database, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The calls made to aiosqlite's connection thread, by name of what ran there."""
    made: list[str] = []
    original = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: object, *args: object) -> object:
        made.append(getattr(fn, "__name__", repr(fn)))
        return await original(self, fn, *args)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return made


async def test_a_read_is_two_trips_to_the_thread(db: Database, trips: list[str]) -> None:
    await db.ping()  # the pool's connection exists, so connecting is not counted
    trips.clear()
    async with db.read() as conn:
        assert (await conn.execute(text("SELECT 41 + 1"))).scalar() == 42
    # BEGIN with the SELECT and its rows, then ROLLBACK; the stock adapter takes four calls
    # per statement and one for BEGIN.
    assert trips == ["_execute", "rollback"]


async def test_a_transaction_without_statements_costs_no_trip(
    db: Database, trips: list[str]
) -> None:
    await db.ping()
    trips.clear()
    async with db.write():
        pass
    async with db.read():
        pass
    assert trips == []


async def test_the_first_statement_opens_the_transaction_and_commit_ends_it(db: Database) -> None:
    async with db.write() as conn:
        await conn.execute(text("INSERT INTO t (id, name) VALUES (7, 'x')"))
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None and driver.in_transaction
    async with db.read() as conn:
        assert (await conn.execute(text("SELECT name FROM t WHERE id = 7"))).scalar() == "x"


async def test_rows_counts_and_many(db: Database) -> None:
    async with db.write() as conn:
        await conn.execute(
            text("INSERT INTO t (id, name) VALUES (:id, :name)"),
            [{"id": i, "name": f"n{i}"} for i in range(5)],
        )
        changed = await conn.execute(text("UPDATE t SET name = 'x' WHERE id >= 3"))
        assert changed.rowcount == 2
    async with db.read() as conn:
        rows = (await conn.execute(text("SELECT id, name FROM t ORDER BY id"))).all()
    assert [tuple(r) for r in rows] == [(0, "n0"), (1, "n1"), (2, "n2"), (3, "x"), (4, "x")]


async def test_errors_come_back_as_sqlalchemy_errors_and_roll_back(db: Database) -> None:
    with pytest.raises(IntegrityError, match="NOT NULL"):
        async with db.write() as conn:
            await conn.execute(text("INSERT INTO t (id, name) VALUES (1, 'kept?')"))
            await conn.execute(text("INSERT INTO t (id, name) VALUES (2, NULL)"))
    async with db.read() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar() == 0
