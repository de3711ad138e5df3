"""UTCDateTime on SQLite: the text it stores is exactly SQLAlchemy's own DATETIME text of the
same instant in UTC (stored rows, comparisons and roll-up buckets all read that text), and it
reads that text back as the same aware instant."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.sqlite import DATETIME

from agentcost.models import UTCDateTime

INSTANTS = [
    datetime(2026, 11, 27, 8, 30, 15, 123456, tzinfo=UTC),
    datetime(2026, 11, 27, 8, 30, 15, tzinfo=UTC),  # no microseconds: still six digits
    datetime(2026, 3, 1, 1, 2, 3, 4, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    datetime(2025, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-8))),
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2026, 6, 1, 12, 0, 0, 500),  # naive: taken as UTC
]


@pytest.mark.parametrize("value", INSTANTS)
def test_sqlite_text_is_sqlalchemys_datetime_text_in_utc(value: datetime) -> None:
    dialect = sqlite.dialect()
    ours = UTCDateTime().bind_processor(dialect)
    theirs = DATETIME().bind_processor(dialect)
    assert theirs is not None
    naive_utc = value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    assert ours(value) == theirs(naive_utc)
    assert ours(None) is None


@pytest.mark.parametrize("value", INSTANTS)
def test_sqlite_text_reads_back_as_the_same_aware_instant(value: datetime) -> None:
    dialect = sqlite.dialect()
    column_type = UTCDateTime()
    write = column_type.bind_processor(dialect)
    read = column_type.result_processor(dialect, None)
    theirs = DATETIME().result_processor(dialect, None)
    assert theirs is not None
    text = write(value)
    expected = value if value.tzinfo else value.replace(tzinfo=UTC)
    assert read(text) == expected
    assert read(text).tzinfo is UTC
    assert read(text) == theirs(text).replace(tzinfo=UTC)
    assert read(None) is None


def test_sqlite_text_with_an_offset_of_its_own_reads_as_that_instant() -> None:
    read = UTCDateTime().result_processor(sqlite.dialect(), None)
    assert read("2026-03-01 06:32:03.000004+05:30") == datetime(2026, 3, 1, 1, 2, 3, 4, tzinfo=UTC)
