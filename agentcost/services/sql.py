"""SQL spellings that differ between SQLite and PostgreSQL, so services stay dialect-free."""

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from pydantic_core import to_json
from sqlalchemy import Select, Table, bindparam, case, cast, func, literal_column, select
from sqlalchemy.dialects import postgresql, registry, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect, Result
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import FunctionElement
from sqlalchemy.types import JSON, BigInteger, Boolean, NullType, Text

from agentcost.db import Database
from agentcost.models import Call, Feedback, Trace, UTCDateTime

traces: Table = Trace.__table__  # type: ignore[attr-defined]
calls: Table = Call.__table__  # type: ignore[attr-defined]
feedback: Table = Feedback.__table__  # type: ignore[attr-defined]


# Statements a listing keeps built (one per set of given filters, ``functools.lru_cache``):
# clients use a handful of the thousands of sets, each about 20 kB once compiled.
LISTING_SHAPES = 128


def param(name: str, wanted: bool = True) -> Any:
    """A bound value of a statement built once per shape of request, or None where the shape
    leaves that filter out (the filter helpers then leave out its condition)."""
    return bindparam(name) if wanted else None


def of_traces(table: Table) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """Rows of ``table`` in the traces ``:trace_ids`` (a JSON array, ``in_json_list``) of
    ``:org_id``. Statements that take them as parameters are built once: building one per
    call, and its cache key, cost a GraphQL page of 50 traces about as much as running it."""
    return (
        table.c.org_id == bindparam("org_id"),
        in_json_list(table.c.trace_id, bindparam("trace_ids", type_=Text)),
    )


def trace_params(org_id: str, trace_ids: Sequence[str]) -> dict[str, Any]:
    return {"org_id": org_id, "trace_ids": json_array(trace_ids)}


def records(result: Result[Any]) -> Iterator[dict[str, Any]]:
    """The result's rows as plain dicts, for pydantic to validate. Given SQLAlchemy's row
    mappings it copies each into a dict first, a lookup per column: a feedback row took 9.2 µs
    to validate that way and 4.4 µs from a dict built here, the column names taken once."""
    keys = tuple(result.keys())
    return (dict(zip(keys, row, strict=True)) for row in result)


def json_array(values: Iterable[Any]) -> str:
    """The distinct values as a sorted JSON array: the parameter ``in_json_list`` and
    ``in_json_pairs`` read (pairs as two-element arrays)."""
    return to_json(sorted(set(values))).decode()


_SQLITE_MAX_PARAMETERS = 32_766  # SQLITE_MAX_VARIABLE_NUMBER's default since SQLite 3.32


