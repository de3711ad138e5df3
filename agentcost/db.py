"""The async engine, and the two ways services touch it: a read connection or a write transaction.

SQLite allows one writer at a time. Writers therefore take an in-process lock and open their
transaction with ``BEGIN IMMEDIATE``, so two writers never deadlock upgrading read locks and a
second process (a script using the Python API next to the server) waits on ``busy_timeout``
instead of failing.

Hot writes (feedback submissions, trace events) go through ``write_grouped``: a writer task per
event loop takes everything queued, runs it in one transaction and commits once, so one commit
(one fsync on SQLite, one WAL flush on PostgreSQL) serves every request that arrived meanwhile.
Each caller is answered only after that commit, with its own result or its own exception.

On SQLite the writer has a connection of its own, with temporary tables in memory (the roll-up
delta of each group lives there), and no commit copies the WAL into the database file: a
``_Checkpointer`` thread does that beside the commits.
"""

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic_core import from_json, to_json
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from agentcost.pg_reader import PgReader
from agentcost.settings import Settings
from agentcost.sqlite_driver import BUSY_TIMEOUT_MS, READ_BEGIN, LoopReader, OneTripDBAPI

_WRITE = "agentcost_write"
_INLINE = "agentcost_inline_writes"
# Entries per group commit: enough to absorb every connection of a busy server, small enough
# that one group's statements stay a few milliseconds.
MAX_GROUP = 256
# Turns of the event loop the writer lets pass between a group's first entry and taking the
# group. Requests that arrive together reach the queue over a few turns each (the socket read,
# then the request's task, then its handler), and a group's fixed cost (its statements and
# commit) is about that of forty more votes. Taking only what was queued at once, groups at 32
# connections held 16 votes on average; after four turns, 32, for about a tenth less server
# CPU per vote (a sixth per trace event). An idle server's write waits four empty turns of the
# loop, some microseconds.
GATHER_TURNS = 4
# WAL pages after which a commit checkpoints in line, SQLite's own way (its default is 1,000).
# Only a backstop: the checkpointer thread copies the WAL long before, but a PASSIVE checkpoint
# racing a stream of commits never finishes it, and only a finished one lets the next writer
# start the WAL again from its beginning.
WAL_BACKSTOP_PAGES = 10_000
# Seconds between background checkpoints while commits keep coming. Small copies keep each
# checkpoint's fsync of the file short, which the commits' own fsyncs seem to wait behind: at 1M
# traces, votes on stored traces had p99 35-40 ms at 0.02 s against 52-64 ms at 0.1 s, for 5 %
# fewer votes/s.
CHECKPOINT_INTERVAL = 0.02
CHECKPOINT_LINGER = 1.0  # seconds without commits before the checkpointer's thread ends
# Rows a group commit may write for its statements to run in the event loop's thread on SQLite
# (its COMMIT still waits for the disk in the connection's thread). A group of single votes
# spends less in SQLite than in the six to eight trips to the thread its statements would take
# (0.13 ms each, and a turn of the busy loop each to come back); a batch of a thousand would
# hold the loop for tens to hundreds of milliseconds, so it runs in the thread. A statement that
# held the loop past the reads' budget all the same runs in the thread next time (see
# ``sqlite_driver.SlowStatements``).
INLINE_ROWS = 64

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
    rows: int
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
        # The group-commit writer's engine; on a SQLite file one connection with its own pragmas.
        self._grouped_engine = self.engine
        self._checkpointer: _Checkpointer | None = None
        self._loop_reader: LoopReader | None = None
        self._pg_reader: PgReader | None = None
        if self.engine.dialect.driver == "asyncpg":
            self._pg_reader = PgReader(self.url, self.engine.dialect, pool_size)
        path = self.url.database or ""
        if self.is_sqlite and path and path != ":memory:" and not path.startswith("file:"):
            self._grouped_engine = _create_engine(
                self.url, echo=echo, pool_size=1, grouped_writer=True
            )
            file = str(Path(path).expanduser())
            self._checkpointer = _Checkpointer(file)
            dbapi: OneTripDBAPI = self.engine.sync_engine.dialect.loaded_dbapi
            self._loop_reader = LoopReader(file, dbapi.slow_statements)

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

    async def read_direct(
        self, operation: str, parameters: Sequence[Any]
    ) -> tuple[Sequence[Sequence[Any]], Sequence[Sequence[Any]]] | None:
        """One read statement's description (DBAPI's: each column's name, then its type code)
        and rows without the engine: from SQLite in the event loop's thread (``LoopReader``),
        from PostgreSQL in one round trip (``PgReader``). None when the engine must run it: on
        SQLite in memory and PostgreSQL through psycopg, when either reader gave up on it, and
        whenever anything watches the engine's statements (its log, by echo or by logging's
        configuration, or listeners such as OpenTelemetry's or a test's statement count), which
        this way would never see it."""
        if self._loop_reader is None and self._pg_reader is None:
            return None
        engine = self.engine.sync_engine
        if (
            engine.logger.isEnabledFor(logging.INFO)  # as SQLAlchemy decides to log statements
            or engine.dispatch.before_cursor_execute
            or engine.dispatch.after_cursor_execute
        ):
            return None
        if self._loop_reader is not None:
            return self._loop_reader.run(operation, parameters)
        assert self._pg_reader is not None
        return await self._pg_reader.run(operation, parameters)

    def write(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A transaction that commits when the block ends; callers answer only after that."""
        return self._transaction(self.engine)

    async def rehearse(self, *writes: tuple[GroupedOperation[Any, Any], Any]) -> None:
        """Run grouped writes on the group-commit writer's connection, then roll them back.

        Their statements are compiled and cached for that connection's engine at start-up
        instead of in the first requests, whose group took about 60 ms more on SQLite.
        """
        async with self._transaction(self._grouped_engine, commit=False) as conn:
            for operation, item in writes:
                await operation(conn, [item])

    @asynccontextmanager
    async def _transaction(
        self, engine: AsyncEngine, *, commit: bool = True, inline: bool = False
    ) -> AsyncIterator[AsyncConnection]:
        async with self._write_lock or contextlib.nullcontext(), engine.connect() as conn:
            conn = await conn.execution_options(**{_WRITE: True, _INLINE: inline})
            async with conn.begin() as transaction:
                yield conn
                if not commit:
                    await transaction.rollback()
        if commit and self._checkpointer is not None:
            self._checkpointer.committed()

    async def write_grouped(self, operation: GroupedOperation[I, R], item: I, *, rows: int) -> R:
        """Store ``item`` (``rows`` rows) in the next group commit and return its result once
        committed.

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
        writer.queue.put_nowait(_Pending(operation, item, rows, future))
        return await future

    async def _run_writer(self, writer: _Writer) -> None:
        while True:
            group = [await writer.queue.get()]
            for _ in range(GATHER_TURNS):
                if writer.queue.qsize() + len(group) >= MAX_GROUP:
                    break
                await asyncio.sleep(0)
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
            async with self._transaction(self._grouped_engine, inline=_inline(group)) as conn:
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
            async with self._transaction(self._grouped_engine, inline=_inline(group)) as conn:
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
        if self._loop_reader is not None:
            self._loop_reader.close()
        if self._pg_reader is not None:
            await self._pg_reader.close()
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.close)
        if self._grouped_engine is not self.engine:
            await self._grouped_engine.dispose()
        await self.engine.dispose()  # the last connection closed checkpoints all that is left


