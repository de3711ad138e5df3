"""aiosqlite, with reads run in the event loop's thread and each write statement done in one
trip to the connection's thread instead of four.

aiosqlite runs a sqlite3 connection in a thread of its own and answers every call through the
event loop: SQLAlchemy's adapter makes four such calls per statement (open a cursor, execute,
fetch all rows, close), each a thread hand-off and a loop wake-up of its own. Measured here, one
trip costs about 0.13 ms (a ``SELECT 1`` 143 µs through it, 8 µs through sync SQLAlchemy), more
than SQLite's own work on most statements of this service.

Reads (statements of a transaction opened by ``READ_BEGIN``) therefore run where they are
asked, in the event loop's thread, under a budget: SQLite's progress handler stops a read still
running after ``INLINE_BUDGET`` and it runs again in the connection's thread, where slow
analytics belong, so the loop is never held longer than that. The statements of a small write
transaction run there too when its connection says so (``inline_writes``: the group commits of
a few rows, see ``db.INLINE_ROWS``), except those that held the loop past the same budget last
time (a vote's roll-up upkeep on a trace already stored: 12 ms for 32 votes); other writes, and
every COMMIT, go to the thread, the whole statement (execute, fetch, close) in one call, keeping
the description, row count and rows it brings back, which is all SQLAlchemy reads from a
client-side cursor.

Single read statements can skip SQLAlchemy's async engine altogether: ``LoopReader`` runs them
on a sqlite3 connection of its own, in the event loop's thread, under the same budget.

``BEGIN`` rides along too: ``begin_on_next_statement`` keeps it until the transaction's first
statement and sends both in one call; a transaction that runs no statement costs no call at all.

It reaches into aiosqlite for two things it has kept for years: ``Connection._execute`` (run a
function in the connection's thread) and ``Connection._conn`` (the sqlite3 connection there,
opened with ``check_same_thread=False``; each statement is awaited before the next, so the
two threads never use it at once).
"""

import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

_Outcome = tuple[Any, int, int | None, list[Any]]  # description, rowcount, lastrowid, rows
READ_BEGIN = "BEGIN"  # a deferred transaction: it reads until a statement writes
BUSY_TIMEOUT_MS = 10_000  # how long a statement in the thread waits for another's lock
# Seconds a read statement may hold the event loop. A trip to the connection's thread costs
# about 0.13 ms of wake-ups and hand-offs, several times what SQLite spends on most reads; a
# statement still running at the budget is stopped and run again in the thread.
INLINE_BUDGET = 0.002
# Seconds of the clock after which a read in the loop's thread is stopped even though its own
# CPU time is within the budget (it waited for the GIL or the disk; see ``_Hold``). The
# interpreter hands the GIL over every 5 ms (``sys.getswitchinterval``).
INLINE_HOLD_LIMIT = 0.008
# SQLite virtual-machine instructions between two looks at the clock (some microseconds).
_PROGRESS_STEPS = 2_000
# A read statement SQLite stopped at the budget, or a write found over it, goes straight to the
# thread afterwards (each stop wastes the budget, and analytics at a million traces overran it
# every time); every this many runs it tries the loop again, and one that keeps within the
# budget is forgotten.
RETRY_INLINE = 64
# Statements an engine remembers as slow, the least recently run forgotten first; the service
# has some dozens of statement shapes, and the two listings one per set of filters.
_SLOW_STATEMENTS = 256
# What an inline read may meet that its thread would get past: the budget, or a lock held by
# another connection (which the thread waits for, as busy_timeout says, and the loop may not).
_GIVE_UP = (sqlite3.SQLITE_INTERRUPT, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)

log = logging.getLogger("agentcost.db")


def _execute(
    sqlite: sqlite3.Connection,
    begin: str | None,
    operation: str,
    parameters: Any,
    many: bool,
) -> _Outcome:
    """The statement (once, or once per parameter set) and, when it returns rows, all of them;
    in the connection's thread, or in the loop's (``_execute_inline``)."""
    cursor = sqlite.cursor()
    try:
        if begin is not None:
            cursor.execute(begin)
        changes = sqlite.total_changes
        if many:
            cursor.executemany(operation, parameters)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        rowcount = cursor.rowcount
        if rowcount < 0 and not description:
            # sqlite3 counts only statements that begin with INSERT, UPDATE, DELETE or REPLACE;
            # a WITH ... INSERT (the roll-up images) changes rows all the same.
            rowcount = sqlite.total_changes - changes
        return description, rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


