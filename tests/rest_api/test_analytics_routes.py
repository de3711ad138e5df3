"""Analytics routes: summary, quality by model, one model, by prompt version; their filters."""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.anyio

T0 = datetime(2025, 6, 2, tzinfo=UTC)
GUIDE_MODEL_FIELDS = {
    "model": str,
    "total_feedback": int,
    "positive_pct": float,
    "negative_pct": float,
    "avg_score": float,
    "avg_cost": float,
    "cost_per_positive": float,
}
DESIGN_FIELDS = {
    "positive",
    "negative",
    "neutral",
    "rated_traces",
    "positive_pct_low",
    "positive_pct_high",
}


def sig3(value: float) -> float:
    return float(f"{value:.3g}")


def iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


async def seed(client: httpx.AsyncClient) -> None:
    """Two projects, three models (one with slashes), two weeks, votes from several sources."""
    events = [
        {"trace_id": "w1-a", "project": "web", "model": "openai/gpt-4o", "cost": 0.4,
         "timestamp": iso(T0), "prompt_id": "bot", "prompt_version": 1},
        {"trace_id": "w1-b", "project": "web", "model": "gpt-4.1-mini", "cost": 0.1,
         "timestamp": iso(T0 + timedelta(days=1)), "prompt_id": "bot", "prompt_version": 2},
        {"trace_id": "w2-a", "project": "api", "model": "openai/gpt-4o", "cost": 0.2,
         "timestamp": iso(T0 + timedelta(days=8)), "prompt_id": "bot", "prompt_version": 2},
        {"trace_id": "w2-b", "project": "api", "model": "meta-llama/Llama-3.1-8B",
         "cost": 0.05, "timestamp": iso(T0 + timedelta(days=9))},
    ]  # fmt: skip
    assert (await client.post("/api/trace/batch", json=events)).status_code == 201
    votes = [
        {"trace_id": "w1-a", "score": 1, "source": "user"},
        {"trace_id": "w1-a", "score": 1, "source": "eval"},
        {"trace_id": "w1-b", "score": -1, "source": "user"},
        {"trace_id": "w2-a", "score": 0, "source": "human-review"},
        {"trace_id": "w2-a", "score": 1, "source": "user"},
        {"trace_id": "w2-b", "score": 1, "source": "automated"},
        {"trace_id": "not-yet", "score": -1, "source": "user"},
    ]
    assert (await client.post("/api/feedback/batch", json=votes)).status_code == 201


async def get(client: httpx.AsyncClient, path: str, **params: Any) -> Any:
    r = await client.get(path, params=params)
    assert r.status_code == 200, r.text
    return r.json()


async def test_summary(client: httpx.AsyncClient) -> None:
    await seed(client)
    s = await get(client, "/api/feedback/summary")
    assert s["total_feedback"] == 7
    assert (s["positive"], s["negative"], s["neutral"]) == (4, 2, 1)
    assert s["positive_pct"] == round(100 * 4 / 7, 1)
    assert s["negative_pct"] == round(100 * 2 / 7, 1)
    assert s["avg_score"] == round(2 / 7, 3)
    assert s["unknown_trace_feedback"] == 1
    assert s["rated_traces"] == 4
    # w1-a (2 up), w2-a (mean 0.5), w2-b: positive; w1-b negative.
    assert s["positive_traces"] == 3
    # Money is given to 3 significant figures, as the guide shows it (0.00369, 0.000766).
    assert s["avg_cost"] == sig3((0.4 + 0.1 + 0.2 + 0.05) / 4) == 0.188
    assert s["cost_per_positive"] == 0.25
    assert s["by_source"] == {"user": 4, "eval": 1, "human-review": 1, "automated": 1}
    assert s["positive_pct_low"] < s["positive_pct"] < s["positive_pct_high"]


async def test_summary_filters(client: httpx.AsyncClient) -> None:
    await seed(client)
    web = await get(client, "/api/feedback/summary", project="web")
    assert (web["total_feedback"], web["unknown_trace_feedback"], web["rated_traces"]) == (3, 0, 2)
    user = await get(client, "/api/feedback/summary", source="user")
    assert (user["total_feedback"], user["unknown_trace_feedback"]) == (4, 1)
    assert user["by_source"] == {"user": 4}
    week1 = await get(
        client, "/api/feedback/summary", since=iso(T0), until=iso(T0 + timedelta(days=7))
    )
    assert (week1["total_feedback"], week1["positive"], week1["negative"]) == (3, 2, 1)
    assert week1["avg_cost"] == 0.25
    week2 = await get(client, "/api/feedback/summary", since=iso(T0 + timedelta(days=7)))
    assert week2["total_feedback"] == 3
    nothing = await get(client, "/api/feedback/summary", project="nowhere")
    assert nothing["total_feedback"] == 0
    assert nothing["avg_score"] is None
    assert nothing["cost_per_positive"] is None
    combined = await get(client, "/api/feedback/summary", project="api", source="user")
    assert (combined["total_feedback"], combined["positive"]) == (1, 1)


