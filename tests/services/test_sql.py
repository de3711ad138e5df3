"""``Precompiled``: a statement compiled once per dialect and driver, run as its text with the
caller's values and its own constants bound in the compiled order."""

import contextlib
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Text, bindparam, literal, select
from sqlalchemy.dialects import postgresql, sqlite

from agentcost.db import Database
from agentcost.models import FeedbackCreate, UTCDateTime
from agentcost.services import feedback as feedback_service
from agentcost.services.sql import Precompiled, feedback

pytestmark = pytest.mark.anyio

# A required value between two constants, and the same value twice: SQLite's "?" then carry it
# twice, asyncpg's "$n" once, psycopg's names twice by name.
_STATEMENT = Precompiled(
    select(
        literal(7).label("seven"),
        bindparam("name", type_=Text).label("name"),
        literal("x").label("x"),
        (bindparam("name", type_=Text) + literal("!")).label("loud"),
    )
)


async def test_runs_with_the_callers_values_and_its_constants(db: Database) -> None:
    async with db.read() as conn:
        first = (await _STATEMENT.run(conn, {"name": "abc"})).one()
        second = (await _STATEMENT.run(conn, {"name": "de"})).one()
    assert tuple(first) == (7, "abc", "x", "abc!")
    assert tuple(second) == (7, "de", "x", "de!")


def test_positional_parameters_in_the_compiled_order_named_ones_by_name() -> None:
    text, values = _STATEMENT.bound(sqlite.dialect(), {"name": "abc"})
    assert isinstance(values, tuple)
    with contextlib.closing(sqlite3.connect(":memory:")) as conn:
        assert conn.execute(text, values).fetchone() == (7, "abc", "x", "abc!")
    text, values = _STATEMENT.bound(postgresql.asyncpg.dialect(), {"name": "abc"})
    assert text.count("$2") == 2
    assert values == (7, "abc", "x", "!")
    text, named = _STATEMENT.bound(postgresql.psycopg.dialect(), {"name": "abc"})
    assert text.count("%(name)s") == 2
    assert named["name"] == "abc"
    assert sorted(map(str, named.values())) == ["!", "7", "abc", "x"]


def test_a_missing_value_is_named() -> None:
    with pytest.raises(ValueError, match="no value given for name"):
        _STATEMENT.bound(sqlite.dialect(), {})


def test_converts_a_value_the_driver_cannot_take_as_it_is() -> None:
    """A date is stored as text on SQLite: bound as it is, the driver would compare it with
    that text wrongly. The caller's values and constants are converted as the engine would,
    a value the caller gives in place of a bind's own default too."""
    at = datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=timezone(timedelta(hours=2)))
    later = datetime(2027, 1, 1, tzinfo=UTC)
    dated = Precompiled(
        select(
            bindparam("at", type_=UTCDateTime()),
            literal(at, UTCDateTime()).label("fixed"),
            bindparam("default", value=at, type_=UTCDateTime()),
        )
    )
    utc_text = "2026-01-02 01:04:05.006000"
    _, values = dated.bound(sqlite.dialect(), {"at": at})
    assert values == (utc_text, utc_text, utc_text)
    _, values = dated.bound(sqlite.dialect(), {"at": None, "default": later})
    assert values == (None, utc_text, "2027-01-01 00:00:00.000000")
    _, values = dated.bound(postgresql.asyncpg.dialect(), {"at": at})
    assert values == (at, at, at)
    assert [value.utcoffset() for value in values] == [timedelta(0)] * 3


@pytest.mark.parametrize(
    "value",
    [bindparam("v", expanding=True), bindparam("v", 3, literal_execute=True)],
    ids=["expanding list", "literal at execution"],
)
def test_refuses_a_value_written_into_the_text_at_execution(value: Any) -> None:
    """An expanding IN list, or a value rendered in line, is written into the statement at
    each execution: the compiled text holds only a marker for it."""
    statement = Precompiled(select(literal(1)).where(literal(1).in_(value)))
    with pytest.raises(ValueError, match="v: a value written at execution, which the text lacks"):
        statement.bound(sqlite.dialect(), {"v": [1]})


async def test_a_converted_value_finds_its_row_without_the_engine(db: Database) -> None:
    [(stored, _)] = await feedback_service.submit(
        db, org_id="org", items=[FeedbackCreate(trace_id="t", score=1)]
    )
    elsewhere = stored.created_at.astimezone(timezone(timedelta(hours=-5)))
    by_time = Precompiled(select(feedback.c.id).where(feedback.c.created_at == bindparam("at")))
    found = await db.read_direct(*by_time.bound(db.engine.dialect, {"at": elsewhere}))
    assert found is not None  # read without the engine
    assert [tuple(row) for row in found[1]] == [(stored.id,)]
