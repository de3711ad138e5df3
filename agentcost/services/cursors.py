"""Opaque keyset cursors: the sort key and the id of the last row of a page.

Keyset (not OFFSET) pagination keeps every page as fast as the first and never skips or repeats
rows when new ones arrive between pages.
"""

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from agentcost.errors import InvalidInput
from agentcost.models import as_utc

_BAD = "is not a cursor issued by this service for this listing"
# ``json.dumps`` with separators builds an encoder on every call, half of its time on the short
# lists here (a page's 50 cursors, its calls' node ids, a feedback token per trace event).
_COMPACT = json.JSONEncoder(separators=(",", ":"))


def compact_json(value: Any) -> str:
    """What ``json.dumps(value, separators=(",", ":"))`` gives."""
    return _COMPACT.encode(value)


def encode(kind: str, sort_value: Any, row_id: str) -> str:
    if isinstance(sort_value, datetime):
        sort_value = sort_value.isoformat()
    raw = compact_json([kind, sort_value, row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(kind: str, cursor: str, *, sort_type: type) -> tuple[Any, str]:
    """The (sort value, id) in a cursor; a foreign or damaged one is an input error."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        found_kind, sort_value, row_id = json.loads(raw)
        if found_kind != kind or not isinstance(row_id, str):
            raise ValueError
        if sort_type is datetime:
            # In UTC, as every stored time is: a time without offset is taken as UTC, and one
            # whose offset takes it past the calendar's ends is refused here (OverflowError)
            # instead of failing in the database driver.
            sort_value = as_utc(datetime.fromisoformat(sort_value))
        elif sort_value is not None and not isinstance(sort_value, sort_type):
            raise ValueError
    except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput.single("cursor", _BAD) from None
    return sort_value, row_id
