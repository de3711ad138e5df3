"""SQL spellings that differ between SQLite and PostgreSQL, so services stay dialect-free."""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic_core import to_json
from sqlalchemy import Select, Table, bindparam, case, cast, func, literal_column, select, true
from sqlalchemy.dialects import postgresql, registry, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import FunctionElement
from sqlalchemy.types import JSON, BigInteger, Boolean, NullType, Text

from agentcost.models import Call, Feedback, Trace, UTCDateTime

traces: Table = Trace.__table__  # type: ignore[attr-defined]
calls: Table = Call.__table__  # type: ignore[attr-defined]
feedback: Table = Feedback.__table__  # type: ignore[attr-defined]


def of_traces(table: Table) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """Rows of ``table`` in the traces ``:trace_ids`` (a JSON array, ``in_json_list``) of
    ``:org_id``. Statements that take them as parameters are built once: building one per
    call, and its cache key, cost a GraphQL page of 50 traces about as much as running it."""
    return (
        table.c.org_id == bindparam("org_id"),
        in_json_list(table.c.trace_id, bindparam("trace_ids", type_=Text)),
    )


def trace_params(org_id: str, trace_ids: Sequence[str]) -> dict[str, Any]:
    return {"org_id": org_id, "trace_ids": to_json(sorted(set(trace_ids))).decode()}


class JsonRows:
    """All the rows of one write to ``table`` as one parameter: a JSON array of arrays, each
    row's values in column order (``params``), which the database takes apart in an INSERT ...
    SELECT (``insert``).

    SQLAlchemy processes each value of each row of an ``executemany`` in Python, in the event
    loop; here Python only encodes the array (pydantic's encoder, Rust) and the database parses
    it. On SQLite that parse costs about what it saves (a 1,000-event batch: 4 ms less in the
    loop, 4 ms more in SQLite), but a batch runs in its connection's thread beside the loop:
    1,000-event trace batches 10-13 % faster on SQLite and 29 % on PostgreSQL, feedback batches
    5-10 % on SQLite; single writes alike. Dates go as the column type binds them on SQLite
    (its stored text), as ISO 8601 with their offset on PostgreSQL.
    """

    def __init__(self, dialect: str, table: Table) -> None:
        self._dialect = dialect
        self._table = table
        self._columns = [column.name for column in table.c]
        dates = [i for i, column in enumerate(table.c) if isinstance(column.type, UTCDateTime)]
        processor = UTCDateTime().bind_processor(registry.load(dialect)())
        self._convert = [(index, processor) for index in dates] if dialect == "sqlite" else []

    def insert(self) -> Any:
        """INSERT INTO the table SELECT the rows of ``:rows``; ON CONFLICT and RETURNING are
        the caller's."""
        select = _json_rows_select(self._dialect, self._table)
        return insert_for(self._dialect, self._table).from_select(self._columns, select)

    def params(self, rows: Iterable[Mapping[str, Any]]) -> dict[str, str]:
        columns, convert = self._columns, self._convert
        values = []
        for row in rows:
            value = [row[name] for name in columns]
            for index, processor in convert:
                value[index] = processor(value[index])
            values.append(value)
        return {"rows": to_json(values).decode()}


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


def _json_rows_select(dialect: str, table: Table) -> Select[Any]:
    rows = bindparam("rows", type_=Text)
    if dialect == "postgresql":
        source = func.jsonb_array_elements(cast(rows, JSONB)).table_valued("value")
    else:
        source = func.json_each(rows).table_valued("value")
    value = source.c.value

    def field(index: int, column: Any) -> Any:
        position = literal_column(str(index))
        if dialect != "postgresql":
            return value.op("->>")(position)  # SQLite's own value: text, integer, real, JSON text
        if isinstance(column.type, JSON):
            return cast(value.op("->")(position), JSONB)
        return cast(value.op("->>")(position), column.type)

    # WHERE true: SQLite's parser needs it to tell an upsert's ON CONFLICT from a join's ON.
    return (
        select(*(field(i, column).label(column.name) for i, column in enumerate(table.c)))
        .select_from(source)
        .where(true())
    )
