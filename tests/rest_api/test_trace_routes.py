"""POST /api/trace, /api/trace/batch, GET /api/traces and /api/traces/{id}."""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from genai_prices import Usage, calc_price

pytestmark = pytest.mark.anyio

T0 = datetime(2025, 5, 1, 8, 0, tzinfo=UTC)

# Every field the AgentCost SDK sends for one LLM call.
SDK_EVENT = {
    "trace_id": "sdk-1",
    "project": "support",
    "model": "gpt-4.1",
    "provider": "openai",
    "input_tokens": 1200,
    "output_tokens": 300,
    "cost": 0.0048,
    "latency_ms": 812.5,
    "status": "success",
    "error": None,
    "agent_id": "agent-7",
    "session_id": "sess-1",
    "goal_id": "goal-3",
    "timestamp": "2025-05-01T08:00:00Z",
    "metadata": {"prompt_id": "support-bot", "prompt_version": 2, "env": "prod"},
}


def iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


async def test_one_event_makes_one_trace(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/trace", json=SDK_EVENT)
    assert r.status_code == 201
    body = r.json()
    assert body["status"] == "ok"
    assert (body["accepted"], body["duplicates"]) == (1, 0)
    assert body["trace_ids"] == ["sdk-1"]
    [call_id] = body["call_ids"]

    r = await client.get("/api/traces/sdk-1")
    assert r.status_code == 200
    t = r.json()
    assert t["trace_id"] == "sdk-1"
    assert t["project"] == "support"
    assert t["model"] == "gpt-4.1"
    assert t["provider"] == "openai"
    assert t["cost"] == 0.0048
    assert t["cost_computed"] is False
    assert (t["input_tokens"], t["output_tokens"]) == (1200, 300)
    assert t["latency_ms"] == 812.5
    assert t["call_count"] == 1
    assert t["status"] == "success"
    assert (t["agent_id"], t["session_id"]) == ("agent-7", "sess-1")
    assert (t["prompt_id"], t["prompt_version"]) == ("support-bot", 2)
    assert t["metadata"]["goal_id"] == "goal-3"
    assert t["metadata"]["env"] == "prod"
    assert t["started_at"] == t["ended_at"] == "2025-05-01T08:00:00Z"
    [call] = t["calls"]
    assert call["call_id"] == call_id
    assert call["model"] == "gpt-4.1"
    assert call["cost"] == 0.0048
    assert t["feedback"] == []
    assert t["score"] == {
        "trace_id": "sdk-1",
        "total": 0,
        "positive": 0,
        "negative": 0,
        "neutral": 0,
        "score": None,
    }


async def test_several_events_roll_up_into_one_trace(client: httpx.AsyncClient) -> None:
    events = [
        {
            "trace_id": "multi",
            "call_id": "plan",
            "project": "p",
            "model": "gpt-4.1-mini",
            "cost": 0.002,
            "input_tokens": 10,
            "output_tokens": 5,
            "latency_ms": 10,
            "timestamp": iso(T0),
        },
        {
            "trace_id": "multi",
            "call_id": "answer",
            "project": "p",
            "model": "gpt-4.1",
            "cost": 0.02,
            "input_tokens": 100,
            "output_tokens": 50,
            "latency_ms": 30,
            "timestamp": iso(T0 + timedelta(seconds=2)),
        },
        {
            "trace_id": "multi",
            "call_id": "check",
            "project": "p",
            "model": "gpt-4.1-mini",
            "cost": 0.003,
            "input_tokens": 20,
            "output_tokens": 1,
            "status": "error",
            "error": "rate limited",
            "timestamp": iso(T0 + timedelta(seconds=4)),
        },
    ]
    for e in events:
        assert (await client.post("/api/trace", json=e)).status_code == 201
    # Resending a call (a client retry) changes nothing.
    r = await client.post("/api/trace", json=events[1])
    assert (r.json()["accepted"], r.json()["duplicates"]) == (0, 1)
    t = (await client.get("/api/traces/multi")).json()
    assert t["call_count"] == 3
    assert t["cost"] == pytest.approx(0.025)
    assert t["model"] == "gpt-4.1"
    assert (t["input_tokens"], t["output_tokens"]) == (130, 56)
    assert t["latency_ms"] == 40
    assert t["error_count"] == 1
    assert t["status"] == "error"
    assert t["started_at"] == iso(T0)
    assert t["ended_at"] == iso(T0 + timedelta(seconds=4))
    assert [c["call_id"] for c in t["calls"]] == ["plan", "answer", "check"]
    assert t["calls"][2]["error"] == "rate limited"


async def test_cost_from_tokens_and_null_for_unknown_model(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/api/trace/batch",
        json=[
            {"trace_id": "computed", "model": "gpt-4.1-mini", "provider": "openai",
             "input_tokens": 4000, "output_tokens": 1000},
            {"trace_id": "unknown", "model": "our-finetune-v9", "input_tokens": 4000,
             "output_tokens": 1000},
        ],
    )  # fmt: skip
    assert r.status_code == 201
    expected = float(
        calc_price(
            Usage(input_tokens=4000, output_tokens=1000),
            model_ref="gpt-4.1-mini",
            provider_id="openai",
        ).total_price
    )
    computed = (await client.get("/api/traces/computed")).json()
    assert computed["cost"] == pytest.approx(expected)
    assert computed["cost_computed"] is True
    assert computed["calls"][0]["cost_computed"] is True
    unknown = (await client.get("/api/traces/unknown")).json()
    assert unknown["cost"] is None
    assert unknown["cost_computed"] is False
    assert unknown["unpriced_calls"] == 1
    assert unknown["calls"][0]["cost"] is None


@pytest.mark.parametrize("wrapped", [False, True])
async def test_batch_list_or_events_object(client: httpx.AsyncClient, wrapped: bool) -> None:
    events = [
        {"trace_id": "b1", "call_id": "1", "model": "gpt-4.1", "cost": 0.5},
        {"trace_id": "b1", "call_id": "2", "model": "gpt-4.1-mini", "cost": 0.25},
        {"trace_id": "b2", "model": "gpt-4.1-mini", "cost": 0.1},
    ]
    r = await client.post("/api/trace/batch", json={"events": events} if wrapped else events)
    assert r.status_code == 201
    body = r.json()
    assert (body["accepted"], body["duplicates"]) == (3, 0)
    assert body["trace_ids"] == ["b1", "b2"]
    assert body["call_ids"][:2] == ["1", "2"]
    b1 = (await client.get("/api/traces/b1")).json()
    assert (b1["call_count"], b1["cost"], b1["model"]) == (2, 0.75, "gpt-4.1")


async def test_list_traces_filters_and_cursor(client: httpx.AsyncClient) -> None:
    events = []
    for i in range(9):
        events.append(
            {
                "trace_id": f"t{i}",
                "project": "alpha" if i < 5 else "beta",
                "model": "openai/gpt-4o" if i % 3 == 0 else "gpt-4.1",
                "cost": 0.01,
                "prompt_id": "bot" if i % 2 else "faq",
                "prompt_version": 1 + i % 3,
                "timestamp": iso(T0 + timedelta(minutes=i)),
            }
        )
    assert (await client.post("/api/trace/batch", json=events)).status_code == 201

    async def ids(**params: Any) -> list[str]:
        r = await client.get("/api/traces", params=params)
        assert r.status_code == 200, r.text
        return [t["trace_id"] for t in r.json()]

    assert await ids() == [f"t{i}" for i in reversed(range(9))]
    assert await ids(project="beta") == ["t8", "t7", "t6", "t5"]
    assert await ids(model="openai/gpt-4o") == ["t6", "t3", "t0"]
    assert await ids(prompt_id="bot") == ["t7", "t5", "t3", "t1"]
    assert await ids(prompt_id="bot", prompt_version=2) == ["t7", "t1"]
    assert await ids(
        since=iso(T0 + timedelta(minutes=3)), until=iso(T0 + timedelta(minutes=5))
    ) == [
        "t4",
        "t3",
    ]
    # Paging: the plain list body, the next cursor in X-Next-Cursor (and a Link header).
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 4, "project": "alpha"}
    pages = 0
    while True:
        r = await client.get("/api/traces", params=params)
        assert r.status_code == 200
        assert isinstance(r.json(), list)
        seen += [t["trace_id"] for t in r.json()]
        pages += 1
        cursor = r.headers.get("X-Next-Cursor")
        if cursor is None:
            assert "Link" not in r.headers
            break
        assert 'rel="next"' in r.headers["Link"]
        params["cursor"] = cursor
    assert pages == 2
    assert seen == ["t4", "t3", "t2", "t1", "t0"]
    r = await client.get("/api/traces", params={"limit": 1000})
    assert r.status_code == 200
    assert len(r.json()) == 9
    r = await client.get("/api/traces", params={"limit": 1001})
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "limit"


