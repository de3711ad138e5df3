"""Reads of one statement on PostgreSQL straight through asyncpg, without SQLAlchemy's engine.

Through the engine every read is four round trips to the server (the pool's pre-ping, BEGIN, the
statement, ROLLBACK) with SQLAlchemy's execution context and result around them: the GraphQL
query for one trace cost 1,130-1,590 µs of server CPU on PostgreSQL, three times SQLite's. A
statement run on its own in autocommit is one round trip (asyncpg keeps it prepared), and under
READ COMMITTED it sees what the engine's transaction would: one snapshot for the statement.
"""

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

import asyncpg
from sqlalchemy.engine import URL, Dialect

# Connection options of SQLAlchemy's asyncpg adapter, not asyncpg's: a URL that tunes them (for
# pgbouncer, say) is read through the engine only, which knows what they mean.
_ENGINE_ONLY_OPTIONS = frozenset(
    {"prepared_statement_cache_size", "prepared_statement_name_func", "async_fallback"}
)


class _Adapted:
    """What the dialect's codec set-up reads of SQLAlchemy's adapted connection: the asyncpg
    connection inside it."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection


class PgReader:
    """Single read statements on asyncpg connections of its own, at most ``size`` of them,
    each kept open for the next read of the same event loop.

    ``run`` answers None whenever the engine should run the statement instead: every connection
    busy (the engine's pool waits or overflows, this does not wait), a connection that cannot be
    opened, any error (the connection is closed, and the engine reports the error as it does for
    every statement, or reconnects past a restart of the server), a URL with options of the
    engine's own, and another event loop than the connections' own.
    """

    def __init__(self, url: URL, dialect: Dialect, size: int) -> None:
        _, options = dialect.create_connect_args(url)
        self._options: dict[str, Any] | None = (
            None if _ENGINE_ONLY_OPTIONS & options.keys() else options
        )
        self._dialect = dialect
        self._size = size
        self._idle: list[asyncpg.Connection] = []
        self._open = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._descriptions: dict[str, list[tuple[str, int]]] = {}

    async def run(
        self, operation: str, parameters: Sequence[Any]
    ) -> tuple[list[tuple[str, int]], list[Any]] | None:
        """The statement's description (each column's name and type, as DBAPI's) and rows."""
        connection = await self._acquire()
        if connection is None:
            return None
        try:
            description = self._descriptions.get(operation)
            if description is None:
                # Each column's type, which some of the engine's conversions depend on (numbers);
                # the statement stays prepared in the connection's cache for the fetch.
                prepared = await connection.prepare(operation)
                description = [(a.name, a.type.oid) for a in prepared.get_attributes()]
            records = await connection.fetch(operation, *parameters)
        except BaseException as error:
            self._drop(connection)
            if isinstance(error, Exception):
                return None
            raise  # cancelled: the connection may be mid-statement, so it was closed above
        self._descriptions[operation] = description
        if self._closed:
            self._drop(connection)
        else:
            self._idle.append(connection)
        return description, records

    async def _acquire(self) -> asyncpg.Connection | None:
        if self._closed or self._options is None:
            return None
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif loop is not self._loop:
            return None
        if self._idle:
            return self._idle.pop()
        if self._open >= self._size:
            return None
        self._open += 1
        connection = None
        try:
            connection = await asyncpg.connect(**self._options)
            # JSON comes back decoded, as the engine's connections give it (its result
            # processors, which ``Precompiled.rows`` applies, expect that).
            await self._dialect.setup_asyncpg_json_codec(_Adapted(connection))  # type: ignore[attr-defined]
            await self._dialect.setup_asyncpg_jsonb_codec(_Adapted(connection))  # type: ignore[attr-defined]
        except BaseException as error:
            if connection is None:
                self._open -= 1
            else:
                self._drop(connection)
            if isinstance(error, Exception):
                return None
            raise
        return connection

    def _drop(self, connection: asyncpg.Connection) -> None:
        self._open -= 1
        connection.terminate()

    async def close(self) -> None:
        """For good: later reads go to the engine; a connection still reading closes when done."""
        self._closed = True
        idle, self._idle = self._idle, []
        if asyncio.get_running_loop() is not self._loop:  # theirs may be gone: no goodbye
            for connection in idle:
                with contextlib.suppress(Exception):
                    self._drop(connection)
            return
        self._open -= len(idle)
        await asyncio.gather(*(c.close() for c in idle), return_exceptions=True)
