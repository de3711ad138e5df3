"""The feedback widget in a real browser: headless Debian chromium driven by Playwright clicks
the thumbs on the demo page of a running server, and the vote is stored (and replaced)."""

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
playwright_api = pytest.importorskip("playwright.sync_api")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A real `agentcost serve` with an ingest key; yields (base URL, key)."""
    env = {**os.environ, "AGENTCOST_DATA_DIR": str(tmp_path)}
    env.pop("AGENTCOST_DATABASE_URL", None)
    cli = [sys.executable, "-m", "agentcost.cli"]
    key = subprocess.run(
        [*cli, "keys", "create", "--org", "shop", "--scope", "admin"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    port = free_port()
    process = subprocess.Popen(
        [*cli, "serve", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/api/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail("server did not become ready")
        yield base, key
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_click_stores_and_replaces_the_vote(server: tuple[str, str]) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (make setup installs it)")
    base, key = server
    headers = {"Authorization": f"Bearer {key}"}
    r = httpx.post(
        f"{base}/api/trace",
        json={"trace_id": "order-42", "model": "gpt-4.1", "cost": 0.004, "user_id": "shopper-1"},
        headers=headers,
    )
    token = r.json()["feedback_token"]
    page_url = f"{base}/static/feedback-demo.html#trace_id=order-42&token={token}"

    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            page = browser.new_page()
            page.goto(page_url)
            page.get_by_role("button", name="Helpful", exact=True).click()
            playwright_api.expect(page.get_by_role("status")).to_have_text(
                "Thanks for your feedback!"
            )
            votes = httpx.get(f"{base}/api/feedback/trace/order-42", headers=headers).json()
            assert [(v["score"], v["source"], v["user_id"]) for v in votes] == [
                (1, "user", "shopper-1")
            ]

            page.get_by_role("textbox", name="Comment (optional)").fill("wrong size in the answer")
            page.get_by_role("button", name="Not helpful").click()
            playwright_api.expect(page.get_by_role("status")).to_have_text(
                "Thanks for your feedback!"
            )
            assert (
                page.get_by_role("button", name="Not helpful").get_attribute("aria-pressed")
                == "true"
            )
        finally:
            browser.close()

    votes = httpx.get(f"{base}/api/feedback/trace/order-42", headers=headers).json()
    assert [(v["score"], v["comment"]) for v in votes] == [(-1, "wrong size in the answer")]


def test_demo_page_without_token_explains_itself(server: tuple[str, str]) -> None:
    base, _ = server
    page = httpx.get(f"{base}/static/feedback-demo.html")
    assert page.status_code == 200
    assert "feedback-widget.js" in page.text
    script = httpx.get(f"{base}/static/feedback-widget.js")
    assert script.status_code == 200
    assert "AgentCostFeedback" in script.text
