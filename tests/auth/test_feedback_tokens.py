"""End-user feedback tokens: they allow exactly one thing, voting with source 'user' on their
own trace, once per end user; expired, tampered and other-trace tokens answer 401."""

import logging
from datetime import timedelta

import httpx
import pytest

from agentcost.db import Database
from agentcost.models import Scope, utcnow
from agentcost.rest_api.deps import AuthState
from agentcost.services import auth

pytestmark = pytest.mark.anyio


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def ingest_with_token(client: httpx.AsyncClient, key: str, **extra: object) -> str:
    event = {"trace_id": "t-1", "model": "gpt-4.1", "cost": 0.003, **extra}
    r = await client.post("/api/trace", json=event, headers=bearer(key))
    assert r.status_code == 201
    body = r.json()
    expires = body["feedback_token_expires_at"]
    assert expires > (utcnow() + timedelta(hours=23)).isoformat()
    return body["feedback_token"]


async def test_one_vote_per_end_user(client: httpx.AsyncClient, db: Database) -> None:
    key, _ = await auth.create_key(db, org_id="acme", scope=Scope.INGEST)
    token = await ingest_with_token(client, key, user_id="end-user-7")
    first = await client.post(
        "/api/feedback", json={"trace_id": "t-1", "score": 1}, headers=bearer(token)
    )
    assert first.status_code == 201
    assert first.json()["user_id"] == "end-user-7"
    again = await client.post(
        "/api/feedback",
        json={"trace_id": "t-1", "score": -1, "comment": "changed my mind"},
        headers=bearer(token),
    )
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    admin, _ = await auth.create_key(db, org_id="acme", scope=Scope.ADMIN)
    votes = (await client.get("/api/feedback/trace/t-1", headers=bearer(admin))).json()
    assert [(v["score"], v["comment"], v["source"]) for v in votes] == [
        (-1, "changed my mind", "user")
    ]

    # A second end user gets a token of their own and a vote of their own.
    r = await client.post(
        "/api/feedback/token",
        json={"trace_id": "t-1", "user_id": "end-user-8"},
        headers=bearer(key),
    )
    assert r.status_code == 201
    other = r.json()["token"]
    await client.post("/api/feedback", json={"trace_id": "t-1", "score": 1}, headers=bearer(other))
    score = (await client.get("/api/feedback/trace/t-1/score", headers=bearer(admin))).json()
    assert (score["total"], score["positive"], score["negative"]) == (2, 1, 1)


async def test_token_allows_nothing_else(client: httpx.AsyncClient, db: Database) -> None:
    key, _ = await auth.create_key(db, org_id="acme", scope=Scope.ADMIN)
    token = await ingest_with_token(client, key)
    await client.post("/api/trace", json={"trace_id": "t-2", "model": "m"}, headers=bearer(key))

    r = await client.post(
        "/api/feedback", json={"trace_id": "t-2", "score": 1}, headers=bearer(token)
    )
    assert (r.status_code, r.json()["detail"]) == (401, "this feedback token is for another trace")
    r = await client.post(
        "/api/feedback",
        json={"trace_id": "t-1", "score": 1, "source": "eval"},
        headers=bearer(token),
    )
    assert (r.status_code, r.json()["detail"]) == (
        403,
        "a feedback token may only submit feedback with source 'user'",
    )
    for method, path, body in [
        ("GET", "/api/feedback", None),
        ("GET", "/api/traces/t-1", None),
        ("POST", "/api/trace", {"trace_id": "t-1", "model": "m"}),
        ("POST", "/api/feedback/batch", [{"trace_id": "t-1", "score": 1}]),
        ("POST", "/api/feedback/token", {"trace_id": "t-1"}),
    ]:
        r = await client.request(method, path, json=body, headers=bearer(token))
        assert r.status_code == 403, path
        assert "feedback token" in r.json()["detail"]
    listing = (await client.get("/api/feedback", headers=bearer(key))).json()
    assert listing == []


async def test_expired_and_tampered_tokens(
    client: httpx.AsyncClient, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    key, _ = await auth.create_key(db, org_id="acme", scope=Scope.ADMIN)
    token = await ingest_with_token(client, key)
    secret = await AuthState(client._transport.app.state.settings).token_secret(db)  # type: ignore[attr-defined]
    expired, _ = auth.issue_feedback_token(
        secret, org_id="acme", trace_id="t-1", user_id=None, ttl_seconds=-1
    )
    forged, _ = auth.issue_feedback_token(
        b"not the server secret", org_id="acme", trace_id="t-1", user_id=None, ttl_seconds=600
    )
    payload, signature = token.removeprefix(auth.TOKEN_PREFIX).split(".")
    swapped = (
        auth.TOKEN_PREFIX
        + payload[:-2]
        + ("AA" if payload[-2:] != "AA" else "BB")
        + "."
        + signature
    )
    caplog.set_level(logging.DEBUG)
    for bad, reason in [
        (expired, "feedback token has expired"),
        (forged, "signature does not match"),
        (swapped, "signature does not match"),
        (token[:-3], "signature does not match"),
    ]:
        r = await client.post(
            "/api/feedback", json={"trace_id": "t-1", "score": 1}, headers=bearer(bad)
        )
        assert r.status_code == 401
        assert reason in r.json()["detail"]
    assert (await client.get("/api/feedback", headers=bearer(key))).json() == []
    assert token not in caplog.text
    assert key not in caplog.text


async def test_token_secret_survives_restart(client: httpx.AsyncClient, db: Database) -> None:
    """Without a configured secret one is generated once and stored: a new app accepts it."""
    key, _ = await auth.create_key(db, org_id="acme", scope=Scope.INGEST)
    token = await ingest_with_token(client, key)
    fresh = AuthState(client._transport.app.state.settings)  # type: ignore[attr-defined]
    claims = auth.verify_feedback_token(await fresh.token_secret(db), token)
    assert (claims.org_id, claims.trace_id) == ("acme", "t-1")


async def test_token_request_validation(client: httpx.AsyncClient, db: Database) -> None:
    key, _ = await auth.create_key(db, org_id="acme", scope=Scope.INGEST)
    for body, field in [
        ({}, "trace_id"),
        ({"trace_id": "t", "ttl_seconds": 5}, "ttl_seconds"),
        ({"trace_id": "t", "extra": 1}, "extra"),
    ]:
        r = await client.post("/api/feedback/token", json=body, headers=bearer(key))
        assert r.status_code == 422
        assert [d["field"] for d in r.json()["detail"]] == [field]
