"""The aiosqlite adapter: reads in the event loop's thread unless over their budget, each write
statement one trip to the connection's thread, and SQLAlchemy still gets the rows, row counts
and errors the stock adapter gives; and the WAL checkpoints that run beside the commits."""

import asyncio
import contextlib
import logging
import shutil
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from agentcost import sqlite_driver
from agentcost.db import CHECKPOINT_INTERVAL, CHECKPOINT_LINGER, INLINE_ROWS, Database

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

    async def counted(
        self: aiosqlite.Connection, fn: object, *args: object, **kwargs: object
    ) -> object:
        made.append(getattr(fn, "__name__", repr(fn)))
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return made


async def test_a_read_takes_no_trip_to_the_thread(db: Database, trips: list[str]) -> None:
    await db.ping()  # the pool's connection exists, so connecting is not counted
    trips.clear()
    async with db.read() as conn:
        assert (await conn.execute(text("SELECT 41 + 1"))).scalar() == 42
    # BEGIN, the SELECT and the ROLLBACK ran in the event loop's thread; the stock adapter
    # takes six trips: four for the statement, one each for BEGIN and ROLLBACK.
    assert trips == []


async def test_a_read_over_the_budget_runs_again_in_the_thread(
    db: Database, trips: list[str]
) -> None:
    await db.ping()
    trips.clear()
    async with db.read() as conn:
        await conn.execute(text("INSERT INTO t (id, name) VALUES (1, 'x')"))  # never committed
        # Far more than the budget of SQLite's work: stopped in the loop, finished in the thread,
        # in the same transaction (it sees the row inserted above).
        slow = text(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000000) "
            "SELECT count(*), (SELECT count(*) FROM t) FROM n"
        )
        assert tuple((await conn.execute(slow)).one()) == (3_000_000, 1)
    assert trips == ["_execute"]
    async with db.read() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar() == 0


