"""Requests/s of GraphQL at /graphql: a small query and the 50-trace nested page, with the number
of SQL statements each costs. Prints figures; asserts no timings.

The data (default 300 traces of 2 calls and 2 votes each) goes in through the services into a
fresh SQLite file; the server runs in a process of its own (uvicorn, one worker, a free loopback
port). Each query is first run in-process once with a statement counter on the engine, then sent
over HTTP: sequentially (latency) and from --concurrency clients at once (throughput).

    python bench/graphql.py
    python bench/graphql.py --seconds 10 --concurrency 16
"""

import sys
from pathlib import Path

# Run as a script, this file's folder leads sys.path, and this file is named graphql.py: drop the
# folder so that `import graphql` (inside Strawberry) finds graphql-core, not this script.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import argparse
import asyncio
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import event

from agentcost.db import Database
from agentcost.graphql_api import schema
from agentcost.graphql_api.context import Context
from agentcost.migrate import upgrade
from agentcost.models import FeedbackCreate, TraceEvent
from agentcost.services import feedback, traces
from agentcost.services.auth import open_principal

ORG = "default"
SMALL = '{ trace(traceId: "bench-0000") { traceId cost model } }'
NESTED = """{
  traces(first: 50) {
    edges { cursor node {
      traceId project model cost inputTokens outputTokens latencyMs promptId promptVersion
      calls { callId model cost latencyMs }
      feedback { feedbackId score source tags }
      score { total positive negative score }
    } }
    pageInfo { hasNextPage endCursor }
  }
}"""
QUERIES = [
    ("small: trace(traceId) 3 fields", SMALL),
    ("nested: 50 traces + calls/feedback/score", NESTED),
]
_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK")


async def seed(db: Database, n: int) -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    models = ["gpt-4.1", "gpt-4.1-mini", "claude-sonnet-4"]
    events = [
        TraceEvent(
            trace_id=f"bench-{i:04}",
            call_id=f"c{i}-{j}",
            project="bench",
            model=models[(i + j) % 3],
            input_tokens=500 + i,
            output_tokens=100 + j,
            cost=0.0004 * (1 + (i + j) % 5),
            latency_ms=300.0 + j,
            timestamp=start + timedelta(minutes=i, seconds=j),
            prompt_id="support",
            prompt_version=1 + i % 3,
        )
        for i in range(n)
        for j in range(2)
    ]
    await traces.ingest(db, org_id=ORG, events=events)
    votes = [
        FeedbackCreate(trace_id=f"bench-{i:04}", score=(1, -1, 0)[(i + j) % 3], tags=["bench"])
        for i in range(n)
        for j in range(2)
    ]
    await feedback.submit(db, org_id=ORG, items=votes)


@contextmanager
def counting(db: Database) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        if not sql.lstrip().upper().startswith(_CONTROL):
            statements.append(sql)

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)


async def prepare(url: str, n: int) -> dict[str, int]:
    """Seed the database and count each query's SQL statements in-process."""
    db = Database(url)
    try:
        await upgrade(db)
        begun = time.perf_counter()
        await seed(db, n)
        elapsed = time.perf_counter() - begun
        print(f"seeded {n} traces, {2 * n} calls, {2 * n} votes in {elapsed:.1f} s")
        counts = {}
        for label, query in QUERIES:
            with counting(db) as statements:
                result = await schema.execute(
                    query, context_value=Context.create(db, open_principal(ORG))
                )
            assert result.errors is None, result.errors
            counts[label] = len(statements)
        return counts
    finally:
        await db.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def server(url: str, data_dir: Path) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "AGENTCOST_DATABASE_URL": url, "AGENTCOST_DATA_DIR": str(data_dir)}
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "agentcost.app:create_app", "--factory",
         "--host=127.0.0.1", f"--port={port}", "--log-level=warning"],
        env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                sys.exit("the server did not start")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


async def measure(base: str, query: str, seconds: float, concurrency: int) -> tuple[float, float]:
    """(mean latency in ms of one client, requests/s of `concurrency` clients)."""
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:

        async def ask() -> None:
            r = await client.post("/graphql", json={"query": query})
            if r.status_code != 200 or "errors" in r.json():
                sys.exit(f"query failed: {r.text[:500]}")

        for _ in range(20):  # warm the caches and the connection pool
            await ask()
        sequential = max(20, int(seconds * 20))
        begun = time.perf_counter()
        for _ in range(sequential):
            await ask()
        latency_ms = (time.perf_counter() - begun) / sequential * 1000
        done = 0
        stop = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < stop:
                await ask()
                done += 1

        begun = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return latency_ms, done / (time.perf_counter() - begun)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traces", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=8.0, help="per query and mode")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="agentcost-bench-") as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        counts = asyncio.run(prepare(url, args.traces))
        rows = []
        with server(url, Path(tmp)) as base:
            for label, query in QUERIES:
                latency, rps = asyncio.run(measure(base, query, args.seconds, args.concurrency))
                rows.append((label, rps, latency, counts[label]))
    print(f"\nSQLite, 1 uvicorn worker, {args.concurrency} concurrent clients for throughput")
    print(f"{'query':<44}{'requests/s':>12}{'ms (1 client)':>15}{'SQL statements':>16}")
    for label, rps, latency, statements in rows:
        print(f"{label:<44}{rps:>12.0f}{latency:>15.2f}{statements:>16}")


if __name__ == "__main__":
    main()