async def _execute_inline(
    connection: aiosqlite.Connection,
    begin: str | None,
    operation: str,
    parameters: Any,
    many: bool,
    budget: float | None,
) -> tuple[_Outcome | None, str | None]:
    """In the event loop's thread: ``_execute``, or no outcome when SQLite gave up (over the
    ``budget``, or it would have waited for another connection's lock) and undid the statement,
    which can then run again in the thread; with it, ``begin`` if that is still to run.

    A coroutine that never suspends: SQLAlchemy's async engine refuses a statement that awaited
    nothing, as it would for a driver that is not async."""
    sqlite = connection._conn
    sqlite.execute("PRAGMA busy_timeout=0")
    # Only now: SQLite counts a reused statement's steps across its runs, so a handler set
    # before the PRAGMA could stop it, outside the ``finally`` that clears the handler, which
    # would then stay on the connection and stop its next long statement in the thread.
    if budget is not None:
        _stop_after(sqlite, budget)
    try:
        if begin is not None:
            try:
                sqlite.execute(begin)
            except sqlite3.OperationalError as error:
                if _gave_up(error):
                    return None, begin
                raise
        try:
            return _execute(sqlite, None, operation, parameters, many), None
        except sqlite3.OperationalError as error:
            if _gave_up(error):
                return None, None
            raise
    finally:
        if budget is not None:
            sqlite.set_progress_handler(None, 0)
        sqlite.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


def _stop_after(sqlite: sqlite3.Connection, budget: float) -> None:
    """SQLite stops the connection's statement (SQLITE_INTERRUPT) once ``_Hold(budget)`` is
    over; clear it with ``set_progress_handler(None, 0)``."""
    sqlite.set_progress_handler(_Hold(budget).over, _PROGRESS_STEPS)


class _Hold:
    """How long a statement has held the event loop's thread: ``over`` once it has run
    ``budget`` seconds both of the clock and of its thread's own CPU time, or
    ``INLINE_HOLD_LIMIT`` of the clock alone.

    The clock alone stopped reads that had waited for the GIL: SQLite lets go of it while it
    works, and its progress handler (Python) needs it back. With other threads busy (the
    connections' threads, running the statements stopped before), reads well within the budget
    were stopped, and their next runs went to those threads too: on the 50-trace GraphQL page
    at 32 connections, one read in seven. CPU time alone would not count a wait for the disk,
    during which the loop could have served others: the limit bounds that."""

    __slots__ = ("_cpu_deadline", "_deadline", "_limit")

    def __init__(self, budget: float) -> None:
        start = time.perf_counter()
        self._deadline, self._limit = start + budget, start + INLINE_HOLD_LIMIT
        self._cpu_deadline = time.thread_time() + budget

    def over(self) -> bool:
        now = time.perf_counter()
        return now > self._limit or (
            now > self._deadline and time.thread_time() > self._cpu_deadline
        )


def _gave_up(error: sqlite3.Error) -> bool:
    return getattr(error, "sqlite_errorcode", 0) & 0xFF in _GIVE_UP


class SlowStatements:
    """Statements that held the loop's thread too long, with the runs each has had in the
    connection's thread since: reads SQLite stopped there (by the budget, or rarely a lock), and
    writes of a group commit found over the budget once done (SQLite cannot stop a write alone:
    it would undo the whole transaction). One per engine, shared by its connections and its
    ``LoopReader``: a statement slow on one of them is slow on all."""

    def __init__(self) -> None:
        self._runs: dict[str, int] = {}

    def tries_inline(self, operation: str) -> bool:
        """Whether a statement starts in the loop's thread: not one slow there lately, but that
        one again every ``RETRY_INLINE`` runs, as its cost varies with its parameters."""
        runs = self._runs.pop(operation, None)
        if runs is None:
            return True
        self._runs[operation] = runs + 1  # reinserted: the most recently run
        return (runs + 1) % RETRY_INLINE == 0

    def is_slow(self, operation: str) -> bool:
        """Known as slow; unlike ``tries_inline``, not counted as a run."""
        return operation in self._runs

    def ran_inline(self, operation: str, within_budget: bool) -> None:
        if within_budget:
            self._runs.pop(operation, None)
            return
        if operation not in self._runs and len(self._runs) >= _SLOW_STATEMENTS:
            del self._runs[next(iter(self._runs))]  # the least recently run
        self._runs[operation] = 0


