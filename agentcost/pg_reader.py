"""Reads of one statement on PostgreSQL straight through asyncpg, without SQLAlchemy's engine.

Through the engine every read is four round trips to the server (the pool's pre-ping, BEGIN, the
statement, ROLLBACK) with SQLAlchemy's execution context and result around them: the GraphQL
query for one trace cost 1,130-1,590 µs of server CPU on PostgreSQL, three times SQLite's. A
statement run on its own in autocommit is one round trip (prepared once per connection), and
under READ COMMITTED it sees what the engine's transaction would: one snapshot for the statement.
"""

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

import asyncpg
from asyncpg.prepared_stmt import PreparedStatement
from sqlalchemy.engine import URL, Dialect

# Connection options of SQLAlchemy's asyncpg adapter, not asyncpg's: a URL that tunes them (for
# pgbouncer, say) is read through the engine only, which knows what they mean.
_ENGINE_ONLY_OPTIONS = frozenset(
    {"prepared_statement_cache_size", "prepared_statement_name_func", "async_fallback"}
)
# Seconds without new connections after one could not be opened: a server that refuses them
# (down, or at max_connections) would otherwise get an attempt from every read.
CONNECT_RETRY = 5.0
# Statements kept prepared per connection, the least recently used dropped first: the service
# has some dozens of shapes, and the feedback listing one more per set of filters it is asked
# with, which must not push out the statements every page runs.
_PREPARED = 64
_CLOSE_TIMEOUT = 5.0  # seconds a closing connection may take to tell the server
# Seconds a read waits for one of the connections before the engine answers it: far more than a
# round trip, yet a lock that holds every connection (a migration's) stalls no read for long.
WAIT = 0.05


class _Adapted:
    """What the dialect's codec set-up reads of SQLAlchemy's adapted connection: the asyncpg
    connection inside it."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection


Description = list[tuple[str, int]]  # each column's name and type, as DBAPI's


class _Connection:
    """An asyncpg connection with its prepared statements and their descriptions, by SQL text
    (asyncpg builds a statement's description anew, name by name, on every call)."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self.connection = connection
        self.prepared: dict[str, tuple[PreparedStatement, Description]] = {}


class PgReader:
    """Single read statements on asyncpg connections of its own, at most ``size`` of them (a
    read waits up to ``WAIT`` for one), each kept open for the next read of the same event loop.

    ``run`` answers None whenever the engine should run the statement instead: no connection
    free within ``WAIT`` or to be had (then none tried for ``CONNECT_RETRY`` seconds), any
    error (the engine reports it as it does for every statement; a connection the server ended
    is closed, one it merely refused a statement on is kept), a URL with options of the engine's
    own, a ``size`` below one (SQLAlchemy's pool without a limit), another event loop than the
    connections' own, and after ``close``.
    """

    def __init__(self, url: URL, dialect: Dialect, size: int) -> None:
        _, options = dialect.create_connect_args(url)
        self._options: dict[str, Any] | None = (
            None if _ENGINE_ONLY_OPTIONS & options.keys() or size < 1 else options
        )
        self._dialect = dialect
        self._size = size
        self._idle: list[_Connection] = []
        self._slots: asyncio.Semaphore | None = None  # one per connection in use
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connect_after = 0.0
        self._closing: set[asyncio.Task[None]] = set()
        self._closed = False

    async def run(
        self, operation: str, parameters: Sequence[Any]
    ) -> tuple[Description, list[Any]] | None:
        """The statement's description and rows. The columns' types are those of the
        statement the rows came from; some of the engine's conversions depend on them
        (numbers)."""
        held = await self._acquire()
        if held is None:
            return None
        try:
            found = held.prepared.pop(operation, None)  # put back last: the most recently used
            if found is None:
                if len(held.prepared) >= _PREPARED:
                    del held.prepared[next(iter(held.prepared))]
                prepared = await held.connection.prepare(operation)
                description = [(a.name, a.type.oid) for a in prepared.get_attributes()]
                found = prepared, description
            held.prepared[operation] = found
            records = await found[0].fetch(*parameters)
        except asyncpg.PostgresError:
            # The server refused the statement (or its prepared form went stale): the
            # connection itself is fine.
            held.prepared.pop(operation, None)
            self._release(held)
            return None
        except BaseException as error:
            self._drop(held)
            if isinstance(error, Exception):
                return None
            raise
        self._release(held)
        return found[1], records

    async def _acquire(self) -> _Connection | None:
        if self._closed or self._options is None:
            return None
        loop = asyncio.get_running_loop()
        if self._slots is None:
            self._loop, self._slots = loop, asyncio.Semaphore(self._size)
        elif loop is not self._loop:
            return None
        # A read waits a little for a connection rather than going to the engine: its statement
        # takes a round trip, where the engine's four would cost the loop more than the wait.
        try:
            async with asyncio.timeout(WAIT):
                await self._slots.acquire()
        except TimeoutError:
            return None
        try:
            while self._idle:
                held = self._idle.pop()
                if not held.connection.is_closed():  # else the server ended it (a restart)
                    return held
            if self._closed or loop.time() < self._connect_after:
                self._slots.release()
                return None
            connection = await asyncpg.connect(**self._options)
        except BaseException as error:
            self._slots.release()
            if isinstance(error, Exception):
                self._connect_after = loop.time() + CONNECT_RETRY
                return None
            raise
        held = _Connection(connection)
        try:
            # JSON comes back decoded, as the engine's connections give it (its result
            # processors, which ``Precompiled.rows`` applies, expect that).
            await self._dialect.setup_asyncpg_json_codec(_Adapted(connection))  # type: ignore[attr-defined]
            await self._dialect.setup_asyncpg_jsonb_codec(_Adapted(connection))  # type: ignore[attr-defined]
        except BaseException as error:
            self._drop(held)
            if isinstance(error, Exception):
                return None
            raise
        return held

    def _release(self, held: _Connection) -> None:
        if self._closed:
            self._drop(held)
            return
        self._idle.append(held)
        assert self._slots is not None
        self._slots.release()

    def _drop(self, held: _Connection) -> None:
        """A connection taken for a read, not to be used again: its slot is free."""
        assert self._slots is not None
        self._slots.release()
        self._close(held)

    def _close(self, held: _Connection) -> None:
        """In the background, politely: a statement cancelled mid-way (the client went away) gets
        the cancel request asyncpg sends for it, which ``terminate`` would drop, so the server
        would run it to its end."""
        task = asyncio.get_running_loop().create_task(held.connection.close(timeout=_CLOSE_TIMEOUT))
        self._closing.add(task)
        task.add_done_callback(self._closed_one)

    def _closed_one(self, task: asyncio.Task[None]) -> None:
        self._closing.discard(task)
        if not task.cancelled():
            task.exception()  # a connection that could not say goodbye is gone all the same

    async def close(self) -> None:
        """For good: later reads go to the engine; a connection still reading closes when done."""
        self._closed = True
        idle, self._idle = self._idle, []
        loop = self._loop
        if loop is None:
            return
        if loop is not asyncio.get_running_loop():  # its connections belong to that loop
            if not loop.is_closed():
                for held in idle:
                    with contextlib.suppress(RuntimeError):  # it closed meanwhile
                        loop.call_soon_threadsafe(held.connection.terminate)
            return
        for held in idle:
            self._close(held)
        await asyncio.gather(*self._closing, return_exceptions=True)
