"""The async engine, and the two ways services touch it: a read connection or a write transaction.

SQLite allows one writer at a time. Writers therefore take an in-process lock and open their
transaction with ``BEGIN IMMEDIATE``, so two writers never deadlock upgrading read locks and a
second process (a script using the Python API next to the server) waits on ``busy_timeout``
instead of failing.

Hot writes (feedback submissions, trace events) go through ``write_grouped``: a writer task per
event loop takes everything queued, runs it in one transaction and commits once, so one commit
(one fsync on SQLite, one WAL flush on PostgreSQL) serves every request that arrived meanwhile.
Each caller is answered only after that commit, with its own result or its own exception.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from agentcost.settings import Settings
from agentcost.sqlite_driver import OneTripDBAPI

_WRITE = "agentcost_write"
# Entries per group commit: enough to absorb every connection of a busy server, small enough
# that one group's statements stay a few milliseconds.
MAX_GROUP = 256

log = logging.getLogger("agentcost.db")

I = TypeVar("I")  # noqa: E741 - the item a grouped write stores
R = TypeVar("R")

GroupedOperation = Callable[[AsyncConnection, Sequence[I]], Awaitable[Sequence[R]]]
"""Stores several callers' items with as few statements as it can and returns one result per
item, in order. It must give each item the result it would have had alone, applied in order."""


@dataclass(slots=True)
class _Pending:
    operation: GroupedOperation[Any, Any]
    item: Any
    future: asyncio.Future[Any]


@dataclass(slots=True)
class _Writer:
    """The group-commit writer of one event loop: its queue and the task that drains it."""

    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[_Pending] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None


class Database:
    def __init__(self, url: str | URL, *, echo: bool = False, pool_size: int = 10) -> None:
        self.url = make_url(url)
        self.dialect = self.url.get_backend_name()
        self.engine: AsyncEngine = _create_engine(self.url, echo=echo, pool_size=pool_size)
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        self._writer: _Writer | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> "Database":
        return cls(
            settings.resolved_database_url, echo=settings.sql_echo, pool_size=settings.db_pool_size
        )

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that commits when the block ends; callers answer only after that."""
        if self._write_lock is None:
            async with self.engine.begin() as conn:
                yield conn
            return
        async with self._write_lock, self.engine.connect() as conn:
            conn = await conn.execution_options(**{_WRITE: True})
            async with conn.begin():
                yield conn

    async def write_grouped(self, operation: GroupedOperation[I, R], item: I) -> R:
        """Store ``item`` in the next group commit and return its result once committed.

        A failure of one item (its own exception, raised here) never fails the other items of
        its group. A caller cancelled while waiting leaves the writer running: an item not yet
        taken is skipped, one already taken is committed with its group and its answer dropped.
        """
        loop = asyncio.get_running_loop()
        writer = self._writer
        if writer is None or writer.loop is not loop or writer.task is None or writer.task.done():
            writer = self._writer = _Writer(loop)
            writer.task = loop.create_task(self._run_writer(writer), name="agentcost-writer")
        future: asyncio.Future[R] = loop.create_future()
        writer.queue.put_nowait(_Pending(operation, item, future))
        return await future

    async def _run_writer(self, writer: _Writer) -> None:
        while True:
            group = [await writer.queue.get()]
            while len(group) < MAX_GROUP and not writer.queue.empty():
                group.append(writer.queue.get_nowait())
            taken = len(group)
            group = [p for p in group if not p.future.cancelled()]
            try:
                if group:
                    await self._commit_group(group)
            except BaseException as exc:
                # Cancelled (dispose) or a bug here: nobody may wait for ever on an answer.
                error = exc if isinstance(exc, Exception) else RuntimeError("writer stopped")
                for pending in group:
                    _settle(pending.future, error=error)
                if not isinstance(exc, Exception):
                    raise
                log.exception("group commit failed outside any item", exc_info=exc)
            finally:
                for _ in range(taken):
                    writer.queue.task_done()

    async def _commit_group(self, group: list[_Pending]) -> None:
        """All items in one transaction; when any fails, again with one savepoint per item."""
        try:
            results: list[tuple[_Pending, Any]] = []
            async with self.write() as conn:
                by_operation: dict[GroupedOperation[Any, Any], list[_Pending]] = {}
                for pending in group:
                    by_operation.setdefault(pending.operation, []).append(pending)
                for operation, members in by_operation.items():
                    answers = await operation(conn, [p.item for p in members])
                    results += zip(members, answers, strict=True)
        except Exception as exc:
            if len(group) == 1:
                _settle(group[0].future, error=exc)
                return
            await self._commit_isolated(group)
            return
        for pending, answer in results:
            _settle(pending.future, result=answer)

    async def _commit_isolated(self, group: list[_Pending]) -> None:
        """The slow path after a failed group: each item alone, so a failure stays its own."""
        results: list[tuple[_Pending, Any]] = []
        try:
            async with self.write() as conn:
                for pending in group:
                    try:
                        async with conn.begin_nested():
                            [answer] = await pending.operation(conn, [pending.item])
                    except Exception as exc:
                        _settle(pending.future, error=exc)
                    else:
                        results.append((pending, answer))
        except Exception as exc:  # the commit itself failed: nothing of the group is stored
            for pending, _ in results:
                _settle(pending.future, error=exc)
            return
        for pending, answer in results:
            _settle(pending.future, result=answer)

    async def ping(self) -> None:
        async with self.read() as conn:
            await conn.exec_driver_sql("SELECT 1")

    async def dispose(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None and writer.task is not None and not writer.task.done():
            if writer.loop is asyncio.get_running_loop():
                await writer.queue.join()  # queued writes are committed and answered first
                writer.task.cancel()
                await asyncio.gather(writer.task, return_exceptions=True)
            else:
                writer.loop.call_soon_threadsafe(writer.task.cancel)
        await self.engine.dispose()


def _settle(
    future: asyncio.Future[Any], *, result: Any = None, error: BaseException | None = None
) -> None:
    """Answer a waiter unless it has gone (cancelled): its answer is then simply dropped."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _create_engine(url: URL, *, echo: bool, pool_size: int) -> AsyncEngine:
    if url.get_backend_name() != "sqlite":
        return create_async_engine(url, echo=echo, pool_size=pool_size, pool_pre_ping=True)
    database = url.database or ""
    if database and database != ":memory:":
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(
        url,
        echo=echo,
        module=OneTripDBAPI(),
        # Every checkout ends its own transaction (commit, or rollback on close); the pool's
        # extra rollback on return would only be one more trip to the connection's thread.
        pool_reset_on_return=None,
    )
    _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so BEGIN is ours to emit (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "journal_mode=WAL",
            "synchronous=FULL",
            "busy_timeout=10000",
            "foreign_keys=ON",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get(_WRITE, False)
        dbapi_connection = conn.connection.dbapi_connection
        dbapi_connection.begin_on_next_statement("BEGIN IMMEDIATE" if immediate else "BEGIN")