class BulkInsert:
    """An INSERT of all the rows of one write (one vote, or the thousands of an import's chunk)
    in as few executions as the database allows; ``build`` adds its ON CONFLICT clause. It
    returns nothing: the services learn which rows were stored already by asking first (see
    ``traces.write``).

    On SQLite each execution is a multi-row VALUES of up to ``SQLITE_ROWS`` rows, with the
    values as SQLite stores them (dates as their text, JSON as text), bound by the driver in C.
    Both other ways cost more: a JSON document of the rows taken apart in SQL makes SQLite 3.40
    parse a row again for each field it reads (1,000 trace rows 25 ms, against 7-8 ms bound),
    and an ``executemany`` (or rows coming back) takes the GIL back after each row, which beside
    a busy Python thread means a wait of up to the interpreter's switch interval per row (1,000
    rows 5 s, against 18-45 ms for VALUES of 1,000 or 250 rows).

    On PostgreSQL the rows go as one JSON array of arrays (pydantic's encoder, Rust), taken
    apart by ``jsonb_array_elements`` with a cast to each column's type: one round trip and no
    per-value work in Python (1,000-event trace batches 29 % faster than an executemany).
    """

    SQLITE_ROWS = 256  # per statement: under SQLite's limit of parameters up to 127 columns

    def __init__(self, dialect: str, table: Table, build: Callable[[Any], Any]) -> None:
        self._columns = [column.name for column in table.c]
        self._sqlite = dialect == "sqlite"
        if not self._sqlite:
            select = _json_rows_select(table)
            self._statement = build(insert_for(dialect, table).from_select(self._columns, select))
            return
        compiled = build(
            insert_for(dialect, table).values({name: bindparam(name) for name in self._columns})
        ).compile(dialect=registry.load(dialect)())
        width = len(self._columns)
        positions = list(compiled.positiontup or ())
        self._row = "(" + ", ".join("?" * width) + ")"
        head, found, tail = str(compiled).partition(f" VALUES {self._row}")
        if not found or positions[:width] != self._columns:
            raise ValueError(f"not a one-row VALUES of every column of {table.name}")
        if width * self.SQLITE_ROWS > _SQLITE_MAX_PARAMETERS:
            raise ValueError(f"{table.name} has too many columns for {self.SQLITE_ROWS} rows")
        self._head, self._tail = f"{head} VALUES ", tail
        self._statements: dict[int, str] = {}
        # Literals SQLAlchemy bound in the rest of the statement (ON CONFLICT's constants).
        self._constants = [compiled.params[name] for name in positions[width:]]
        self._dates = UTCDateTime().bind_processor(registry.load(dialect)())
        self._date_columns = [i for i, c in enumerate(table.c) if isinstance(c.type, UTCDateTime)]
        self._json_columns = [i for i, c in enumerate(table.c) if isinstance(c.type, JSON)]

    async def run(self, conn: AsyncConnection, rows: Iterable[Mapping[str, Any]]) -> None:
        values = [[row[name] for name in self._columns] for row in rows]
        if not values:
            return
        if not self._sqlite:
            await conn.execute(self._statement, {"rows": to_json(values).decode()})
            return
        # Rows share most of their dates (the write's own time, a trace's start and end), so
        # each distinct date is formatted once: half the conversions of an import's rows.
        texts: dict[Any, str] = {}
        dates = self._dates
        for value in values:
            for index in self._date_columns:
                if (date := value[index]) is not None:
                    text = texts.get(date)
                    if text is None:
                        text = texts[date] = dates(date)
                    value[index] = text
            for index in self._json_columns:
                if value[index] is not None:
                    value[index] = _json_text(value[index])
        for start in range(0, len(values), self.SQLITE_ROWS):
            part = values[start : start + self.SQLITE_ROWS]
            params = [v for value in part for v in value]
            params.extend(self._constants)
            await conn.exec_driver_sql(self._sqlite_statement(len(part)), tuple(params))

    def _sqlite_statement(self, rows: int) -> str:
        """The text for ``rows`` rows, made once per count (at most ``SQLITE_ROWS`` of them)."""
        statement = self._statements.get(rows)
        if statement is None:
            statement = self._statements[rows] = (
                self._head + ", ".join([self._row] * rows) + self._tail
            )
        return statement


def _json_text(value: Any) -> str:
    return to_json(value).decode()


# A statement's compiled text, the order of its positional parameters (None for named ones),
# the values of its constants, the names of the values each run must give and the converters of
# the values the driver cannot take as they are.
_Compiled = tuple[
    str, tuple[str, ...] | None, dict[str, Any], frozenset[str], dict[str, Callable[[Any], Any]]
]


