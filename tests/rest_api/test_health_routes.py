"""Liveness answers without the database; readiness asks the database."""

import gc

import httpx
import pytest

from agentcost import __version__
from agentcost.app import create_app
from agentcost.db import Database
from agentcost.settings import Settings

pytestmark = pytest.mark.anyio


async def test_health_and_ready(client: httpx.AsyncClient, settings: Settings) -> None:
    r = await client.get("/api/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "version": __version__}
    r = await client.get("/api/ready")
    assert r.status_code == 200
    expected = "sqlite" if settings.resolved_database_url.startswith("sqlite") else "postgresql"
    assert r.json() == {"status": "ok", "database": expected}


async def test_health_does_not_touch_the_database() -> None:
    # No lifespan: the app has no database at all, and liveness still answers.
    unreachable = "postgresql+asyncpg://x@127.0.0.1:1/none"
    app = create_app(Settings(database_url=unreachable, _env_file=None))  # type: ignore[call-arg]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        r = await c.get("/api/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


async def test_ready_is_503_when_the_database_does_not_answer() -> None:
    app = create_app(Settings(_env_file=None))  # type: ignore[call-arg]
    app.state.db = Database("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            r = await c.get("/api/ready")
    finally:
        await app.state.db.dispose()
    assert r.status_code == 503
    assert r.json()["status"] == "unavailable"
    assert r.json()["database"]


async def test_what_startup_built_is_frozen_for_the_app_lifetime(settings: Settings) -> None:
    """The collector's full passes skip the app's long-lived objects while it serves, and the
    freeze ends with the app (another app in this process starts from a clean slate)."""
    assert gc.get_freeze_count() == 0
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        assert gc.get_freeze_count() > 10_000  # modules, schemas, metadata
    assert gc.get_freeze_count() == 0
