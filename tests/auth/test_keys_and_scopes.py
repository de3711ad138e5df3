"""API keys on REST: open only until a key exists, then every request needs a valid key whose
scope allows the action; nothing is changed by a refused request."""

from typing import Any

import httpx
import pytest
from sqlalchemy import event

from agentcost.app import create_app
from agentcost.db import Database
from agentcost.models import Scope
from agentcost.services import auth
from agentcost.settings import Settings

pytestmark = pytest.mark.anyio

EVENT = {"trace_id": "t-1", "model": "gpt-4.1", "cost": 0.002, "project": "web"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_open_until_a_key_exists(client: httpx.AsyncClient, db: Database) -> None:
    assert (await client.post("/api/trace", json=EVENT)).status_code == 201
    await auth.create_key(db, org_id="acme", scope=Scope.ADMIN)
    r = await client.get("/api/traces")
    assert r.status_code == 401
    assert "requires an API key" in r.json()["detail"]
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    # Revoking every key does not reopen the service.
    [key] = await auth.list_keys(db)
    await auth.revoke_key(db, key_id=key.id)
    assert (await client.get("/api/traces")).status_code == 401


async def test_health_needs_no_key(client: httpx.AsyncClient, db: Database) -> None:
    await auth.create_key(db, org_id="acme", scope=Scope.READ)
    assert (await client.get("/api/health")).status_code == 200


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("Bearer", "expected the header Authorization: Bearer"),
        ("Basic dXNlcjpwdw==", "expected the header Authorization: Bearer"),
        ("Bearer not-a-key", "malformed API key"),
        ("Bearer ack_0123456789abcdef_wrongsecret", "unknown API key"),
        ("Bearer aft_e30.bad", "feedback token is malformed or its signature does not match"),
    ],
)
async def test_bad_credentials_answer_401_with_reason(
    client: httpx.AsyncClient, db: Database, header: str, reason: str
) -> None:
    await auth.create_key(db, org_id="acme", scope=Scope.ADMIN)
    r = await client.post(
        "/api/feedback", json={"trace_id": "x", "score": 1}, headers={"Authorization": header}
    )
    assert r.status_code == 401
    assert reason in r.json()["detail"]
    key, _ = await auth.create_key(db, org_id="acme", scope=Scope.READ)
    assert (await client.get("/api/feedback", headers=bearer(key))).json() == []


@pytest.mark.parametrize(
    ("path", "body"),
    [("/api/feedback", {"trace_id": "t-1", "score": 1}), ("/api/trace", EVENT)],
)
async def test_single_writes_check_the_caller_themselves(
    client: httpx.AsyncClient, db: Database, path: str, body: dict[str, Any]
) -> None:
    """The two single writes authenticate by a plain call rather than a dependency; they refuse
    the same callers, with the same answers, and write nothing."""
    read, _ = await auth.create_key(db, org_id="acme", scope=Scope.READ)
    r = await client.post(path, json=body)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert "requires an API key" in r.json()["detail"]
    r = await client.post(path, json=body, headers=bearer(read))
    assert r.status_code == 403
    assert r.json()["detail"] == "this key has scope 'read'; this action needs 'ingest'"
    assert (await client.get("/api/feedback", headers=bearer(read))).json() == []
    assert (await client.get("/api/traces", headers=bearer(read))).json() == []


async def test_revoked_key_is_refused(client: httpx.AsyncClient, db: Database) -> None:
    key, info = await auth.create_key(db, org_id="acme", scope=Scope.ADMIN)
    assert (await client.get("/api/traces", headers=bearer(key))).status_code == 200
    await auth.revoke_key(db, key_id=info.id)
    r = await client.get("/api/traces", headers=bearer(key))
    assert r.status_code == 401
    assert r.json()["detail"] == "this API key has been revoked"


async def test_key_secret_is_checked_not_just_its_id(
    client: httpx.AsyncClient, db: Database
) -> None:
    key, _ = await auth.create_key(db, org_id="acme", scope=Scope.ADMIN)
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    assert (await client.get("/api/traces", headers=bearer(forged))).status_code == 401


async def test_scopes(client: httpx.AsyncClient, db: Database) -> None:
    ingest, _ = await auth.create_key(db, org_id="acme", scope=Scope.INGEST)
    read, _ = await auth.create_key(db, org_id="acme", scope=Scope.READ)
    admin, _ = await auth.create_key(db, org_id="acme", scope=Scope.ADMIN)

    assert (await client.post("/api/trace", json=EVENT, headers=bearer(ingest))).status_code == 201
    r = await client.post("/api/trace", json=EVENT, headers=bearer(read))
    assert r.status_code == 403
    assert r.json()["detail"] == "this key has scope 'read'; this action needs 'ingest'"

    r = await client.post(
        "/api/feedback", json={"trace_id": "t-1", "score": 1}, headers=bearer(ingest)
    )
    assert r.status_code == 201
    feedback_id = r.json()["id"]
    assert (await client.get("/api/traces", headers=bearer(ingest))).status_code == 403
    assert (await client.get("/api/feedback/summary", headers=bearer(read))).json()[
        "total_feedback"
    ] == 1

    r = await client.delete(f"/api/feedback/{feedback_id}", headers=bearer(ingest))
    assert r.status_code == 403
    assert (
        await client.delete(f"/api/feedback/{feedback_id}", headers=bearer(read))
    ).status_code == 403
    assert (
        await client.get(f"/api/feedback/{feedback_id}", headers=bearer(read))
    ).status_code == 200
    assert (
        await client.delete(f"/api/feedback/{feedback_id}", headers=bearer(admin))
    ).status_code == 200
    assert (
        await client.get(f"/api/feedback/{feedback_id}", headers=bearer(read))
    ).status_code == 404


