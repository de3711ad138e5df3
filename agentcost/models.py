"""Tables and the shapes that cross the service boundary.

Input shapes validate once for every entry point (REST, GraphQL, Python), so a bad score gets the
same reason everywhere. Output shapes are what the guide's JSON examples show, plus DESIGN.md's
extra fields.
"""

import json
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from sqlalchemy import JSON, BigInteger, Column, DateTime, Index, TypeDecorator
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field as Col
from sqlmodel import SQLModel

MAX_ID = 200
MAX_NAME = 200
MAX_COMMENT = 10_000
MAX_TAGS = 20
MAX_TAG = 64
MAX_METADATA_BYTES = 16 * 1024
# Bounds that keep every accepted number inside the columns of both databases.
MAX_TOKENS = 10**12
MAX_COST = 10**9
MAX_LATENCY_MS = 10**10


class FeedbackSource(StrEnum):
    USER = "user"
    HUMAN_REVIEW = "human-review"
    AUTOMATED = "automated"
    EVAL = "eval"


# ---------------------------------------------------------------------------------------------
# Column types


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both databases; SQLite would otherwise hand back naive values."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else as_utc(value)

    def bind_processor(self, dialect: Any) -> Any:
        if dialect.name == "sqlite":
            return _sqlite_datetime_text
        return super().bind_processor(dialect)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else as_utc(value)

    def result_processor(self, dialect: Any, coltype: Any) -> Any:
        if dialect.name == "sqlite":
            return _sqlite_datetime_value
        return super().result_processor(dialect, coltype)


JSONType = JSON().with_variant(JSONB(), "postgresql")


def as_utc(value: datetime) -> datetime:
    """Naive datetimes are taken to be UTC, the only zone the service speaks."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


_SQLITE_DATETIME_CHARS = len("2026-01-01 00:00:00.000000")  # without the "+00:00" isoformat adds


def _sqlite_datetime_text(value: datetime | None) -> str | None:
    """The text SQLAlchemy stores for a SQLite DATETIME ('YYYY-MM-DD HH:MM:SS.ffffff', here in
    UTC), made by one C call: its own formatting of seven fields was an eighth of a 1,000-event
    batch's time in the event loop (eight dates a call)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.isoformat(" ", "microseconds")
    return value.astimezone(UTC).isoformat(" ", "microseconds")[:_SQLITE_DATETIME_CHARS]


def _sqlite_datetime_value(value: str | None) -> datetime | None:
    """That text read back as an aware datetime by one parse, where SQLAlchemy's processor and
    ``process_result_value`` took ten times as long (a 50-trace GraphQL page reads about 500)."""
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value + "+00:00")
    except ValueError:  # text with an offset of its own, not written by this type
        return as_utc(datetime.fromisoformat(value))


def utcnow() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------------------------------------
# Tables


class Trace(SQLModel, table=True):
    """One response a user can rate, with roll-ups over its calls kept current on every ingest."""

    __tablename__ = "traces"
    __table_args__ = (
        Index("ix_traces_org_started", "org_id", "started_at", "trace_id"),
        Index("ix_traces_org_model", "org_id", "model"),
        Index("ix_traces_org_prompt", "org_id", "prompt_id", "prompt_version"),
        Index("ix_traces_org_project", "org_id", "project"),
    )

    org_id: str = Col(primary_key=True, max_length=64)
    trace_id: str = Col(primary_key=True, max_length=MAX_ID)
    project: str = Col(max_length=MAX_NAME)
    name: str | None = Col(default=None, max_length=MAX_NAME)
    session_id: str | None = Col(default=None, max_length=MAX_ID)
    agent_id: str | None = Col(default=None, max_length=MAX_ID)
    user_id: str | None = Col(default=None, max_length=MAX_ID)
    prompt_id: str | None = Col(default=None, max_length=MAX_NAME)
    prompt_version: int | None = None
    meta: dict[str, Any] = Col(
        default_factory=dict, sa_column=Column("metadata", JSONType, nullable=False)
    )
    started_at: datetime = Col(sa_type=UTCDateTime)
    ended_at: datetime = Col(sa_type=UTCDateTime)
    model: str = Col(max_length=MAX_NAME)
    provider: str | None = Col(default=None, max_length=MAX_NAME)
    primary_cost: float | None = None
    primary_at: datetime | None = Col(default=None, sa_type=UTCDateTime)
    cost: float | None = None
    cost_computed: bool = False
    unpriced_calls: int = 0
    input_tokens: int = Col(default=0, sa_type=BigInteger)
    output_tokens: int = Col(default=0, sa_type=BigInteger)
    latency_ms: float = 0.0
    call_count: int = 0
    error_count: int = 0
    created_at: datetime = Col(sa_type=UTCDateTime)
    updated_at: datetime = Col(sa_type=UTCDateTime)