class Precompiled:
    """A statement built once and run as the text each dialect compiles it to, its values bound
    by the driver.

    Run the usual way, SQLAlchemy hashes the statement's cache key to find its compiled form and
    processes every bound value, constants included, on each execution: for the roll-up image
    (85 bound values) and apply (45) that took 150-200 µs a run on this kind of machine, beside
    a small group commit's few milliseconds. Here it happens once per dialect and driver (the
    drivers of one database take different parameter styles). A value the driver cannot take as
    it is (a date, which SQLite stores as text) is converted by its type's bind processor, as
    the engine would: constants once, the caller's values on each run.

    A SELECT's ``rows`` skip the async engine on a SQLite file and on PostgreSQL through asyncpg
    (``Database.read_direct``), each value converted as the engine would; reads of one statement
    use them.
    """

    def __init__(self, statement: Any) -> None:
        self._statement = statement
        self._compiled: dict[tuple[str, str], _Compiled] = {}
        self._converters: dict[tuple[Any, ...], list[tuple[int, Callable[[Any], Any]]]] = {}

    def bound(self, dialect: Dialect, params: Mapping[str, Any]) -> tuple[str, Any]:
        """The SQL text and its parameters, as ``exec_driver_sql`` takes them."""
        compiled = self._compiled.get((dialect.name, dialect.driver)) or self._compile(dialect)
        text, order, constants, required, converters = compiled
        if missing := required - params.keys():
            raise ValueError(f"no value given for {', '.join(sorted(missing))}")
        values = constants | dict(params)
        for name, convert in converters.items():
            if name in params:  # constants were converted when compiled
                values[name] = convert(params[name])
        if order is None:
            return text, values
        return text, tuple(values[name] for name in order)

    async def run(self, conn: AsyncConnection, params: Mapping[str, Any] | None = None) -> Any:
        return await conn.exec_driver_sql(*self.bound(conn.dialect, params or {}))

    async def rows(self, db: Database, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The SELECT's rows as ``records`` gives them, each a dict of its columns."""
        dialect = db.engine.dialect
        found = await db.read_direct(*self.bound(dialect, params))
        if found is None:
            async with db.read() as conn:
                return list(records(await conn.execute(self._statement, params)))
        description, rows = found
        names = [column[0] for column in description]
        # asyncpg's conversions of numbers depend on the column's type as the server sent it.
        key = (dialect.name, dialect.driver, tuple(column[1] for column in description))
        converters = self._converters.get(key)
        if converters is None:
            columns = zip(self._statement.selected_columns, key[2], strict=True)
            converters = self._converters[key] = [
                (index, process)
                for index, (column, code) in enumerate(columns)
                if (process := column.type.dialect_impl(dialect).result_processor(dialect, code))
            ]
        result = []
        for row in rows:
            record = dict(zip(names, row, strict=True))
            for index, process in converters:
                record[names[index]] = process(row[index])
            result.append(record)
        return result

    def _compile(self, dialect: Dialect) -> _Compiled:
        compiled = self._statement.compile(dialect=dialect)
        binds = compiled.bind_names.items()  # each bound value and its name in the text
        for bind, name in binds:
            # Their placeholders (or values) are written into the text at each execution.
            if bind.expanding or bind.literal_execute:
                raise ValueError(f"{name}: a value written at execution, which the text lacks")
        processors = {
            name: process
            for bind, name in binds
            if (process := bind.type.dialect_impl(dialect).bind_processor(dialect))
        }
        order = tuple(compiled.positiontup) if compiled.positional else None
        constants = {
            name: processors[name](bind.value) if name in processors else bind.value
            for bind, name in binds
            if not bind.required
        }
        required = frozenset(name for bind, name in binds if bind.required)
        result = (str(compiled), order, constants, required, processors)
        self._compiled[dialect.name, dialect.driver] = result
        return result


def insert_for(dialect: str, table: Table) -> Any:
    """An INSERT that knows ON CONFLICT; both dialects spell its methods the same way."""
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(table)


class json_merge(FunctionElement[Any]):
    """Shallow merge of two JSON objects, the right one winning."""

    type = JSON()
    inherit_cache = True


@compiles(json_merge, "sqlite")
def _json_merge_sqlite(element: json_merge, compiler: Any, **kw: Any) -> str:
    return f"json_patch({compiler.process(element.clauses, **kw)})"


@compiles(json_merge, "postgresql")
def _json_merge_pg(element: json_merge, compiler: Any, **kw: Any) -> str:
    left, right = list(element.clauses)
    return f"({compiler.process(left, **kw)} || {compiler.process(right, **kw)})"


class json_array_contains(FunctionElement[bool]):
    """True when a JSON array column holds the given string."""

    type = Boolean()
    inherit_cache = True


@compiles(json_array_contains, "sqlite")
def _contains_sqlite(element: json_array_contains, compiler: Any, **kw: Any) -> str:
    column, value = list(element.clauses)
    return (
        f"EXISTS (SELECT 1 FROM json_each({compiler.process(column, **kw)}) "
        f"WHERE json_each.value = {compiler.process(value, **kw)})"
    )


@compiles(json_array_contains, "postgresql")
def _contains_pg(element: json_array_contains, compiler: Any, **kw: Any) -> str:
    column, value = list(element.clauses)
    return (
        f"({compiler.process(column, **kw)} @> "
        f"jsonb_build_array(CAST({compiler.process(value, **kw)} AS TEXT)))"
    )


def count_where(condition: ColumnElement[bool]) -> ColumnElement[int]:
    """COUNT of rows matching a condition, spelled the way both databases accept."""
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


class in_json_list(FunctionElement[bool]):
    """``column IN`` the strings of a JSON array parameter: one bound value however many ids,
    so a batch of thousands needs neither chunking nor a statement per list length."""

    # Not Boolean: SQLite would get "IN (...) = 1", which its planner cannot use an index for.
    type = NullType()
    inherit_cache = True


@compiles(in_json_list, "sqlite")
def _in_json_list_sqlite(element: in_json_list, compiler: Any, **kw: Any) -> str:
    column, ids = list(element.clauses)
    return (
        f"{compiler.process(column, **kw)} IN "
        f"(SELECT value FROM json_each({compiler.process(ids, **kw)}))"
    )


@compiles(in_json_list, "postgresql")
def _in_json_list_pg(element: in_json_list, compiler: Any, **kw: Any) -> str:
    # "= ANY(ARRAY(...))": the list is built once (an InitPlan) and probes the index, whatever
    # the table's statistics say; "IN (SELECT ...)" on a table never ANALYZEd scanned every row
    # of the organisation for each write.
    column, ids = list(element.clauses)
    return (
        f"{compiler.process(column, **kw)} = ANY(ARRAY("
        f"SELECT jsonb_array_elements_text(CAST({compiler.process(ids, **kw)} AS JSONB))))"
    )


class in_json_pairs(FunctionElement[bool]):
    """``(first, second) IN`` the pairs of a JSON array of two-string arrays, as an index on
    ``(..., first, second)`` answers it: each pair probed, never every pair of the two lists."""

    type = NullType()
    inherit_cache = True


@compiles(in_json_pairs, "sqlite")
def _in_json_pairs_sqlite(element: in_json_pairs, compiler: Any, **kw: Any) -> str:
    first, second, pairs = (compiler.process(c, **kw) for c in element.clauses)
    return f"({first}, {second}) IN (SELECT value ->> 0, value ->> 1 FROM json_each({pairs}))"


@compiles(in_json_pairs, "postgresql")
def _in_json_pairs_pg(element: in_json_pairs, compiler: Any, **kw: Any) -> str:
    # The first column's list reaches the index as in_json_list's does (whatever the
    # statistics); the pairs then filter what it found, in a hashed subplan.
    first, second, pairs = (compiler.process(c, **kw) for c in element.clauses)
    elements = f"jsonb_array_elements(CAST({pairs} AS JSONB)) AS pair"
    return (
        f"{first} = ANY(ARRAY(SELECT pair ->> 0 FROM {elements})) AND "
        f"({first}, {second}) IN (SELECT pair ->> 0, pair ->> 1 FROM {elements})"
    )


class epoch_seconds(FunctionElement[int]):
    """Whole seconds since the Unix epoch of a timestamp (trace times are never before it)."""

    type = BigInteger()
    inherit_cache = True


@compiles(epoch_seconds, "sqlite")
def _epoch_seconds_sqlite(element: epoch_seconds, compiler: Any, **kw: Any) -> str:
    return f"CAST(strftime('%s', {compiler.process(element.clauses, **kw)}) AS INTEGER)"


@compiles(epoch_seconds, "postgresql")
def _epoch_seconds_pg(element: epoch_seconds, compiler: Any, **kw: Any) -> str:
    moment = compiler.process(element.clauses, **kw)
    return f"CAST(floor(extract(epoch FROM {moment})) AS BIGINT)"


def _json_rows_select(table: Table) -> Select[Any]:
    """PostgreSQL: the rows of the JSON array of arrays ``:rows`` as ``table``'s columns."""
    value = func.jsonb_array_elements(cast(bindparam("rows", type_=Text), JSONB)).table_valued(
        "value"
    )

    def field(index: int, column: Any) -> Any:
        position = literal_column(str(index))
        if isinstance(column.type, JSON):
            return cast(value.c.value.op("->")(position), JSONB)
        return cast(value.c.value.op("->>")(position), column.type)

    return select(
        *(field(i, column).label(column.name) for i, column in enumerate(table.c))
    ).select_from(value)