async def test_quality_by_model(client: httpx.AsyncClient) -> None:
    await seed(client)
    rows = await get(client, "/api/feedback/quality/models")
    assert [r["model"] for r in rows] == [
        "openai/gpt-4o",
        "gpt-4.1-mini",
        "meta-llama/Llama-3.1-8B",
    ]
    for row in rows:
        for name, kind in GUIDE_MODEL_FIELDS.items():
            assert name in row
            assert row[name] is None or isinstance(row[name], kind), name
        assert set(row) >= DESIGN_FIELDS
    gpt4o = rows[0]
    assert gpt4o["total_feedback"] == 4
    assert (gpt4o["positive_pct"], gpt4o["negative_pct"]) == (75.0, 0.0)
    assert gpt4o["avg_score"] == 0.75
    assert gpt4o["rated_traces"] == 2
    assert gpt4o["avg_cost"] == 0.3
    assert gpt4o["cost_per_positive"] == 0.3
    mini = rows[1]
    assert (mini["total_feedback"], mini["negative_pct"], mini["cost_per_positive"]) == (
        1,
        100.0,
        None,
    )
    filtered = await get(client, "/api/feedback/quality/models", source="eval")
    assert [(r["model"], r["total_feedback"]) for r in filtered] == [("openai/gpt-4o", 1)]
    filtered = await get(client, "/api/feedback/quality/models", project="api")
    assert sorted(r["model"] for r in filtered) == ["meta-llama/Llama-3.1-8B", "openai/gpt-4o"]
    week2 = await get(
        client, "/api/feedback/quality/models", since=iso(T0 + timedelta(days=8)),
        until=iso(T0 + timedelta(days=9)),
    )  # fmt: skip
    assert [(r["model"], r["total_feedback"], r["avg_cost"]) for r in week2] == [
        ("openai/gpt-4o", 2, 0.2)
    ]


async def test_quality_of_one_model_with_slashes(client: httpx.AsyncClient) -> None:
    await seed(client)
    all_rows = {r["model"]: r for r in await get(client, "/api/feedback/quality/models")}
    for model in ("openai/gpt-4o", "meta-llama/Llama-3.1-8B", "gpt-4.1-mini"):
        one = await get(client, f"/api/feedback/quality/model/{model}")
        assert one == all_rows[model]
    encoded = await get(client, "/api/feedback/quality/model/openai%2Fgpt-4o")
    assert encoded == all_rows["openai/gpt-4o"]
    week1 = await get(
        client,
        "/api/feedback/quality/model/openai/gpt-4o",
        until=iso(T0 + timedelta(days=7)),
        source="user",
    )
    assert (week1["total_feedback"], week1["avg_cost"]) == (1, 0.4)
    # Known model, nothing in the window: zeros and nulls, not an error.
    empty = await get(client, "/api/feedback/quality/model/gpt-4.1-mini", project="api")
    assert empty["model"] == "gpt-4.1-mini"
    assert (empty["total_feedback"], empty["avg_score"], empty["avg_cost"]) == (0, None, None)
    r = await client.get("/api/feedback/quality/model/openai/never-heard-of")
    assert r.status_code == 404


async def test_quality_by_prompt_version(client: httpx.AsyncClient) -> None:
    await seed(client)
    rows = await get(client, "/api/feedback/quality/prompt/bot")
    assert [r["version"] for r in rows] == [1, 2]
    v1, v2 = rows
    for row in rows:
        assert {"version", "total_feedback", "positive_pct", "avg_score"} <= set(row)
        assert row["prompt_id"] == "bot"
    assert (v1["total_feedback"], v1["positive_pct"], v1["avg_score"]) == (2, 100.0, 1.0)
    # v2: w1-b (-1) and w2-a (0, +1): 3 votes, the cost of each trace once.
    assert (v2["total_feedback"], v2["positive"], v2["negative"]) == (3, 1, 1)
    assert v2["avg_score"] == 0.0
    assert v2["rated_traces"] == 2
    assert v2["avg_cost"] == 0.15
    assert v2["cost_per_positive"] == 0.3
    web = await get(client, "/api/feedback/quality/prompt/bot", project="web")
    assert [(r["version"], r["total_feedback"]) for r in web] == [(1, 2), (2, 1)]
    recent = await get(
        client, "/api/feedback/quality/prompt/bot", since=iso(T0 + timedelta(days=1))
    )
    assert [(r["version"], r["total_feedback"]) for r in recent] == [(2, 3)]
    assert await get(client, "/api/feedback/quality/prompt/bot", source="automated") == []
    assert (await client.get("/api/feedback/quality/prompt/unknown-prompt")).status_code == 404


async def test_empty_database_analytics(client: httpx.AsyncClient) -> None:
    assert await get(client, "/api/feedback/quality/models") == []
    s = await get(client, "/api/feedback/summary")
    assert s["total_feedback"] == 0
    assert s["unknown_trace_feedback"] == 0
    assert s["positive_pct"] is None
    assert (await client.get("/api/feedback/quality/model/gpt-4.1")).status_code == 404