class Call(SQLModel, table=True):
    """One LLM API call inside a trace, as one AgentCost ingestion event describes it."""

    __tablename__ = "calls"

    org_id: str = Col(primary_key=True, max_length=64)
    trace_id: str = Col(primary_key=True, max_length=MAX_ID)
    call_id: str = Col(primary_key=True, max_length=MAX_ID)
    model: str = Col(max_length=MAX_NAME)
    provider: str | None = Col(default=None, max_length=MAX_NAME)
    input_tokens: int = Col(default=0, sa_type=BigInteger)
    output_tokens: int = Col(default=0, sa_type=BigInteger)
    cost: float | None = None
    cost_computed: bool = False
    latency_ms: float | None = None
    status: str = Col(max_length=32)
    error: str | None = None
    agent_id: str | None = Col(default=None, max_length=MAX_ID)
    session_id: str | None = Col(default=None, max_length=MAX_ID)
    meta: dict[str, Any] = Col(
        default_factory=dict, sa_column=Column("metadata", JSONType, nullable=False)
    )
    timestamp: datetime = Col(sa_type=UTCDateTime)


class Feedback(SQLModel, table=True):
    """A vote on a trace (or one call of it); may arrive before its trace and join later."""

    __tablename__ = "feedback"
    __table_args__ = (
        # A trace's feedback in time order, so no plan sorts the org's every vote. Not `id` as
        # well: SQLite would then scan this index for lookups by id instead of the key's.
        Index("ix_feedback_org_trace_created", "org_id", "trace_id", "created_at"),
        Index("ix_feedback_org_created", "org_id", "created_at", "id"),
    )

    org_id: str = Col(primary_key=True, max_length=64)
    id: str = Col(primary_key=True, max_length=MAX_ID)
    trace_id: str = Col(max_length=MAX_ID)
    call_id: str | None = Col(default=None, max_length=MAX_ID)
    score: int
    comment: str | None = None
    source: str = Col(max_length=32)
    user_id: str | None = Col(default=None, max_length=MAX_ID)
    tags: list[str] = Col(default_factory=list, sa_column=Column(JSONType, nullable=False))
    meta: dict[str, Any] = Col(
        default_factory=dict, sa_column=Column("metadata", JSONType, nullable=False)
    )
    created_at: datetime = Col(sa_type=UTCDateTime)
    updated_at: datetime = Col(sa_type=UTCDateTime)


# ---------------------------------------------------------------------------------------------
# Validation shared by every input shape


def _clean_text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid UTF-8 text") from None
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def _text(max_length: int) -> Any:
    return Annotated[
        str,
        StringConstraints(min_length=1, max_length=max_length),
        AfterValidator(_clean_text),
        AfterValidator(_not_blank),
    ]


Identifier = _text(MAX_ID)
Name = _text(MAX_NAME)
Comment = _text(MAX_COMMENT)
Tag = _text(MAX_TAG)


def _check_metadata(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        encoded = json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError):
        raise ValueError("must be a JSON object of finite numbers and valid UTF-8 text") from None
    if len(encoded) > MAX_METADATA_BYTES:
        raise ValueError(f"must be at most {MAX_METADATA_BYTES // 1024} KiB as JSON")
    if b"\\u0000" in encoded or b"\x00" in encoded:
        raise ValueError("must not contain NUL characters")
    return value


