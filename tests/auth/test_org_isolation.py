"""Two organisations using the same trace ids never meet: route by route, nothing of org B is
visible to, counted for, or changeable by org A, and B's ids answer 404 (never 403)."""

import httpx
import pytest

from agentcost.db import Database
from agentcost.models import Scope
from agentcost.services import auth

pytestmark = pytest.mark.anyio


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def seed(client: httpx.AsyncClient, key: str, *, model: str, score: int) -> str:
    """The same trace ids in each org, with org-specific models, costs and votes."""
    events = [
        {
            "trace_id": "shared-1",
            "model": model,
            "cost": 0.01,
            "prompt_id": "bot",
            "prompt_version": 1,
        },
        {
            "trace_id": "shared-2",
            "model": model,
            "cost": 0.02,
            "prompt_id": "bot",
            "prompt_version": 1,
        },
    ]
    r = await client.post("/api/trace/batch", json=events, headers=bearer(key))
    assert r.status_code == 201
    r = await client.post(
        "/api/feedback/batch",
        json=[
            {"trace_id": "shared-1", "score": score, "tags": ["t"], "id": "same-id"},
            {"trace_id": "shared-2", "score": score, "tags": ["t"]},
            {"trace_id": "orphan", "score": score},
        ],
        headers=bearer(key),
    )
    assert r.status_code == 201
    return r.json()[1]["id"]


async def test_nothing_crosses_organisations(client: httpx.AsyncClient, db: Database) -> None:
    a, _ = await auth.create_key(db, org_id="org-a", scope=Scope.ADMIN)
    b, _ = await auth.create_key(db, org_id="org-b", scope=Scope.ADMIN)
    await seed(client, a, model="model-a", score=1)
    b_feedback_id = await seed(client, b, model="model-b", score=-1)

    async def get(path: str) -> httpx.Response:
        return await client.get(path, headers=bearer(a))

    traces = (await get("/api/traces")).json()
    assert {t["model"] for t in traces} == {"model-a"}
    detail = (await get("/api/traces/shared-1")).json()
    assert detail["model"] == "model-a"
    assert [f["score"] for f in detail["feedback"]] == [1]
    assert detail["score"]["total"] == 1

    listing = (await get("/api/feedback?limit=1000")).json()
    assert len(listing) == 3
    assert {f["score"] for f in listing} == {1}
    assert (await get("/api/feedback?tag=t")).json().__len__() == 2
    assert (await get("/api/feedback?model=model-b")).json() == []

    summary = (await get("/api/feedback/summary")).json()
    assert (summary["total_feedback"], summary["positive"], summary["negative"]) == (3, 3, 0)
    assert summary["unknown_trace_feedback"] == 1
    assert summary["total_cost"] == pytest.approx(0.03)
    models = (await get("/api/feedback/quality/models")).json()
    assert [m["model"] for m in models] == ["model-a"]
    assert (await get("/api/feedback/quality/model/model-b")).status_code == 404
    prompt = (await get("/api/feedback/quality/prompt/bot")).json()
    assert [(p["version"], p["total_feedback"], p["positive"]) for p in prompt] == [(1, 2, 2)]
    assert [f["score"] for f in (await get("/api/feedback/trace/shared-1")).json()] == [1]
    score = (await get("/api/feedback/trace/shared-1/score")).json()
    assert (score["total"], score["positive"], score["negative"]) == (1, 1, 0)

    # B's own feedback ids are unknown to A: read, change and delete all answer 404.
    assert (await get(f"/api/feedback/{b_feedback_id}")).status_code == 404
    r = await client.patch(f"/api/feedback/{b_feedback_id}", json={"score": 1}, headers=bearer(a))
    assert r.status_code == 404
    r = await client.delete(f"/api/feedback/{b_feedback_id}", headers=bearer(a))
    assert r.status_code == 404
    # The client-chosen id exists in both orgs as two separate rows.
    assert (await get("/api/feedback/same-id")).json()["score"] == 1
    r = await client.delete("/api/feedback/same-id", headers=bearer(a))
    assert r.status_code == 200
    b_view = await client.get("/api/feedback/same-id", headers=bearer(b))
    assert b_view.json()["score"] == -1
    assert (await client.get(f"/api/feedback/{b_feedback_id}", headers=bearer(b))).json()[
        "score"
    ] == -1

    # B's view is untouched by everything A did.
    b_summary = (await client.get("/api/feedback/summary", headers=bearer(b))).json()
    assert (b_summary["total_feedback"], b_summary["negative"]) == (3, 3)


async def test_feedback_token_of_one_org_cannot_touch_another(
    client: httpx.AsyncClient, db: Database
) -> None:
    a, _ = await auth.create_key(db, org_id="org-a", scope=Scope.ADMIN)
    b, _ = await auth.create_key(db, org_id="org-b", scope=Scope.ADMIN)
    await seed(client, a, model="model-a", score=1)
    await seed(client, b, model="model-b", score=-1)
    token = (
        await client.post("/api/feedback/token", json={"trace_id": "shared-1"}, headers=bearer(a))
    ).json()["token"]
    r = await client.post(
        "/api/feedback", json={"trace_id": "shared-1", "score": 0}, headers=bearer(token)
    )
    assert r.status_code == 201
    b_score = (await client.get("/api/feedback/trace/shared-1/score", headers=bearer(b))).json()
    assert (b_score["total"], b_score["neutral"]) == (1, 0)
    a_score = (await client.get("/api/feedback/trace/shared-1/score", headers=bearer(a))).json()
    assert (a_score["total"], a_score["neutral"]) == (2, 1)
