"""Fixtures of the GraphQL tests: a client helper, and a small data set seeded through services.

The data set (every test that needs it gets it on SQLite and on PostgreSQL):

trace  project  calls (model, cost)                   prompt      votes            score
t1     alpha    gpt-4.1 0.004, gpt-4.1-mini 0.001     support v1  +1, -1, +1       0.333
t2     alpha    gpt-4.1-mini 0.0006                   support v2  +1               1.0
t3     beta     claude-sonnet-4 0.02                  -           -                null
t4     beta     mystery-model (no cost known)         -           0                0.0
ghost  (never ingested)                               -           +1 (f6)          1.0
"""

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from agentcost.db import Database
from agentcost.models import FeedbackCreate, TraceEvent
from agentcost.services import feedback, traces

ORG = "default"

Gql = Callable[..., Awaitable[dict[str, Any]]]


def at(day: int, minute: int = 0) -> datetime:
    return datetime(2025, 1, day, 10, minute, tzinfo=UTC)


EVENTS = [
    {"trace_id": "t1", "call_id": "c1", "project": "alpha", "model": "gpt-4.1", "cost": 0.004,
     "input_tokens": 100, "output_tokens": 50, "latency_ms": 800.0, "timestamp": at(1),
     "prompt_id": "support", "prompt_version": 1},
    {"trace_id": "t1", "call_id": "c2", "project": "alpha", "model": "gpt-4.1-mini",
     "cost": 0.001, "input_tokens": 40, "output_tokens": 10, "latency_ms": 200.0,
     "timestamp": at(1, 1)},
    {"trace_id": "t2", "call_id": "c3", "project": "alpha", "model": "gpt-4.1-mini",
     "cost": 0.0006, "timestamp": at(2), "prompt_id": "support", "prompt_version": 2},
    {"trace_id": "t3", "call_id": "c4", "project": "beta", "model": "claude-sonnet-4",
     "cost": 0.02, "timestamp": at(3)},
    {"trace_id": "t4", "call_id": "c5", "project": "beta", "model": "mystery-model",
     "timestamp": at(4)},
]  # fmt: skip

FEEDBACK = [
    {"id": "f1", "trace_id": "t1", "score": 1, "user_id": "u1", "tags": ["good"]},
    {"id": "f2", "trace_id": "t1", "score": -1, "source": "human-review", "comment": "wrong"},
    {"id": "f3", "trace_id": "t1", "score": 1, "source": "eval"},
    {"id": "f4", "trace_id": "t2", "score": 1, "tags": ["good", "fast"]},
    {"id": "f5", "trace_id": "t4", "score": 0, "source": "automated"},
    {"id": "f6", "trace_id": "ghost", "score": 1},
]


async def seed_dataset(db: Database) -> None:
    await traces.ingest(db, org_id=ORG, events=[TraceEvent.model_validate(e) for e in EVENTS])
    await feedback.submit(
        db, org_id=ORG, items=[FeedbackCreate.model_validate(f) for f in FEEDBACK]
    )


@pytest.fixture
async def seeded(db: Database) -> Database:
    await seed_dataset(db)
    return db


@pytest.fixture
def gql(client: httpx.AsyncClient) -> Gql:
    """POST one operation; the HTTP layer must always answer 200 with a JSON body."""

    async def run(query: str, variables: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
        r = await client.post("/graphql", json={"query": query, "variables": variables or {}, **kw})
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    return run


@pytest.fixture
def gql_data(gql: Gql) -> Gql:
    """Like ``gql``, for operations that must succeed: asserts no errors, returns ``data``."""

    async def run(query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = await gql(query, variables)
        assert "errors" not in body, body["errors"]
        result: dict[str, Any] = body["data"]
        return result

    return run