def _inline(group: Sequence[_Pending]) -> bool:
    return sum(pending.rows for pending in group) <= INLINE_ROWS


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


class _Checkpointer:
    """Copies committed WAL pages into a SQLite file from a thread of its own.

    SQLite's automatic checkpoint runs inside the commit that crosses its threshold: every
    thousand pages or so, a group of writers waited for the copy and the file's fsync. Here a
    commit only marks that there is work; a PASSIVE checkpoint, which waits for no reader or
    writer, runs in the thread at most every ``CHECKPOINT_INTERVAL`` while commits keep coming,
    and the thread ends once they have stopped for ``CHECKPOINT_LINGER`` (batches commit every
    few hundred milliseconds: ending at the first pause started a thread and a connection per
    commit). A failure is logged and leaves the work to SQLite's own
    checkpoint at ``WAL_BACKSTOP_PAGES``.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wanted = False
        self._thread: threading.Thread | None = None

    def committed(self) -> None:
        with self._lock:
            self._wanted = True
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(
                    target=self._run, name="agentcost-checkpoint", daemon=True
                )
                self._thread.start()

    def close(self) -> None:
        """Stop after the checkpoint under way, if any (blocking: call it from a thread)."""
        self._stop.set()
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        try:
            with contextlib.closing(sqlite3.connect(self._path, isolation_level=None)) as conn:
                last_commit = time.monotonic()
                while True:
                    with self._lock:
                        wanted, self._wanted = self._wanted, False
                        idle = time.monotonic() - last_commit > CHECKPOINT_LINGER
                        if self._stop.is_set() or (idle and not wanted):
                            self._thread = None
                            return
                    if wanted:
                        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                        last_commit = time.monotonic()
                    self._stop.wait(CHECKPOINT_INTERVAL)
        except Exception:
            log.exception("background checkpoint of %s failed", self._path)
            with self._lock:
                self._thread = None


# Temporary tables in memory: each group's roll-up delta is bounded (rollups.Maintenance
# applies it every ``APPLY_EVERY`` rows), and as a file it cost a fifth of a group at 1M traces.
_GROUPED_WRITER_PRAGMAS = ("temp_store=MEMORY",)


def _json_text(value: Any) -> str:
    return to_json(value).decode()


# JSON columns (tags, metadata) through pydantic's parser and encoder (Rust), which read and
# write the same JSON as the json module at several times its speed: every listed vote and
# trace decodes two of them.
_JSON = {"json_serializer": _json_text, "json_deserializer": from_json}


def _create_engine(
    url: URL, *, echo: bool, pool_size: int, grouped_writer: bool = False
) -> AsyncEngine:
    if url.get_backend_name() != "sqlite":
        return create_async_engine(url, echo=echo, pool_size=pool_size, pool_pre_ping=True, **_JSON)
    database = url.database or ""
    if database and database != ":memory:":
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(
        url,
        echo=echo,
        module=OneTripDBAPI(),
        **_JSON,
        # Every checkout ends its own transaction (commit, or rollback on close); the pool's
        # extra rollback on return would only be one more trip to the connection's thread.
        pool_reset_on_return=None,
        # The group-commit writer needs one connection: its transactions take turns anyway.
        **({"pool_size": 1, "max_overflow": 0} if grouped_writer else {}),
    )
    _configure_sqlite(engine, _GROUPED_WRITER_PRAGMAS if grouped_writer else ())
    return engine


def _configure_sqlite(engine: AsyncEngine, extra_pragmas: Sequence[str]) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so BEGIN is ours to emit (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "journal_mode=WAL",
            "synchronous=FULL",
            f"busy_timeout={BUSY_TIMEOUT_MS}",
            "foreign_keys=ON",
            f"wal_autocheckpoint={WAL_BACKSTOP_PAGES}",
            *extra_pragmas,
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        options = conn.get_execution_options()
        immediate = options.get(_WRITE, False)
        dbapi_connection = conn.connection.dbapi_connection
        dbapi_connection.inline_writes = options.get(_INLINE, False)
        dbapi_connection.begin_on_next_statement("BEGIN IMMEDIATE" if immediate else READ_BEGIN)
