"""Every /api/feedback route that reads or writes feedback items (analytics live elsewhere)."""

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.anyio

FEEDBACK_FIELDS = {
    "id",
    "trace_id",
    "call_id",
    "score",
    "comment",
    "source",
    "user_id",
    "tags",
    "metadata",
    "created_at",
    "updated_at",
}


async def post(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    r = await client.post("/api/feedback", json=body)
    assert r.status_code in (200, 201), r.text
    return r.json()


async def ids(client: httpx.AsyncClient, **params: Any) -> list[str]:
    r = await client.get("/api/feedback", params={"limit": 1000, **params})
    assert r.status_code == 200, r.text
    assert isinstance(r.json(), list)
    return [f["id"] for f in r.json()]


async def test_post_returns_the_stored_item(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/api/feedback",
        json={
            "trace_id": "abc-123",
            "score": -1,
            "comment": "Hallucinated a date",
            "tags": ["hallucination"],
            "source": "human-review",
            "user_id": "jane",
            "metadata": {"ui": "web"},
        },
    )
    assert r.status_code == 201
    body = r.json()
    assert set(body) == FEEDBACK_FIELDS
    assert body["trace_id"] == "abc-123"
    assert body["score"] == -1
    assert body["comment"] == "Hallucinated a date"
    assert body["tags"] == ["hallucination"]
    assert body["source"] == "human-review"
    assert body["user_id"] == "jane"
    assert body["metadata"] == {"ui": "web"}
    assert body["call_id"] is None
    created = datetime.fromisoformat(body["created_at"])
    assert created.tzinfo is not None
    assert body["created_at"] == body["updated_at"]
    r = await client.get(f"/api/feedback/{body['id']}")
    assert r.status_code == 200
    assert r.json() == body


async def test_client_id_twice_is_one_row_and_the_second_replaces(
    client: httpx.AsyncClient,
) -> None:
    r1 = await client.post(
        "/api/feedback", json={"id": "fb-1", "trace_id": "t", "score": 1, "tags": ["a"]}
    )
    r2 = await client.post(
        "/api/feedback", json={"id": "fb-1", "trace_id": "t", "score": -1, "comment": "changed"}
    )
    assert (r1.status_code, r2.status_code) == (201, 200)
    assert await ids(client) == ["fb-1"]
    got = (await client.get("/api/feedback/fb-1")).json()
    assert got["score"] == -1
    assert got["comment"] == "changed"
    assert got["tags"] == []
    assert got["created_at"] == r1.json()["created_at"]
    score = (await client.get("/api/feedback/trace/t/score")).json()
    assert (score["total"], score["negative"]) == (1, 1)


async def test_get_patch_delete_by_id(client: httpx.AsyncClient) -> None:
    saved = await post(client, trace_id="t", score=1, comment="good", tags=["x"], user_id="u")
    fid = saved["id"]
    r = await client.patch(f"/api/feedback/{fid}", json={"score": 0, "comment": None})
    assert r.status_code == 200
    patched = r.json()
    assert patched["score"] == 0
    assert patched["comment"] is None
    assert patched["tags"] == ["x"]
    assert patched["user_id"] == "u"
    assert patched["created_at"] == saved["created_at"]
    assert patched["updated_at"] >= saved["updated_at"]
    assert (await client.get(f"/api/feedback/{fid}")).json() == patched

    r = await client.delete(f"/api/feedback/{fid}")
    assert r.status_code == 200
    assert r.json() == {"deleted": True, "id": fid}
    r = await client.delete(f"/api/feedback/{fid}")
    assert r.status_code == 404
    assert (await client.get(f"/api/feedback/{fid}")).status_code == 404
    assert (await client.patch(f"/api/feedback/{fid}", json={"score": 1})).status_code == 404
    assert await ids(client) == []


async def test_patch_cannot_clear_score_or_source(client: httpx.AsyncClient) -> None:
    saved = await post(client, trace_id="t", score=1)
    for field in ("score", "source"):
        r = await client.patch(f"/api/feedback/{saved['id']}", json={field: None})
        assert r.status_code == 422
        [err] = r.json()["detail"]
        assert err["field"] == field
        assert err["reason"]
    assert (await client.get(f"/api/feedback/{saved['id']}")).json() == saved


@pytest.mark.parametrize("wrapped", [False, True])
async def test_batch(client: httpx.AsyncClient, wrapped: bool) -> None:
    items = [
        {"trace_id": "t1", "score": 1},
        {"trace_id": "t1", "score": -1, "id": "mine", "source": "eval"},
        {"trace_id": "t2", "score": 0, "tags": ["meh"]},
    ]
    r = await client.post("/api/feedback/batch", json={"items": items} if wrapped else items)
    assert r.status_code == 201
    body = r.json()
    assert [f["trace_id"] for f in body] == ["t1", "t1", "t2"]
    assert [f["score"] for f in body] == [1, -1, 0]
    assert body[1]["id"] == "mine"
    assert body[1]["source"] == "eval"
    assert sorted(await ids(client)) == sorted(f["id"] for f in body)
    # Resubmitting a known id in a batch replaces it.
    r = await client.post(
        "/api/feedback/batch", json=[{"trace_id": "t1", "score": 1, "id": "mine"}]
    )
    assert r.status_code == 201
    assert len(await ids(client)) == 3
    assert (await client.get("/api/feedback/mine")).json()["score"] == 1


async def test_trace_feedback_and_score_routes(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/feedback/trace/nothing")).status_code == 404
    assert (await client.get("/api/feedback/trace/nothing/score")).status_code == 404
    await client.post("/api/trace", json={"trace_id": "t", "model": "m"})
    assert (await client.get("/api/feedback/trace/t")).json() == []
    score = (await client.get("/api/feedback/trace/t/score")).json()
    assert score == {
        "trace_id": "t",
        "total": 0,
        "positive": 0,
        "negative": 0,
        "neutral": 0,
        "score": None,
    }
    first = await post(client, trace_id="t", score=1)
    second = await post(client, trace_id="t", score=0)
    await post(client, trace_id="other", score=-1)
    r = await client.get("/api/feedback/trace/t")
    assert [f["id"] for f in r.json()] == [first["id"], second["id"]]
    score = (await client.get("/api/feedback/trace/t/score")).json()
    assert (score["total"], score["positive"], score["neutral"], score["score"]) == (2, 1, 1, 0.5)
    # Feedback whose trace has not arrived is still readable.
    assert [f["trace_id"] for f in (await client.get("/api/feedback/trace/other")).json()] == [
        "other"
    ]


async def test_ids_with_slashes_and_spaces_round_trip(client: httpx.AsyncClient) -> None:
    await post(client, id="fb 1", trace_id="run 7", score=1)
    assert (await client.get("/api/feedback/fb%201")).json()["trace_id"] == "run 7"
    assert len((await client.get("/api/feedback/trace/run%207")).json()) == 1


async def test_listing_filters(client: httpx.AsyncClient) -> None:
    await client.post(
        "/api/trace/batch",
        json=[
            {"trace_id": "a", "call_id": "a1", "project": "p1", "model": "openai/gpt-4o",
             "cost": 0.3},
            {"trace_id": "a", "call_id": "a2", "project": "p1", "model": "gpt-4.1-mini",
             "cost": 0.1},
            {"trace_id": "b", "project": "p2", "model": "gpt-4.1-mini", "cost": 0.2},
        ],
    )  # fmt: skip
    await post(client, id="f1", trace_id="a", score=1, user_id="u1", tags=["x"])
    await post(client, id="f2", trace_id="a", score=-1, source="eval", tags=["x", "y"])
    await post(client, id="f3", trace_id="a", call_id="a2", score=0, user_id="u2")
    await post(client, id="f4", trace_id="b", score=1, source="automated", tags=["y"])
    await post(client, id="f5", trace_id="ghost", score=-1, source="human-review", user_id="u1")
    assert await ids(client) == ["f5", "f4", "f3", "f2", "f1"]
    assert await ids(client, project="p1") == ["f3", "f2", "f1"]
    assert await ids(client, model="openai/gpt-4o") == ["f2", "f1"]
    assert await ids(client, model="gpt-4.1-mini") == ["f4", "f3"]
    assert await ids(client, score=-1) == ["f5", "f2"]
    assert await ids(client, score=1, project="p2") == ["f4"]
    assert await ids(client, source="human-review") == ["f5"]
    assert await ids(client, trace_id="a") == ["f3", "f2", "f1"]
    assert await ids(client, user_id="u1") == ["f5", "f1"]
    assert await ids(client, tag="y") == ["f4", "f2"]
    f3 = (await client.get("/api/feedback/f3")).json()
    assert await ids(client, since=f3["created_at"]) == ["f5", "f4", "f3"]
    assert await ids(client, until=f3["created_at"]) == ["f2", "f1"]
    now = datetime.now(UTC).isoformat()
    assert await ids(client, since=now) == []


async def test_listing_cursor_in_header(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/api/feedback/batch", json=[{"trace_id": f"t{i}", "score": 1} for i in range(7)]
    )
    assert r.status_code == 201
    all_ids = await ids(client)
    assert len(all_ids) == 7
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 3}
    headers = []
    while True:
        r = await client.get("/api/feedback", params=params)
        assert r.status_code == 200
        seen += [f["id"] for f in r.json()]
        cursor = r.headers.get("X-Next-Cursor")
        headers.append(cursor)
        if cursor is None:
            break
        params["cursor"] = cursor
    assert len(headers) == 3
    assert seen == all_ids
    # A new item arriving between pages neither shifts nor repeats the older pages.
    r = await client.get("/api/feedback", params={"limit": 3})
    cursor = r.headers["X-Next-Cursor"]
    await post(client, trace_id="late", score=1)
    r = await client.get("/api/feedback", params={"limit": 3, "cursor": cursor})
    assert [f["id"] for f in r.json()] == all_ids[3:6]


async def test_unknown_feedback_id_is_404(client: httpx.AsyncClient) -> None:
    for method in ("GET", "DELETE"):
        r = await client.request(method, "/api/feedback/no-such-id")
        assert r.status_code == 404
        assert "no-such-id" in r.json()["detail"]
