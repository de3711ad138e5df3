"""Filters every adapter passes to the services, and the SQL conditions they mean.

DESIGN.md fixes which attribute belongs to what: project, model and prompt are trace attributes;
source, user and tag are feedback attributes. Analytics windows select traces by the trace's own
time, listings of feedback by the feedback's ``created_at``.
"""

from collections.abc import Collection
from datetime import UTC as UTC_ZONE
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)
from sqlalchemy import ColumnElement, Float, and_, bindparam, exists, func, select

from agentcost.models import PROMPT_VERSIONS, FeedbackSource, Identifier, Name, Tag, as_utc
from agentcost.services.sql import feedback, json_array_contains, param, traces

LATEST = datetime(9999, 12, 31, tzinfo=UTC_ZONE)


def _bounded(value: datetime) -> datetime:
    # Windows are cut at whole ten-minute buckets, and the bucket after the last day of year
    # 9999 is not a datetime: a clear refusal instead of an overflow.
    value = as_utc(value)
    if value >= LATEST:
        raise ValueError("must be before 9999-12-31T00:00:00Z")
    return value


UTC = Annotated[datetime, AfterValidator(_bounded)]


class _Filter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: UTC | None = Field(default=None, description="Inclusive lower bound (ISO 8601).")
    until: UTC | None = Field(default=None, description="Exclusive upper bound (ISO 8601).")

    @field_validator("until")
    @classmethod
    def _window(cls, until: datetime | None, info: ValidationInfo) -> datetime | None:
        # A field validator (not a model one) so the error names the field: "until".
        since = info.data.get("since")
        if since and until and since >= until:
            raise ValueError("since must be earlier than until")
        return until


MAX_PAGE = 1000


class Page(BaseModel):
    """Keyset paging: page size, and the cursor the previous page handed out."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=100, ge=1, le=MAX_PAGE, description="Page size.")
    cursor: str | None = Field(
        default=None, max_length=1000, description="X-Next-Cursor of the previous page."
    )


class TraceFilter(_Filter):
    """Which traces: by trace attributes, in a window of trace time."""

    project: Name | None = None
    model: Name | None = None
    prompt_id: Name | None = None
    prompt_version: int | None = Field(default=None, ge=0, lt=PROMPT_VERSIONS)


class TraceOrder(StrEnum):
    """Sort orders of a trace listing; each pages with keyset cursors of its own."""

    TIME = "time"  # newest first
    COST = "cost"  # costliest first, traces of unknown cost last


class ScoreFilter(BaseModel):
    """Which traces by their votes: bounds on the mean score, and whether any vote exists.

    The bounds apply to the unrounded mean (TraceScore.score shows it to 3 decimals); a trace
    without votes has no score, so any bound excludes it.
    """

    model_config = ConfigDict(extra="forbid")

    min_score: float | None = Field(default=None, ge=-1, le=1, allow_inf_nan=False)
    max_score: float | None = Field(default=None, ge=-1, le=1, allow_inf_nan=False)
    has_feedback: bool | None = None

    @field_validator("max_score")
    @classmethod
    def _range(cls, max_score: float | None, info: ValidationInfo) -> float | None:
        min_score = info.data.get("min_score")
        if min_score is not None and max_score is not None and min_score > max_score:
            raise ValueError("must not be below min_score")
        return max_score


class FeedbackFilter(_Filter):
    """Which feedback items a listing shows; the window is on the feedback's own created_at."""

    project: Name | None = None
    model: Name | None = None
    score: int | None = Field(default=None, ge=-1, le=1)
    source: FeedbackSource | None = None
    trace_id: Identifier | None = None
    user_id: Identifier | None = None
    tag: Tag | None = None


class AnalyticsFilter(_Filter):
    """What an aggregate counts: feedback attributes, and a window of trace time."""

    project: Name | None = None
    source: FeedbackSource | None = None
    user_id: Identifier | None = None
    tag: Tag | None = None


def trace_window(since: Any, until: Any) -> list[ColumnElement[bool]]:
    """Trace time in [since, until): datetimes or bound parameters; None leaves a side open."""
    conditions = []
    if since is not None:
        conditions.append(traces.c.started_at >= since)
    if until is not None:
        conditions.append(traces.c.started_at < until)
    return conditions


# The columns a TraceFilter's fields of the same names compare for equality.
_TRACE_ATTRIBUTES = (traces.c.project, traces.c.model, traces.c.prompt_id, traces.c.prompt_version)
# Names in a listing's shape for ``ScoreFilter.has_feedback``, which changes the statement
# rather than a value in it.
VOTED, UNVOTED = "voted", "unvoted"


def trace_conditions(given: Collection[str]) -> list[ColumnElement[bool]]:
    """The conditions of a TraceFilter's ``given`` fields, each value a bound parameter of its
    field's name: a listing builds its statement once per set of given fields."""
    conditions = trace_window(param("since", "since" in given), param("until", "until" in given))
    for column in _TRACE_ATTRIBUTES:
        if column.name in given:
            conditions.append(column == bindparam(column.name))
    return conditions


def score_conditions(given: Collection[str]) -> list[ColumnElement[bool]]:
    """Conditions on traces by their own votes (same org, same trace), as correlated subqueries:
    ``VOTED`` or ``UNVOTED``, and the bounds ``min_score`` and ``max_score`` as bound parameters
    of those names when given."""
    same_trace = (feedback.c.org_id == traces.c.org_id, feedback.c.trace_id == traces.c.trace_id)
    conditions: list[ColumnElement[bool]] = []
    if VOTED in given or UNVOTED in given:
        voted = exists().where(*same_trace)
        conditions.append(voted if VOTED in given else ~voted)
    if "min_score" in given or "max_score" in given:
        mean = select(func.avg(feedback.c.score)).where(*same_trace).scalar_subquery()
        if "min_score" in given:
            conditions.append(mean >= bindparam("min_score", type_=Float))
        if "max_score" in given:
            conditions.append(mean <= bindparam("max_score", type_=Float))
    return conditions


def feedback_attribute_conditions(
    *, source: Any, user_id: Any, tag: Any
) -> list[ColumnElement[bool]]:
    """Each given value (or bound parameter) narrows the feedback; None leaves it out."""
    conditions = []
    if source is not None:
        conditions.append(feedback.c.source == source)
    if user_id is not None:
        conditions.append(feedback.c.user_id == user_id)
    if tag is not None:
        conditions.append(json_array_contains(feedback.c.tags, tag))
    return conditions


def analytics_conditions(*, project: Any, source: Any, user_id: Any, tag: Any) -> list[Any]:
    """An aggregate's filters on feedback joined to its trace; None leaves a filter out."""
    conditions = [] if project is None else [traces.c.project == project]
    return conditions + feedback_attribute_conditions(source=source, user_id=user_id, tag=tag)


def all_of(conditions: list[ColumnElement[bool]]) -> ColumnElement[bool]:
    return and_(*conditions)
