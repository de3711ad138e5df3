"""SQL spellings that differ between SQLite and PostgreSQL, so services stay dialect-free."""

from typing import Any

from sqlalchemy import Table, case, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import FunctionElement
from sqlalchemy.types import JSON, Boolean

from agentcost.models import Call, Feedback, Trace

traces: Table = Trace.__table__  # type: ignore[attr-defined]
calls: Table = Call.__table__  # type: ignore[attr-defined]
feedback: Table = Feedback.__table__  # type: ignore[attr-defined]


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