async def test_project_restricted_key(client: httpx.AsyncClient, db: Database) -> None:
    admin, _ = await auth.create_key(db, org_id="acme", scope=Scope.ADMIN)
    web, _ = await auth.create_key(db, org_id="acme", scope=Scope.ADMIN, project="web")
    other = {**EVENT, "trace_id": "t-2", "project": "batch"}
    assert (await client.post("/api/trace", json=other, headers=bearer(admin))).status_code == 201
    await client.post("/api/feedback", json={"trace_id": "t-2", "score": -1}, headers=bearer(admin))

    # Writes: no project means the key's project; another project is refused.
    no_project = {"trace_id": "t-3", "model": "gpt-4.1", "cost": 0.001}
    r = await client.post("/api/trace", json=no_project, headers=bearer(web))
    assert r.status_code == 201
    assert (await client.get("/api/traces/t-3", headers=bearer(admin))).json()["project"] == "web"
    r = await client.post("/api/trace", json={**other, "trace_id": "t-4"}, headers=bearer(web))
    assert r.status_code == 403
    # A trace id of another project is as unknown to this key as a missing one.
    r = await client.post("/api/trace", json={**no_project, "trace_id": "t-2"}, headers=bearer(web))
    assert r.status_code == 404
    r = await client.post(
        "/api/feedback", json={"trace_id": "t-2", "score": 1}, headers=bearer(web)
    )
    assert r.status_code == 404

    # Reads see only the project.
    traces = (await client.get("/api/traces", headers=bearer(web))).json()
    assert [t["trace_id"] for t in traces] == ["t-3"]
    assert (await client.get("/api/traces/t-2", headers=bearer(web))).status_code == 404
    assert (await client.get("/api/feedback/trace/t-2", headers=bearer(web))).status_code == 404
    assert (
        await client.get("/api/feedback/trace/t-2/score", headers=bearer(web))
    ).status_code == 404
    assert (await client.get("/api/feedback/summary", headers=bearer(web))).json()[
        "total_feedback"
    ] == 0
    assert (await client.get("/api/feedback/summary", headers=bearer(admin))).json()[
        "total_feedback"
    ] == 1
    r = await client.get("/api/feedback/summary?project=batch", headers=bearer(web))
    assert r.status_code == 403
    [vote] = (await client.get("/api/feedback", headers=bearer(admin))).json()
    for method in ("GET", "DELETE"):
        r = await client.request(method, f"/api/feedback/{vote['id']}", headers=bearer(web))
        assert r.status_code == 404
    r = await client.patch(f"/api/feedback/{vote['id']}", json={"score": 1}, headers=bearer(web))
    assert r.status_code == 404
    assert (await client.get(f"/api/feedback/{vote['id']}", headers=bearer(admin))).json()[
        "score"
    ] == -1


@pytest.fixture
def cached_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"key_recheck_seconds": 60.0})


async def test_a_verified_key_is_trusted_for_a_while_and_still_proves_its_secret(
    cached_settings: Settings, db: Database
) -> None:
    """Within key_recheck_seconds no key row is read again; a wrong secret is still refused,
    and a key revoked elsewhere (the CLI, another worker) is refused once the time is up."""
    key, info = await auth.create_key(db, org_id="acme", scope=Scope.ADMIN)
    app = create_app(cached_settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/api/traces", headers=bearer(key))).status_code == 200
            statements: list[str] = []

            def record(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
                statements.append(sql)

            engine = app.state.db.engine.sync_engine
            event.listen(engine, "before_cursor_execute", record)
            r = await client.get("/api/traces", headers=bearer(key))
            event.remove(engine, "before_cursor_execute", record)
            assert r.status_code == 200
            assert statements and not [s for s in statements if "api_keys" in s]
            forged = key[:-1] + ("y" if key[-1] != "y" else "z")
            r = await client.get("/api/traces", headers=bearer(forged))
            assert (r.status_code, r.json()["detail"]) == (401, "unknown API key")

            await auth.revoke_key(db, key_id=info.id)  # from outside the app
            assert (await client.get("/api/traces", headers=bearer(key))).status_code == 200
            app.state.auth.keys.recheck_seconds = 0  # the trusted time is up
            r = await client.get("/api/traces", headers=bearer(key))
            assert (r.status_code, r.json()["detail"]) == (401, "this API key has been revoked")


async def test_a_key_revoked_through_the_api_is_refused_at_once(
    cached_settings: Settings, db: Database
) -> None:
    admin, _ = await auth.create_key(db, org_id="acme", scope=Scope.ADMIN)
    key, info = await auth.create_key(db, org_id="acme", scope=Scope.READ)
    app = create_app(cached_settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/api/traces", headers=bearer(key))).status_code == 200
            r = await client.delete(f"/api/keys/{info.id}", headers=bearer(admin))
            assert r.status_code == 200
            r = await client.get("/api/traces", headers=bearer(key))
            assert (r.status_code, r.json()["detail"]) == (401, "this API key has been revoked")