Metadata = Annotated[dict[str, Any] | None, AfterValidator(_check_metadata)]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _check_call_time(value: datetime) -> datetime:
    # Roll-ups bucket trace time in ten-minute steps from the epoch; nothing real happened before.
    if as_utc(value) < EPOCH:
        raise ValueError("must not be before 1970-01-01T00:00:00Z")
    return value


CallTime = Annotated[datetime, AfterValidator(_check_call_time)]


def _check_score(value: Any) -> int:
    # bool is an int in Python and 1.0 == 1; the API takes exactly the integers -1, 0 and 1.
    if type(value) is not int or value not in (-1, 0, 1):
        raise ValueError("must be one of the integers -1, 0, 1")
    return value


def _dedupe_tags(tags: list[str] | None) -> list[str] | None:
    return None if tags is None else list(dict.fromkeys(tags))


Tags = Annotated[list[Tag] | None, Field(max_length=MAX_TAGS), AfterValidator(_dedupe_tags)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class FeedbackCreate(_Input):
    trace_id: Identifier
    score: int
    comment: Comment | None = None
    source: FeedbackSource = FeedbackSource.USER
    user_id: Identifier | None = None
    tags: Tags = None
    metadata: Metadata = None
    id: Identifier | None = Field(
        default=None, description="Client-chosen id: submitting it again replaces that feedback."
    )
    call_id: Identifier | None = Field(
        default=None, description="Rate one call of the trace instead of the whole trace."
    )

    _score = field_validator("score", mode="before")(_check_score)


def _check_past(value: datetime | None) -> datetime | None:
    # History is imported after it happened; a time ahead of the clock is a mistake in the data.
    if value is not None and as_utc(value) > utcnow():
        raise ValueError("must not be in the future")
    return value


class FeedbackImport(FeedbackCreate):
    """One line of a feedback history being imported: a submission, plus when it was given."""

    created_at: Annotated[CallTime | None, AfterValidator(_check_past)] = Field(
        default=None, description="When the feedback was given; the import's time when absent."
    )


class FeedbackUpdate(_Input):
    """Fields a PATCH may change; absent fields keep their value, null clears an optional one."""

    score: int | None = None
    comment: Comment | None = None
    source: FeedbackSource | None = None
    user_id: Identifier | None = None
    tags: Tags = None
    metadata: Metadata = None
    call_id: Identifier | None = None

    @field_validator("score", mode="before")
    @classmethod
    def _score(cls, value: Any) -> int:
        return _check_score(value)

    @field_validator("source", mode="before")
    @classmethod
    def _source_stays_set(cls, value: Any) -> Any:
        # Per field (not per model) so the error names "source"; a null score fails _score.
        if value is None:
            raise ValueError("cannot be cleared")
        return value


# Prompt versions have at most nine digits, as ingestion takes them: every one fits the column's
# INTEGER on both databases.
PROMPT_VERSIONS = 10**9
_VERSION = re.compile(r"^[vV]?(\d{1,9})$")


def _prompt_version(value: Any) -> int | None:
    """SDKs send versions as 3, "3" or "v3"; all mean version 3."""
    if value is None:
        return None
    if type(value) is int and 0 <= value < PROMPT_VERSIONS:
        return value
    if isinstance(value, str) and (match := _VERSION.match(value.strip())):
        return int(match.group(1))
    raise ValueError('must be a non-negative integer such as 3 (or "3", "v3")')


class TraceEvent(BaseModel):
    """One LLM call as AgentCost SDKs send it; unknown fields are kept in the trace's metadata."""

    model_config = ConfigDict(extra="allow")

    trace_id: Identifier
    model: Name
    project: Name = "default"
    provider: Name | None = None
    input_tokens: int = Field(default=0, ge=0, le=MAX_TOKENS, strict=True)
    output_tokens: int = Field(default=0, ge=0, le=MAX_TOKENS, strict=True)
    # strict: true/false or "0.5" are not costs (ints and floats are).
    cost: float | None = Field(default=None, ge=0, le=MAX_COST, allow_inf_nan=False, strict=True)
    latency_ms: float | None = Field(
        default=None, ge=0, le=MAX_LATENCY_MS, allow_inf_nan=False, strict=True
    )
    status: Annotated[str, StringConstraints(min_length=1, max_length=32)] = "success"
    error: Comment | None = None
    agent_id: Identifier | None = None
    session_id: Identifier | None = None
    goal_id: Identifier | None = None
    user_id: Identifier | None = None
    name: Name | None = None
    call_id: Identifier | None = Field(
        default=None, description="Client id of the call; resending it is ignored (idempotent)."
    )
    timestamp: CallTime | None = None
    metadata: Metadata = None
    prompt_id: Name | None = None
    prompt_version: int | None = None

    _version = field_validator("prompt_version", mode="before")(_prompt_version)

    @model_validator(mode="after")
    def _lift_metadata(self) -> "TraceEvent":
        """AgentCost's SDK puts prompt ids inside metadata; extra fields join metadata too."""
        meta = dict(self.metadata or {})
        if self.model_extra:
            meta.update(self.model_extra)
        if self.prompt_id is None and meta.get("prompt_id") is not None:
            self.prompt_id = _prompt_id_adapter(meta["prompt_id"])
        if self.prompt_version is None and meta.get("prompt_version") is not None:
            self.prompt_version = _prompt_version(meta["prompt_version"])
        if self.goal_id is not None:
            meta.setdefault("goal_id", self.goal_id)
        # The field's own validator checked what the client sent as metadata; only what joined
        # it here is new (a second json.dumps of every event was 4 % of a trace batch).
        if self.model_extra or meta.keys() - (self.metadata or {}).keys():
            try:
                _check_metadata(meta)
            except ValueError as exc:  # extra fields live in metadata: name it in the reason
                raise ValueError(f"metadata (with the event's extra fields) {exc}") from None
        self.metadata = meta
        return self


def _prompt_id_adapter(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME:
        raise ValueError(f"metadata.prompt_id must be a non-blank string of at most {MAX_NAME}")
    return _clean_text(value)


# ---------------------------------------------------------------------------------------------
# Output shapes


class _Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class FeedbackPublic(_Output):
    id: str
    trace_id: str
    call_id: str | None
    score: int
    comment: str | None
    source: FeedbackSource
    user_id: str | None
    tags: list[str]
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class CallPublic(_Output):
    call_id: str
    trace_id: str
    model: str
    provider: str | None
    input_tokens: int
    output_tokens: int
    cost: float | None
    cost_computed: bool
    latency_ms: float | None
    status: str
    error: str | None
    agent_id: str | None
    session_id: str | None
    metadata: dict[str, Any]
    timestamp: datetime


class TraceScore(BaseModel):
    """Votes on one trace; score = (positive - negative) / total, null with no votes."""

    trace_id: str
    total: int
    positive: int
    negative: int
    neutral: int
    score: float | None


class TracePublic(_Output):
    trace_id: str
    project: str
    name: str | None
    model: str = Field(description="Primary model: the model of the trace's costliest call.")
    provider: str | None
    cost: float | None = Field(description="Sum of its calls' costs; null when none is known.")
    cost_computed: bool = Field(description="True when some cost came from the price table.")
    unpriced_calls: int = Field(description="Calls whose cost is unknown (not in the sum).")
    input_tokens: int
    output_tokens: int
    latency_ms: float
    call_count: int
    error_count: int
    status: str
    prompt_id: str | None
    prompt_version: int | None
    session_id: str | None
    agent_id: str | None
    user_id: str | None
    metadata: dict[str, Any]
    started_at: datetime
    ended_at: datetime


class TraceDetail(TracePublic):
    calls: list[CallPublic]
    feedback: list[FeedbackPublic]
    score: TraceScore


class IngestResult(BaseModel):
    status: str = "ok"
    accepted: int = Field(description="Events stored as new calls.")
    duplicates: int = Field(description="Events whose call_id was already stored (ignored).")
    trace_ids: list[str]
    call_ids: list[str]
    feedback_token: str | None = Field(
        default=None, description="Lets the end user's browser vote on this trace (single events)."
    )
    feedback_token_expires_at: datetime | None = None


class ImportResult(BaseModel):
    """What an import stored, counted the way ingest and submit count."""

    calls: int = Field(description="Events stored as new calls.")
    duplicate_calls: int = Field(description="Events whose call_id was already stored (ignored).")
    feedback: int = Field(description="Feedback items stored, new or replacing the same id.")


class QualityMetrics(BaseModel):
    """DESIGN.md's metric table; ratios are null for an empty group, never a division by zero."""

    total_feedback: int
    positive: int
    negative: int
    neutral: int
    positive_pct: float | None
    negative_pct: float | None
    neutral_pct: float | None
    avg_score: float | None
    rated_traces: int
    positive_traces: int
    total_cost: float | None
    avg_cost: float | None
    cost_per_positive: float | None
    positive_pct_low: float | None
    positive_pct_high: float | None


class ModelQuality(QualityMetrics):
    model: str


class PromptVersionQuality(QualityMetrics):
    prompt_id: str
    version: int | None


class FeedbackSummary(QualityMetrics):
    unknown_trace_feedback: int = Field(
        description="Feedback whose trace has not arrived: counted here, not in per-model groups."
    )
    by_source: dict[str, int]


# ---------------------------------------------------------------------------------------------
# Tenants and credentials


class Scope(StrEnum):
    """What a key may do: ingest writes traces and feedback, read queries, admin does both and
    may also delete and manage keys."""

    INGEST = "ingest"
    READ = "read"
    ADMIN = "admin"


class Organization(SQLModel, table=True):
    __tablename__ = "organizations"

    id: str = Col(primary_key=True, max_length=64)
    created_at: datetime = Col(sa_type=UTCDateTime)


class ApiKey(SQLModel, table=True):
    """Only a hash of the key's secret is stored; the key itself is shown once, at creation."""

    __tablename__ = "api_keys"

    id: str = Col(primary_key=True, max_length=32)
    org_id: str = Col(index=True, max_length=64)
    scope: str = Col(max_length=16)
    project: str | None = Col(default=None, max_length=MAX_NAME)
    name: str | None = Col(default=None, max_length=MAX_NAME)
    secret_hash: str = Col(max_length=64)
    created_at: datetime = Col(sa_type=UTCDateTime)
    revoked_at: datetime | None = Col(default=None, sa_type=UTCDateTime)


class ServerSecret(SQLModel, table=True):
    """Generated secrets shared by every worker and restart (e.g. the feedback-token key)."""

    __tablename__ = "server_secrets"

    name: str = Col(primary_key=True, max_length=64)
    value: str = Col(max_length=200)
    created_at: datetime = Col(sa_type=UTCDateTime)


class ApiKeyPublic(_Output):
    id: str
    org_id: str
    scope: Scope
    project: str | None
    name: str | None
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreate(_Input):
    scope: Scope
    project: Name | None = Field(default=None, description="Restrict the key to one project.")
    name: Name | None = Field(default=None, description="A label to recognise the key by.")


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="The key itself: shown in this answer only, never again.")


class FeedbackTokenRequest(_Input):
    trace_id: Identifier
    user_id: Identifier | None = None
    ttl_seconds: int | None = Field(default=None, ge=60, le=30 * 24 * 3600)


class FeedbackToken(BaseModel):
    token: str
    expires_at: datetime


class QualityRollup(SQLModel, table=True):
    """Vote and cost sums per group and ten minutes, hour or day of trace time (and in all),
    kept current by every write, so analytics cost grows with the number of groups, not of
    rows (see services/rollups.py)."""

    __tablename__ = "quality_rollups"
    # SQLite keeps the rows in the primary-key B-tree: one tree per upsert (migration 0006).
    __table_args__ = {"sqlite_with_rowid": False}

    # Key order serves the reads: one level and source, then a range of buckets.
    org_id: str = Col(primary_key=True, max_length=64)
    dim: str = Col(primary_key=True, max_length=8)
    source: str = Col(primary_key=True, max_length=32)
    bucket: int = Col(primary_key=True)
    key1: str = Col(primary_key=True, max_length=MAX_NAME)
    key2: int = Col(primary_key=True)
    project: str = Col(primary_key=True, max_length=MAX_NAME)
    total: int = 0
    positive: int = 0
    negative: int = 0
    rated: int = 0
    positive_traces: int = 0
    cost_nanos: int = Col(default=0, sa_type=BigInteger)
    costed: int = 0
    unknown: int = 0
