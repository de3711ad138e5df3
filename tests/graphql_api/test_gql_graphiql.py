"""GraphiQL at GET /graphql works offline: the page and every asset it names come from the app."""

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from agentcost.graphql_api import install_graphql
from agentcost.rest_api.deps import AuthState
from agentcost.settings import Settings
from agentcost.web import graphiql

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
HTML = {"Accept": "text/html"}


@pytest.fixture(scope="module")
def vendored() -> Path:
    """The assets as `make setup` leaves them; fetched here when a checkout lacks them."""
    if graphiql.missing_assets(graphiql.VENDOR_DIR):
        fetched = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "fetch-graphiql-assets")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    assert graphiql.missing_assets(graphiql.VENDOR_DIR) == []
    return graphiql.VENDOR_DIR


def page_assets(page: str) -> list[tuple[str, str | None]]:
    """(URL, integrity) of every script and stylesheet the page loads."""
    found = []
    for tag in re.findall(r"<(?:script|link)\b[^>]*>", page):
        attrs = dict(re.findall(r'([a-zA-Z][\w-]*)="([^"]*)"', tag))
        url = attrs.get("src") or (attrs.get("href") if attrs.get("rel") == "stylesheet" else None)
        if url:
            found.append((url, attrs.get("integrity")))
    return found


@pytest.mark.anyio
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_page_and_every_asset_it_names_are_served(
    vendored: Path, client: httpx.AsyncClient
) -> None:
    page = await client.get("/graphql", headers=HTML)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "unpkg" not in page.text
    assert "https://" not in page.text.split("<body>")[0]
    assets = page_assets(page.text)
    assert len(assets) == len(graphiql.referenced_assets()) == 7
    for url, integrity in assets:
        assert url.startswith("/graphql/assets/"), url
        response = await client.get(url)
        assert response.status_code == 200, url
        assert integrity is not None
        asset = next(a for a in graphiql.referenced_assets() if url.endswith(a.local_path))
        assert asset.matches(response.content), f"{url} does not match {integrity}"
    assert (await client.get("/graphql/assets/react@18.2.0/package.json")).status_code == 404
    assert (await client.get("/graphql/assets/../../pyproject.toml")).status_code == 404


@pytest.mark.anyio
async def test_without_assets_the_page_says_how_to_fetch_them(tmp_path: Path) -> None:
    app = FastAPI()
    # The router builds its context (database, auth state) for every request.
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    app.state.db = None
    app.state.settings = settings
    app.state.auth = AuthState(settings)
    install_graphql(app, vendor_dir=tmp_path / "vendor")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        page = await client.get("/graphql", headers=HTML)
        asset = await client.get("/graphql/assets/react@18.2.0/umd/react.production.min.js")
    assert page.status_code == 503
    assert "make setup" in page.text
    assert "scripts/fetch-graphiql-assets" in page.text
    assert "graphiql@3.8.3/graphiql.min.js" in page.text
    assert "<script" not in page.text
    assert asset.status_code == 404


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def server(vendored: Path, tmp_path: Path) -> Iterator[str]:
    """The app under uvicorn, as `agentcost serve` runs it, on a free loopback port and SQLite."""
    port = free_port()
    env = {
        **os.environ,
        "AGENTCOST_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'graphiql.db'}",
        "AGENTCOST_DATA_DIR": str(tmp_path),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "agentcost.app:create_app",
            "--factory",
            "--host=127.0.0.1",
            f"--port={port}",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "server did not start within 30 s"
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def ensure_chromium() -> None:
    if not CHROMIUM.exists():
        subprocess.run([str(ROOT / "scripts" / "ensure-chromium")], check=False, timeout=900)
    if not CHROMIUM.exists():
        pytest.skip("chromium is not installed and scripts/ensure-chromium could not install it")


def test_headless_chromium_renders_the_editor(server: str) -> None:
    ensure_chromium()
    with tempfile.TemporaryDirectory() as profile:
        rendered = subprocess.run(
            [
                str(CHROMIUM),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=15000",
                "--dump-dom",
                f"{server}/graphql",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    dom = rendered.stdout
    assert rendered.returncode == 0, rendered.stderr[-2000:]
    # Present only once React has mounted GraphiQL: the editors and the query editor's text.
    assert "graphiql-editor" in dom, dom[:2000]
    assert "CodeMirror" in dom
    assert "Welcome to GraphiQL" in dom
