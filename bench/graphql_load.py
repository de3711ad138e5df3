"""Requests/s of GraphQL at /graphql: a small query and the 50-trace nested page, with the number
of SQL statements each costs. Prints figures; asserts no timings.

The data (default 300 traces of 2 calls and 2 votes each) goes in through the services into a
fresh SQLite file; the server runs in a process of its own (uvicorn, one worker, a free loopback
port). Each query is first run in-process once with a statement counter on the engine, then sent
over HTTP: sequentially (latency) and from --concurrency clients at once (throughput).

    python bench/graphql_load.py
    python bench/graphql_load.py --seconds 10 --concurrency 16
"""

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from common import ORG, Server, counting

from agentcost.db import Database
from agentcost.graphql_api import schema
from agentcost.graphql_api.context import Context
from agentcost.migrate import upgrade
from agentcost.models import FeedbackCreate, TraceEvent
from agentcost.services import feedback, traces
from agentcost.services.auth import open_principal

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


async def measure_all(
    url: str, counts: dict[str, int], args: argparse.Namespace
) -> list[tuple[str, float, float, int]]:
    """(label, requests/s, latency ms, statements) of each query against one server process."""
    rows = []
    async with Server(url) as server:
        for label, query in QUERIES:
            latency, rps = await measure(server.base_url, query, args.seconds, args.concurrency)
            rows.append((label, rps, latency, counts[label]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traces", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=8.0, help="per query and mode")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="agentcost-bench-") as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        counts = asyncio.run(prepare(url, args.traces))
        rows = asyncio.run(measure_all(url, counts, args))
    print(f"\nSQLite, 1 uvicorn worker, {args.concurrency} concurrent clients for throughput")
    print(f"{'query':<44}{'requests/s':>12}{'ms (1 client)':>15}{'SQL statements':>16}")
    for label, rps, latency, statements in rows:
        print(f"{label:<44}{rps:>12.0f}{latency:>15.2f}{statements:>16}")


if __name__ == "__main__":
    main()
