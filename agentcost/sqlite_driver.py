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
a few rows, see ``db.INLINE_ROWS``); other writes, and every COMMIT, go to the thread, the whole
statement (execute, fetch, close) in one call, keeping the description, row count and rows it
brings back, which is all SQLAlchemy reads from a client-side cursor.

``BEGIN`` rides along too: ``begin_on_next_statement`` keeps it until the transaction's first
statement and sends both in one call; a transaction that runs no statement costs no call at all.

It reaches into aiosqlite for two things it has kept for years: ``Connection._execute`` (run a
function in the connection's thread) and ``Connection._conn`` (the sqlite3 connection there,
opened with ``check_same_thread=False``; each statement is awaited before the next, so the
two threads never use it at once).
"""

import logging
import sqlite3
import time
from collections import deque
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
# SQLite virtual-machine instructions between two looks at the clock (some microseconds).
_PROGRESS_STEPS = 2_000
# A read statement SQLite stopped at the budget goes straight to the thread afterwards (each
# stop wastes the budget, and analytics at a million traces overran it every time); every this
# many runs it tries the loop again, and one that keeps within the budget is forgotten.
RETRY_INLINE = 64
# Statements a connection remembers as slow, oldest forgotten first; the service has some
# dozens of statement shapes.
_SLOW_READS = 256
# What an inline read may meet that its thread would get past: the budget, or a lock held by
# another connection (which the thread waits for, as busy_timeout says, and the loop may not).
_GIVE_UP = (sqlite3.SQLITE_INTERRUPT, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)

log = logging.getLogger("agentcost.db")


def _execute(
    connection: aiosqlite.Connection,
    begin: str | None,
    operation: str,
    parameters: Any,
    many: bool,
) -> _Outcome:
    """The statement (once, or once per parameter set) and, when it returns rows, all of them;
    in the connection's thread, or in the loop's (``_execute_inline``)."""
    sqlite = connection._conn
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
    if budget is not None:
        deadline = time.perf_counter() + budget
        sqlite.set_progress_handler(lambda: time.perf_counter() > deadline, _PROGRESS_STEPS)
    sqlite.execute("PRAGMA busy_timeout=0")
    try:
        if begin is not None:
            try:
                sqlite.execute(begin)
            except sqlite3.OperationalError as error:
                if _gave_up(error):
                    return None, begin
                raise
        try:
            return _execute(connection, None, operation, parameters, many), None
        except sqlite3.OperationalError as error:
            if _gave_up(error):
                return None, None
            raise
    finally:
        if budget is not None:
            sqlite.set_progress_handler(None, 0)
        sqlite.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


def _gave_up(error: sqlite3.OperationalError) -> bool:
    return getattr(error, "sqlite_errorcode", 0) & 0xFF in _GIVE_UP


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
            if adapted.inline_writes or (adapted.reading and adapted.tries_inline(operation)):
                budget = INLINE_BUDGET if adapted.reading else None
                outcome, begin = await_(
                    _execute_inline(self._connection, begin, operation, parameters, many, budget)
                )
                if adapted.reading:
                    adapted.ran_inline(operation, outcome is not None)
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
                _execute, self._connection, begin, operation, parameters, many
            )

    async def _async_soft_close(self) -> None:
        return None

    def close(self) -> None:
        self._rows.clear()


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ("inline_writes", "pending_begin", "reading", "slow_reads")
    _cursor_cls = OneTripCursor

    def __init__(self, dbapi: Any, connection: aiosqlite.Connection) -> None:
        super().__init__(dbapi, connection)
        self.pending_begin: str | None = None
        self.reading = False  # the open transaction began as a read (deferred BEGIN)
        # Write statements in the event loop's thread too, with no budget (SQLite undoes the
        # whole transaction of a write it stops); COMMIT, which waits for the disk, stays in
        # the connection's thread.
        self.inline_writes = False
        # Read statements that SQLite stopped in the loop's thread (by the budget, or rarely a
        # lock), with the runs each has had in the connection's thread since.
        self.slow_reads: dict[str, int] = {}

    def tries_inline(self, operation: str) -> bool:
        """Whether a read starts in the loop's thread: not one stopped there lately, but that
        one again every ``RETRY_INLINE`` runs, as its cost varies with its parameters."""
        runs = self.slow_reads.get(operation)
        if runs is None:
            return True
        self.slow_reads[operation] = runs + 1
        return (runs + 1) % RETRY_INLINE == 0

    def ran_inline(self, operation: str, finished: bool) -> None:
        if finished:
            self.slow_reads.pop(operation, None)
            return
        if operation not in self.slow_reads and len(self.slow_reads) >= _SLOW_READS:
            del self.slow_reads[next(iter(self.slow_reads))]
        self.slow_reads[operation] = 0

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

    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        # Reads use the connection from the event loop's thread, writes from its own thread;
        # never both at once, as each statement is awaited before the next.
        connection = aiosqlite.connect(*arg, **{**kw, "check_same_thread": False})
        connection._thread.daemon = True  # as SQLAlchemy does: never hold up interpreter exit
        return OneTripConnection(self, await_(connection))