class LoopReader:
    """Single read statements on a SQLite file, run in the calling thread (the event loop's) on
    a sqlite3 connection of their own, without SQLAlchemy's async engine.

    Through the engine, reading one trace by its id cost 200-270 µs of the loop's time (a pool
    checkout, a greenlet switch per call, the execution context and result, a BEGIN and a
    ROLLBACK), of which SQLite's own work is about 15 µs; a GraphQL query for one trace went
    from 850 to 430 µs of server CPU without it. The connection runs each statement in
    autocommit mode, so each is its own snapshot: that suits reads of one statement only.

    ``run`` answers None whenever the engine should run the statement instead: one known as slow
    (``SlowStatements``), one SQLite stopped at the budget or on a lock, any error (the engine then
    reports it as for every other statement), or the connection busy in another thread.
    """

    def __init__(self, path: str, slow_statements: SlowStatements) -> None:
        self._path = path
        self._slow_statements = slow_statements
        self._lock = threading.Lock()
        self._sqlite: sqlite3.Connection | None = None
        self._closed = False

    def run(self, operation: str, parameters: Sequence[Any]) -> tuple[Any, list[Any]] | None:
        """The statement's description (DBAPI's: each column's name, then its type code) and
        rows."""
        if self._slow_statements.is_slow(operation) or not self._lock.acquire(blocking=False):
            return None
        try:
            if self._closed:  # a request still finishing at shutdown: the engine answers it
                return None
            try:
                sqlite = self._sqlite or self._connect()
            except sqlite3.Error:
                return None
            _stop_after(sqlite, INLINE_BUDGET)
            try:
                cursor = sqlite.execute(operation, parameters)
                rows = cursor.fetchall()
            except sqlite3.Error as error:
                if _gave_up(error):
                    self._slow_statements.ran_inline(operation, within_budget=False)
                return None
            finally:
                sqlite.set_progress_handler(None, 0)
            return cursor.description, rows
        finally:
            self._lock.release()

    def _connect(self) -> sqlite3.Connection:
        # Autocommit (isolation_level None); never waits for a lock in the loop's thread; and
        # cannot write, whatever it is given.
        sqlite = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            sqlite.execute("PRAGMA busy_timeout=0")
            sqlite.execute("PRAGMA query_only=ON")
        except sqlite3.Error:
            sqlite.close()
            raise
        self._sqlite = sqlite
        return sqlite

    def close(self) -> None:
        """For good: later reads go to the engine."""
        with self._lock:
            self._closed = True
            if self._sqlite is not None:
                self._sqlite.close()
                self._sqlite = None


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    __slots__ = ("_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        # No cursor is opened here: each execute opens and closes its own in the thread.
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        self._run(operation, () if parameters is None else parameters, many=False)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        self._run(operation, seq_of_parameters, many=True)

    def _run(self, operation: Any, parameters: Any, *, many: bool) -> None:
        adapted = self._adapt_connection
        begin, adapted.pending_begin = adapted.pending_begin, None
        if begin is not None:
            adapted.reading = begin == READ_BEGIN
        try:
            outcome = None
            reading = adapted.reading
            if (adapted.inline_writes or reading) and adapted.slow_statements.tries_inline(
                operation
            ):
                # A read is stopped at the budget (``_stop_after``); a write is timed instead.
                hold = None if reading else _Hold(INLINE_BUDGET)
                outcome, begin = await_(
                    _execute_inline(
                        self._connection,
                        begin,
                        operation,
                        parameters,
                        many,
                        INLINE_BUDGET if reading else None,
                    )
                )
                if hold is None:
                    adapted.slow_statements.ran_inline(operation, outcome is not None)
                elif outcome is not None:  # not a lock another process holds: that passes
                    # A write cannot be stopped (see ``SlowStatements``): one that held the loop
                    # too long runs in the thread next time, beside the loop, not in its way.
                    adapted.slow_statements.ran_inline(operation, not hold.over())
            if outcome is None:
                outcome = await_(self._run_async(begin, operation, parameters, many))
        except Exception as error:
            adapted._handle_exception(error)
        self._description, self._rowcount, self._lastrowid, rows = outcome
        self._rows = deque(rows)

    async def _run_async(
        self, begin: str | None, operation: Any, parameters: Any, many: bool
    ) -> _Outcome:
        async with self._adapt_connection._execute_mutex:
            return await self._connection._execute(
                _execute, self._connection._conn, begin, operation, parameters, many
            )

    async def _async_soft_close(self) -> None:
        return None

    def close(self) -> None:
        self._rows.clear()


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ("inline_writes", "pending_begin", "reading", "slow_statements")
    _cursor_cls = OneTripCursor

    def __init__(self, dbapi: "OneTripDBAPI", connection: aiosqlite.Connection) -> None:
        super().__init__(dbapi, connection)
        self.pending_begin: str | None = None
        self.reading = False  # the open transaction began as a read (deferred BEGIN)
        # Write statements in the event loop's thread too, with no budget (SQLite undoes the
        # whole transaction of a write it stops); COMMIT, which waits for the disk, stays in
        # the connection's thread.
        self.inline_writes = False
        self.slow_statements = dbapi.slow_statements

    def begin_on_next_statement(self, begin: str) -> None:
        """Open the transaction with ``begin`` (BEGIN, BEGIN IMMEDIATE) in the same call as
        its first statement."""
        self.pending_begin = begin

    def rollback(self) -> None:
        if self.pending_begin is not None:  # nothing began in SQLite: nothing to undo
            self.pending_begin = None
            return
        if self.reading:
            # Reads run in the event loop's thread (see ``_execute_inline``), and so does their
            # end: a ROLLBACK of a read only lets go of its snapshot.
            self.reading = False
            self._connection._conn.rollback()
            return
        super().rollback()

    def commit(self) -> None:
        if self.pending_begin is not None:
            self.pending_begin = None
            return
        self.reading = False
        super().commit()


class OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """The DBAPI module handed to ``create_async_engine(module=...)``."""

    def __init__(self) -> None:
        super().__init__(aiosqlite, sqlite3)
        self.slow_statements = SlowStatements()

    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        # Reads use the connection from the event loop's thread, writes from its own thread;
        # never both at once, as each statement is awaited before the next.
        connection = aiosqlite.connect(*arg, **{**kw, "check_same_thread": False})
        connection._thread.daemon = True  # as SQLAlchemy does: never hold up interpreter exit
        return OneTripConnection(self, await_(connection))
