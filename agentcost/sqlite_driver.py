"""aiosqlite, with each statement done in one trip to its thread instead of four.

aiosqlite runs a sqlite3 connection in a thread of its own and answers every call through the
event loop: SQLAlchemy's adapter makes four such calls per statement (open a cursor, execute,
fetch all rows, close), each a thread hand-off and a loop wake-up of its own. On the hot paths
(a vote, a small read) those hand-offs cost more than SQLite's work. This adapter runs the
whole statement (execute, fetch, close) in one call and keeps the description, row count and
rows it brings back, which is all SQLAlchemy reads from a client-side cursor.

``BEGIN`` rides along too: ``begin_on_next_statement`` keeps it until the transaction's first
statement and sends both in one call; a transaction that runs no statement costs no call at all.
The end of a read transaction costs no wait: its ROLLBACK is queued to the connection's thread,
where it runs before anything the next user of the connection sends, and nobody awaits it.

It reaches into aiosqlite for three things it has kept for years: ``Connection._execute`` (run a
function in the connection's thread), ``Connection._tx`` (that thread's queue, whose entries
may come without a future to answer) and ``Connection._conn`` (the sqlite3 connection there).
"""

import logging
import sqlite3
from collections import deque
from functools import partial
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

log = logging.getLogger("agentcost.db")


def _execute(
    connection: aiosqlite.Connection,
    begin: str | None,
    operation: str,
    parameters: Any,
    many: bool,
) -> _Outcome:
    """In the connection's thread: the statement (once, or once per parameter set) and, when
    it returns rows, all of them."""
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


def _end_read(connection: aiosqlite.Connection) -> None:
    """In the connection's thread: end its read transaction (nobody waits for the answer)."""
    try:
        connection._conn.rollback()
    except sqlite3.Error:
        log.exception("ending a read transaction failed")


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
        try:
            outcome: _Outcome = await_(self._run_async(operation, parameters, many))
        except Exception as error:
            self._adapt_connection._handle_exception(error)
        self._description, self._rowcount, self._lastrowid, rows = outcome
        self._rows = deque(rows)

    async def _run_async(self, operation: Any, parameters: Any, many: bool) -> _Outcome:
        adapted = self._adapt_connection
        async with adapted._execute_mutex:
            begin, adapted.pending_begin = adapted.pending_begin, None
            if begin is not None:
                adapted.reading = begin == READ_BEGIN
            return await self._connection._execute(
                _execute, self._connection, begin, operation, parameters, many
            )

    async def _async_soft_close(self) -> None:
        return None

    def close(self) -> None:
        self._rows.clear()


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ("pending_begin", "reading")
    _cursor_cls = OneTripCursor

    def __init__(self, dbapi: Any, connection: aiosqlite.Connection) -> None:
        super().__init__(dbapi, connection)
        self.pending_begin: str | None = None
        self.reading = False  # the open transaction began as a read (deferred BEGIN)

    def begin_on_next_statement(self, begin: str) -> None:
        """Open the transaction with ``begin`` (BEGIN, BEGIN IMMEDIATE) in the same call as
        its first statement."""
        self.pending_begin = begin

    def rollback(self) -> None:
        if self.pending_begin is not None:  # nothing began in SQLite: nothing to undo
            self.pending_begin = None
            return
        if self.reading:
            # Queued before the connection goes back to the pool, so it runs ahead of the
            # next user's statements; a read has nothing to undo that anyone must wait for.
            self.reading = False
            self._connection._tx.put_nowait((None, partial(_end_read, self._connection)))
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
        connection = aiosqlite.connect(*arg, **kw)
        connection._thread.daemon = True  # as SQLAlchemy does: never hold up interpreter exit
        return OneTripConnection(self, await_(connection))
