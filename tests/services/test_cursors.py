"""Opaque strings clients keep (keyset cursors, call node ids, feedback tokens) are compact JSON:
their text must stay what ``json.dumps`` made of them, or ids handed out before would change."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agentcost.errors import InvalidInput
from agentcost.graphql_api.types import call_node_key, parse_call_node_key
from agentcost.services import cursors

VALUES: list[Any] = [
    ["trace", "2026-05-04T03:02:01.123456+00:00", "t-1"],
    ["cost", 1e-05, "ünïcødé ✓"],
    ["cost", None, 'quote " backslash \\ tab \t nul \x00 del \x7f'],
    {"o": "org", "t": "trace", "u": None, "n": "ab12", "e": 1795906630},
    [float("nan"), float("inf"), -0.0, 10**20, True, {"nested": [1, [2, {"x": []}]]}],
]


@pytest.mark.parametrize("value", VALUES)
def test_compact_json_is_the_text_json_dumps_gives(value: Any) -> None:
    assert cursors.compact_json(value) == json.dumps(value, separators=(",", ":"))


def test_a_cursor_gives_back_its_sort_value_and_id() -> None:
    started = datetime(2026, 5, 4, 3, 2, 1, 123456, tzinfo=UTC)
    cursor = cursors.encode("trace", started, "t-ü")
    assert cursors.decode("trace", cursor, sort_type=datetime) == (started, "t-ü")
    assert cursors.decode("cost", cursors.encode("cost", 0.25, "x"), sort_type=float) == (0.25, "x")
    with pytest.raises(InvalidInput):
        cursors.decode("cost", cursor, sort_type=float)


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("2026-05-04T03:02:01", datetime(2026, 5, 4, 3, 2, 1, tzinfo=UTC)),
        ("2026-05-04T05:02:01+02:00", datetime(2026, 5, 4, 3, 2, 1, tzinfo=UTC)),
    ],
)
def test_a_cursors_time_comes_back_in_utc(written: str, read: datetime) -> None:
    """A time without offset is UTC, as every stored time: pages never depend on the zone of
    the database session."""
    sort_value, _ = cursors.decode(
        "trace", cursors.encode("trace", written, "t"), sort_type=datetime
    )
    assert (sort_value, sort_value.utcoffset()) == (read, timedelta(0))


@pytest.mark.parametrize("written", ["9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00+05:00"])
def test_a_cursor_whose_time_leaves_the_calendar_is_refused(written: str) -> None:
    with pytest.raises(InvalidInput, match="not a cursor issued by this service"):
        cursors.decode("feedback", cursors.encode("feedback", written, "f"), sort_type=datetime)


def test_a_call_node_id_is_its_trace_and_call_as_a_json_pair() -> None:
    assert call_node_key("t-1", "c-ü") == '["t-1","c-\\u00fc"]'
    assert parse_call_node_key(call_node_key("t-1", "c-ü")) == ("t-1", "c-ü")