async def test_a_read_stopped_at_the_budget_goes_to_the_thread_until_a_retry_keeps_within_it(
    db: Database, trips: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its cost varies with its parameters: every RETRY_INLINE-th run tries the loop again."""
    monkeypatch.setattr(sqlite_driver, "RETRY_INLINE", 3)
    inline: list[int] = []
    original = sqlite_driver._execute_inline

    async def counted(*args: object) -> object:
        inline.append(1)
        return await original(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(sqlite_driver, "_execute_inline", counted)
    counting = text(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :n) "
        "SELECT count(*) FROM n"
    )
    await db.ping()
    async with db.read() as conn:
        ran = []
        for size in (3_000_000, 5, 5, 5, 5):
            inline.clear()
            trips.clear()
            assert (await conn.execute(counting, {"n": size})).scalar() == size
            ran.append((len(inline), len(trips)))
    # Stopped in the loop and run again in the thread; then straight to the thread twice; the
    # third run tries the loop, keeps within the budget, and the statement is forgotten.
    assert ran == [(1, 1), (0, 1), (0, 1), (1, 0), (1, 0)]
    async with db.read() as conn:
        inline.clear()
        trips.clear()
        assert (await conn.execute(counting, {"n": 3_000_000})).scalar() == 3_000_000
    async with db.read() as conn:
        # Known as slow, it opens its transaction in the thread, where BEGIN rides along.
        inline.clear()
        trips.clear()
        assert (await conn.execute(counting, {"n": 7})).scalar() == 7
        assert (inline, trips) == ([], ["_execute"])
        assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar() == 0
        assert trips == ["_execute"]  # the next statement of that transaction: in the loop


_SLOW = (
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300000) "
    "SELECT count(*) FROM n"
)


async def test_a_read_in_the_loop_sees_each_commit_and_cannot_write(
    db: Database, trips: list[str]
) -> None:
    assert _answer(await db.read_direct("SELECT count(*) AS n FROM t", ())) == (["n"], [(0,)])
    async with db.write() as conn:
        await conn.execute(text("INSERT INTO t (id, name) VALUES (1, 'a'), (2, 'b')"))
    trips.clear()
    names, rows = _answer(
        await db.read_direct("SELECT id, name FROM t WHERE id >= ? ORDER BY id", (1,))
    ) or (
        [],
        [],
    )
    assert (names, rows) == (["id", "name"], [(1, "a"), (2, "b")])
    assert trips == []  # no trip to any connection's thread
    # Anything it cannot answer goes back to the engine, which reports it as usual.
    assert await db.read_direct("DELETE FROM t", ()) is None
    assert await db.read_direct("SELECT * FROM missing", ()) is None
    assert await _count(db) == 2


async def test_a_read_over_the_budget_goes_to_the_engine_which_runs_it_in_the_thread(
    db: Database, trips: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    budgets: list[float] = []
    original = sqlite_driver._stop_after
    monkeypatch.setattr(
        sqlite_driver,
        "_stop_after",
        lambda sqlite, budget: (budgets.append(budget), original(sqlite, budget)),
    )
    assert await db.read_direct(_SLOW, ()) is None
    assert budgets == [sqlite_driver.INLINE_BUDGET]
    await db.ping()
    trips.clear()
    budgets.clear()
    # Known as slow to the engine's connections too: straight to the thread, no second stop.
    async with db.read() as conn:
        assert (await conn.execute(text(_SLOW))).scalar() == 300_000
    assert (trips, budgets) == (["_execute"], [])
    assert await db.read_direct(_SLOW, ()) is None and budgets == []  # not even tried again


class _Clock:
    """The driver's ``time``: each reading of either clock a step later than the last."""

    def __init__(self, wall_step: float, cpu_step: float) -> None:
        self.wall_step, self.cpu_step = wall_step, cpu_step
        self.wall = self.cpu = 0.0

    def perf_counter(self) -> float:
        self.wall += self.wall_step
        return self.wall

    def thread_time(self) -> float:
        self.cpu += self.cpu_step
        return self.cpu


@pytest.mark.parametrize("cpu_runs", [True, False])
async def test_a_read_is_stopped_by_the_budget_of_both_clocks_or_the_limit_of_the_wall_clock(
    db: Database, monkeypatch: pytest.MonkeyPatch, cpu_runs: bool
) -> None:
    """A read whose thread's CPU clock stands still (it waits for the GIL) runs on past the
    budget, up to the limit of the clock alone (a wait for the disk holds the loop too)."""
    clock = _Clock(wall_step=0.001, cpu_step=0.001 if cpu_runs else 0.0)
    monkeypatch.setattr(sqlite_driver, "time", clock)
    assert await db.read_direct(_SLOW, ()) is None
    held = clock.wall - clock.wall_step  # from the first reading, when the read began
    limit = sqlite_driver.INLINE_HOLD_LIMIT
    assert (sqlite_driver.INLINE_BUDGET < held < limit) if cpu_runs else (limit < held < 2 * limit)


async def test_a_stop_never_lands_on_the_pragmas_around_an_inline_read(
    db: Database, trips: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The budget's check runs at every step and always says stop: each read is stopped and
    runs again in the thread, and nothing stays set on the connection to stop the thread's
    next statement (a write of many rows)."""
    monkeypatch.setattr(sqlite_driver, "_PROGRESS_STEPS", 1)
    monkeypatch.setattr(sqlite_driver, "time", _Clock(wall_step=1.0, cpu_step=1.0))
    for _ in range(3):
        trips.clear()
        async with db.read() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM t WHERE id > 0"))).scalar() == 0
        assert trips == ["_execute"]
    async with db.write() as conn:
        await conn.execute(text(f"INSERT INTO t (name) SELECT 'n' FROM ({_SLOW})"))
        await conn.execute(text("INSERT INTO t (name) SELECT name FROM t"))
    assert await _count(db) == 2


async def test_reads_in_the_loop_step_aside_for_whoever_watches_statements(db: Database) -> None:
    engine = db.engine.sync_engine
    assert _answer(await db.read_direct("SELECT 1", ())) == (["1"], [(1,)])
    for name in ("before_cursor_execute", "after_cursor_execute"):
        event.listen(engine, name, _ignore)
        assert await db.read_direct("SELECT 1", ()) is None
        event.remove(engine, name, _ignore)
    logger = logging.getLogger("sqlalchemy.engine.Engine")
    level = logger.level
    logger.setLevel(logging.INFO)  # SQLAlchemy's statement log, configured without echo
    try:
        assert await db.read_direct("SELECT 1", ()) is None
    finally:
        logger.setLevel(level)
    engine.echo = True
    assert await db.read_direct("SELECT 1", ()) is None
    engine.echo = False
    assert _answer(await db.read_direct("SELECT 1", ())) == (["1"], [(1,)])


def _ignore(*_: object) -> None:
    return None


def _answer(found: tuple[Any, Any] | None) -> tuple[list[str], list[Any]] | None:
    """A direct read's column names and rows."""
    return None if found is None else ([column[0] for column in found[0]], found[1])


async def test_the_loops_connection_never_waits_for_a_lock_nor_writes(db: Database) -> None:
    assert _answer(await db.read_direct("PRAGMA busy_timeout", ())) == (["timeout"], [(0,)])
    assert _answer(await db.read_direct("PRAGMA query_only", ())) == (["query_only"], [(1,)])


async def test_no_read_in_the_loop_once_the_database_is_disposed(tmp_path: Path) -> None:
    """A request still finishing at shutdown is answered by the engine, which reopens its
    connection as it would; the loop's connection is not reopened behind the dispose."""
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'closed.db'}")
    assert _answer(await database.read_direct("SELECT 1", ())) == (["1"], [(1,)])
    await database.dispose()
    assert await database.read_direct("SELECT 1", ()) is None


async def test_no_reads_in_the_loop_on_a_database_in_memory() -> None:
    memory = Database("sqlite+aiosqlite:///:memory:")
    try:
        assert await memory.read_direct("SELECT 1", ()) is None
    finally:
        await memory.dispose()


async def _count(db: Database) -> int:
    async with db.read() as conn:
        return (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one()


@pytest.mark.parametrize("rows", [1, INLINE_ROWS, INLINE_ROWS + 1])
async def test_a_small_group_writes_in_the_loop_and_commits_in_the_thread(
    db: Database, trips: list[str], rows: int
) -> None:
    names = [f"n{i}" for i in range(rows)]
    await db.rehearse((_insert_lists, ["warm"]))  # the writer's connection exists
    trips.clear()
    assert await db.write_grouped(_insert_lists, names, rows=rows) == names
    # Only COMMIT waits for the disk in the thread; a bigger group's statements go there too.
    assert trips == (["commit"] if rows <= INLINE_ROWS else ["_execute", "commit"])
    assert await _count(db) == rows


@pytest.mark.parametrize(
    ("wall_step", "cpu_step", "slow"),
    [
        (0.0, 0.0, False),
        (1.5 * sqlite_driver.INLINE_BUDGET, 1.5 * sqlite_driver.INLINE_BUDGET, True),
        # The clock alone past the budget (the GIL or the disk), but within the limit.
        (1.5 * sqlite_driver.INLINE_BUDGET, 0.0, False),
        (1.5 * sqlite_driver.INLINE_HOLD_LIMIT, 0.0, True),
    ],
)
async def test_a_write_that_held_the_loop_over_the_budget_runs_in_the_thread_until_a_retry(
    db: Database,
    trips: list[str],
    monkeypatch: pytest.MonkeyPatch,
    wall_step: float,
    cpu_step: float,
    slow: bool,
) -> None:
    """SQLite cannot stop a write alone, so it is timed once done, by the reads' budget."""
    monkeypatch.setattr(sqlite_driver, "RETRY_INLINE", 3)
    await db.rehearse((_insert_lists, ["warm"]))
    clock = _Clock(wall_step, cpu_step)  # each write statement lasts one step of each clock
    monkeypatch.setattr(sqlite_driver, "time", clock)
    ran = []
    for quick in (False, True, True, True, True):
        if quick:
            clock.wall_step = clock.cpu_step = 0.0
        trips.clear()
        assert await db.write_grouped(_insert_lists, ["n"], rows=1) == ["n"]
        ran.append(trips.copy())
    in_loop, in_thread = ["commit"], ["_execute", "commit"]
    # Known as slow: to the thread twice, then the third run tries the loop, keeps within the
    # budget, and the statement is forgotten.
    assert ran == ([in_loop, in_thread, in_thread, in_loop, in_loop] if slow else [in_loop] * 5)
    assert await _count(db) == 5


async def test_a_write_that_waited_for_another_process_stays_in_the_loop_next_time(
    db: Database, trips: list[str], tmp_path: Path
) -> None:
    """A lock another process holds (an import beside the server) is not a slow statement."""
    await db.rehearse((_insert_lists, ["warm"]))
    other = sqlite3.connect(tmp_path / "driver.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.2, other.rollback)
    release.start()
    try:
        trips.clear()
        assert await db.write_grouped(_insert_lists, ["a"], rows=1) == ["a"]
        assert trips == ["_execute", "commit"]  # it waited for the lock in the thread
    finally:
        release.join()
        other.close()
    trips.clear()
    assert await db.write_grouped(_insert_lists, ["b"], rows=1) == ["b"]
    assert trips == ["commit"]


async def test_a_long_write_runs_in_the_thread_the_next_time(
    db: Database, trips: list[str]
) -> None:
    """The real clocks: a statement of 300,000 rows holds the loop far past the budget."""
    await db.rehearse((_many_rows, 1))
    for expected in (["commit"], ["_execute", "commit"]):
        trips.clear()
        assert await db.write_grouped(_many_rows, 300_000, rows=1) == 300_000
        assert trips == expected
    assert await _count(db) == 600_000


async def _many_rows(conn: AsyncConnection, counts: Sequence[int]) -> list[int]:
    [count] = counts
    many = text(
        "INSERT INTO t (name) SELECT 'n' FROM (WITH RECURSIVE n(i) AS "
        "(SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :n) SELECT i FROM n)"
    )
    return [(await conn.execute(many, {"n": count})).rowcount]


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
        # sqlite3 itself answers -1 for a statement that does not begin with its verb.
        copied = await conn.execute(
            text("WITH x AS (SELECT id + 10 AS id, name FROM t) INSERT INTO t SELECT * FROM x")
        )
        assert copied.rowcount == 5
        await conn.execute(text("DELETE FROM t WHERE id >= 10"))
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


async def test_commits_reach_the_database_file_by_the_background_checkpoint(
    db: Database, tmp_path: Path
) -> None:
    """The WAL is copied into the file beside the commits: with the connections' own checkpoint
    thousands of pages away, only the checkpointer thread can have put these rows there."""
    await asyncio.gather(*(db.write_grouped(_insert_names, f"n{i}", rows=1) for i in range(20)))
    copied = tmp_path / "file-only.db"
    deadline = time.monotonic() + 10
    while True:
        # The database file alone, as a crash would leave it without its WAL.
        shutil.copyfile(tmp_path / "driver.db", copied)
        names = _names_in(copied)
        if len(names) == 20 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert names == {f"n{i}" for i in range(20)}


async def test_one_checkpointer_thread_serves_commits_with_pauses_between_them(
    db: Database,
) -> None:
    """Commits further apart than the checkpoint interval (as batches are) share one thread,
    which ends once commits have stopped for longer than it lingers."""

    def checkpointers() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name == "agentcost-checkpoint"}

    seen: set[threading.Thread] = set()
    for i in range(5):
        await db.write_grouped(_insert_names, f"p{i}", rows=1)
        await asyncio.sleep(3 * CHECKPOINT_INTERVAL)
        seen |= checkpointers()
    [thread] = seen
    await asyncio.to_thread(thread.join, CHECKPOINT_LINGER + 5)
    assert not thread.is_alive() and not checkpointers()


async def _insert_names(conn: AsyncConnection, names: Sequence[str]) -> list[str]:
    await conn.execute(text("INSERT INTO t (name) VALUES (:name)"), [{"name": n} for n in names])
    return list(names)


async def _insert_lists(conn: AsyncConnection, lists: Sequence[list[str]]) -> list[list[str]]:
    """Each item is a list of names (one row each)."""
    await _insert_names(conn, [name for names in lists for name in names])
    return list(lists)


def _names_in(path: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        try:
            return {name for (name,) in conn.execute("SELECT name FROM t")}
        except sqlite3.OperationalError:  # not even the table reached the file yet
            return set()


def test_slow_statements_forget_the_least_recently_run_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sqlite_driver, "_SLOW_STATEMENTS", 2)
    slow = sqlite_driver.SlowStatements()
    slow.ran_inline("first", within_budget=False)
    slow.ran_inline("second", within_budget=False)
    assert not slow.tries_inline("first")  # run again (in the thread): now the most recent
    slow.ran_inline("third", within_budget=False)
    assert [slow.is_slow(s) for s in ("first", "second", "third")] == [True, False, True]
    assert slow.tries_inline("second")  # forgotten: tried in the loop again
