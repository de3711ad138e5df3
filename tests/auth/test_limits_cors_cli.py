"""Rate limiting, CORS for browsers, and the key-management CLI with its secure-by-default start."""

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from agentcost.app import create_app
from agentcost.db import Database
from agentcost.errors import RateLimited
from agentcost.models import Scope
from agentcost.rate_limit import RateLimiter
from agentcost.services import auth
from agentcost.settings import Settings

pytestmark = pytest.mark.anyio

CLI = [sys.executable, "-m", "agentcost.cli"]


async def app_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


@pytest.fixture
async def limited(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async for c in app_client(settings.model_copy(update={"rate_limit_per_minute": 3})):
        yield c


@pytest.fixture
async def browser_facing(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    update = {"cors_origins": ["https://app.example.com"]}
    async for c in app_client(settings.model_copy(update=update)):
        yield c


async def test_rate_limit_per_key(limited: httpx.AsyncClient, db: Database) -> None:
    key, _ = await auth.create_key(db, org_id="acme", scope=Scope.ADMIN)
    other, _ = await auth.create_key(db, org_id="acme", scope=Scope.ADMIN)
    headers = {"Authorization": f"Bearer {key}"}
    codes = [(await limited.get("/api/traces", headers=headers)).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    r = await limited.post("/api/trace", json={"trace_id": "t", "model": "m"}, headers=headers)
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) >= 1
    assert "rate limit exceeded" in r.json()["detail"]
    # Refused writes are not stored, and another key has a budget of its own.
    r = await limited.get("/api/traces", headers={"Authorization": f"Bearer {other}"})
    assert (r.status_code, r.json()) == (200, [])


async def test_rate_limit_covers_graphql(limited: httpx.AsyncClient, db: Database) -> None:
    """/graphql takes from the same budget as REST and answers 429 the same way."""
    key, _ = await auth.create_key(db, org_id="acme", scope=Scope.ADMIN)
    headers = {"Authorization": f"Bearer {key}"}
    query = {"query": "{ traces(first: 1) { edges { cursor } } }"}
    assert (await limited.get("/api/traces", headers=headers)).status_code == 200
    codes = [
        (await limited.post("/graphql", json=query, headers=headers)).status_code for _ in range(3)
    ]
    assert codes == [200, 200, 429]
    r = await limited.post("/graphql", json=query, headers=headers)
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) >= 1
    assert "rate limit exceeded" in r.json()["detail"]


def test_token_bucket_refills() -> None:
    limiter = RateLimiter(per_minute=60)
    for _ in range(60):
        limiter.check("k", now=0.0)
    with pytest.raises(RateLimited) as refused:
        limiter.check("k", now=0.0)
    assert refused.value.retry_after == 1
    limiter.check("k", now=1.0)


async def test_cors_preflight_and_headers(browser_facing: httpx.AsyncClient) -> None:
    r = await browser_facing.options(
        "/api/feedback",
        headers={
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "authorization" in r.headers["access-control-allow-headers"].lower()
    r = await browser_facing.options(
        "/api/feedback",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in r.headers


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def cli_env(settings: Settings, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "AGENTCOST_DATABASE_URL": settings.resolved_database_url,
        "AGENTCOST_DATA_DIR": str(tmp_path),
    }


async def test_cli_keys(cli_env: dict[str, str], db: Database) -> None:
    created = run_cli(
        ["keys", "create", "--org", "acme", "--scope", "read", "--project", "web"], cli_env
    )
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith(auth.KEY_PREFIX) and "\n" not in key
    principal = await auth.KeyCache(recheck_seconds=0).authenticate(db, key)
    assert (principal.org_id, principal.scope, principal.project) == ("acme", Scope.READ, "web")
    [info] = await auth.list_keys(db)
    secret = key.removeprefix(auth.KEY_PREFIX).partition("_")[2]
    assert len(secret) > 20 and secret not in str(info.model_dump())

    listed = run_cli(["keys", "list"], cli_env)
    assert info.id in listed.stdout and "scope=read" in listed.stdout and "active" in listed.stdout
    assert key not in listed.stdout

    revoked = run_cli(["keys", "revoke", info.id], cli_env)
    assert revoked.returncode == 0
    assert "revoked" in run_cli(["keys", "list"], cli_env).stdout
    missing = run_cli(["keys", "revoke", "0000000000000000"], cli_env)
    assert missing.returncode == 1 and "no key with id" in missing.stderr
    bad_scope = run_cli(["keys", "create", "--org", "acme", "--scope", "root"], cli_env)
    assert bad_scope.returncode == 2
    assert len(await auth.list_keys(db)) == 1


def test_refuses_to_serve_openly_on_a_public_address(cli_env: dict[str, str]) -> None:
    refused = run_cli(["serve", "--host", "0.0.0.0", "--port", "1"], cli_env)
    assert refused.returncode == 2
    assert "Refusing to serve on 0.0.0.0 without API keys" in refused.stderr