async def test_trace_detail_includes_feedback_and_score(client: httpx.AsyncClient) -> None:
    await client.post("/api/trace", json={"trace_id": "d", "model": "gpt-4.1", "cost": 0.01})
    for score in (1, 1, -1):
        r = await client.post("/api/feedback", json={"trace_id": "d", "score": score})
        assert r.status_code == 201
    t = (await client.get("/api/traces/d")).json()
    assert [f["score"] for f in t["feedback"]] == [1, 1, -1]
    assert t["score"]["total"] == 3
    assert t["score"]["score"] == round(1 / 3, 3)


async def test_unknown_trace_is_404(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/traces/does-not-exist")
    assert r.status_code == 404
    assert "does-not-exist" in r.json()["detail"]


async def test_extra_fields_and_goal_id_are_kept_in_metadata(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/api/trace",
        json={
            "trace_id": "x",
            "model": "gpt-4.1",
            "goal_id": "g1",
            "framework": "langchain",
            "tool_calls": 3,
            "metadata": {"prompt_version": "v4", "prompt_id": "writer"},
        },
    )
    assert r.status_code == 201
    t = (await client.get("/api/traces/x")).json()
    assert t["metadata"]["goal_id"] == "g1"
    assert t["metadata"]["framework"] == "langchain"
    assert t["metadata"]["tool_calls"] == 3
    assert (t["prompt_id"], t["prompt_version"]) == ("writer", 4)
    assert t["calls"][0]["metadata"]["framework"] == "langchain"
