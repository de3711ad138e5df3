"""Every database test runs twice: on a SQLite file and on PostgreSQL.

Async test modules set ``pytestmark = pytest.mark.anyio``.

The PostgreSQL side gets a database of its own for this test run (created here, dropped at the
end), migrated once; each test starts from empty tables. Point AGENTCOST_TEST_PG_ADMIN_URL at
another server to test there.
"""

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from agentcost.app import create_app
from agentcost.db import Database
from agentcost.migrate import upgrade
from agentcost.settings import Settings, get_settings

PG_ADMIN_URL = os.environ.get(
    "AGENTCOST_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
TABLES = (
    "feedback",
    "calls",
    "traces",
    "quality_rollups",
    "api_keys",
    "organizations",
    "server_secrets",
)


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this run, migrated, dropped afterwards."""
    name = f"agentcost_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(PG_ADMIN_URL).set(drivername="postgresql+asyncpg", database=name)
    rendered = url.render_as_string(hide_password=False)
    try:
        yield rendered
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'agentcost.db'}"
    url: str = request.getfixturevalue("pg_database_url")
    _truncate(url)
    return url


def _truncate(url: str) -> None:
    sync_url = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(sync_url, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass('feedback') IS NOT NULL").fetchone()
        if exists and exists[0]:
            conn.execute(f"TRUNCATE {', '.join(TABLES)}")


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        data_dir=tmp_path,
        open_mode_recheck_seconds=0,
        key_recheck_seconds=0,  # revocations from outside the app take effect at once
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture
def user_env(monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path) -> Iterator[str]:
    """The user's environment points at this test's database, as for the CLI and the Python
    API, which read their settings from it; nothing else is set up."""
    monkeypatch.setenv("AGENTCOST_DATABASE_URL", database_url)
    monkeypatch.setenv("AGENTCOST_DATA_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)  # no stray .env file
    get_settings.cache_clear()
    yield database_url
    get_settings.cache_clear()


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database.from_settings(settings)
    await upgrade(database)
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The whole app, lifespan included (migrations run as on `agentcost serve`)."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c
