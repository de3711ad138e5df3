"""Key management over REST: admins only, confined to their organisation (and project)."""

import httpx
import pytest

from agentcost.db import Database
from agentcost.models import Scope
from agentcost.services import auth

pytestmark = pytest.mark.anyio


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_admin_creates_lists_and_revokes_keys(
    client: httpx.AsyncClient, db: Database
) -> None:
    admin, _ = await auth.create_key(db, org_id="acme", scope=Scope.ADMIN)
    await auth.create_key(db, org_id="other", scope=Scope.ADMIN)

    r = await client.post(
        "/api/keys", json={"scope": "read", "name": "dashboard"}, headers=bearer(admin)
    )
    assert r.status_code == 201
    created = r.json()
    assert (created["org_id"], created["scope"], created["name"]) == ("acme", "read", "dashboard")
    new_key = created["key"]
    assert (await client.get("/api/feedback/summary", headers=bearer(new_key))).status_code == 200

    listed = (await client.get("/api/keys", headers=bearer(admin))).json()
    assert {k["org_id"] for k in listed} == {"acme"}
    assert len(listed) == 2
    assert all("key" not in k and "secret_hash" not in k for k in listed)

    r = await client.delete(f"/api/keys/{created['id']}", headers=bearer(admin))
    assert r.status_code == 200
    assert r.json()["revoked_at"] is not None
    assert (await client.get("/api/feedback/summary", headers=bearer(new_key))).status_code == 401


async def test_keys_of_other_orgs_and_projects_are_unknown(
    client: httpx.AsyncClient, db: Database
) -> None:
    admin, _ = await auth.create_key(db, org_id="acme", scope=Scope.ADMIN)
    web_admin, _ = await auth.create_key(db, org_id="acme", scope=Scope.ADMIN, project="web")
    _, foreign = await auth.create_key(db, org_id="other", scope=Scope.ADMIN)
    _, unrestricted = await auth.create_key(db, org_id="acme", scope=Scope.READ)

    assert (
        await client.delete(f"/api/keys/{foreign.id}", headers=bearer(admin))
    ).status_code == 404
    assert (
        await client.delete(f"/api/keys/{unrestricted.id}", headers=bearer(web_admin))
    ).status_code == 404
    [still_active] = [k for k in await auth.list_keys(db) if k.id == unrestricted.id]
    assert still_active.revoked_at is None

    r = await client.post("/api/keys", json={"scope": "admin"}, headers=bearer(web_admin))
    assert (r.status_code, r.json()["project"]) == (201, "web")
    r = await client.post(
        "/api/keys", json={"scope": "read", "project": "batch"}, headers=bearer(web_admin)
    )
    assert r.status_code == 403
    listed = (await client.get("/api/keys", headers=bearer(web_admin))).json()
    assert {k["project"] for k in listed} == {"web"}


async def test_only_admins_manage_keys(client: httpx.AsyncClient, db: Database) -> None:
    ingest, _ = await auth.create_key(db, org_id="acme", scope=Scope.INGEST)
    read, _ = await auth.create_key(db, org_id="acme", scope=Scope.READ)
    for key in (ingest, read):
        assert (await client.get("/api/keys", headers=bearer(key))).status_code == 403
        r = await client.post("/api/keys", json={"scope": "admin"}, headers=bearer(key))
        assert r.status_code == 403
    assert len(await auth.list_keys(db)) == 2
    r = await client.post("/api/keys", json={"scope": "root"}, headers=bearer(ingest))
    assert r.status_code in (403, 422)


async def test_bad_key_requests(client: httpx.AsyncClient, db: Database) -> None:
    admin, _ = await auth.create_key(db, org_id="acme", scope=Scope.ADMIN)
    for body, field in [
        ({}, "scope"),
        ({"scope": "root"}, "scope"),
        ({"scope": "read", "x": 1}, "x"),
    ]:
        r = await client.post("/api/keys", json=body, headers=bearer(admin))
        assert r.status_code == 422
        assert [d["field"] for d in r.json()["detail"]] == [field]
    assert (await client.delete("/api/keys/nope", headers=bearer(admin))).status_code == 404
    assert len(await auth.list_keys(db)) == 1
