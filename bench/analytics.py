"""Latency of each analytics route at a given scale (default 100,000 traces / 200,000 feedback).

The data goes in through the services (the path every client write takes), and its generation
time is printed too. Each route is then asked ``--runs`` times in a row against the server in a
separate process; the median is reported, next to a bare GET /api/health for reference.

    python bench/analytics.py                              # fresh SQLite file, 100k / 200k
    python bench/analytics.py --postgres                   # a PostgreSQL database of its own
    python bench/analytics.py --traces 10000 --feedback 20000
"""

import argparse
import asyncio
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import httpx
from common import (
    Generated,
    Server,
    add_database_args,
    bench_trace_id,
    database,
    describe_url,
    generate,
    log,
    refresh_statistics,
    table,
    target_database,
    time_route,
)


def routes(next_cursor: str | None) -> list[tuple[str, str]]:
    """(label, path) of each measured route; filtered variants show what filters cost."""
    month_ago = quote((datetime.now(UTC) - timedelta(days=30)).isoformat(timespec="seconds"))
    found = [
        ("bare GET /api/health", "/api/health"),
        ("summary", "/api/feedback/summary"),
        ("summary, last 30 days", f"/api/feedback/summary?since={month_ago}"),
        ("quality/models", "/api/feedback/quality/models"),
        ("quality/models?source=user", "/api/feedback/quality/models?source=user"),
        (
            "quality/models?project=support-portal",
            "/api/feedback/quality/models?project=support-portal",
        ),
        ("quality/model/gpt-4.1", "/api/feedback/quality/model/gpt-4.1"),
        ("quality/prompt/support-bot", "/api/feedback/quality/prompt/support-bot"),
        ("feedback?limit=100", "/api/feedback?limit=100"),
    ]
    if next_cursor is not None:
        found.append(
            ("feedback?limit=100, next page", f"/api/feedback?limit=100&cursor={next_cursor}")
        )
    found.append(("trace/{id}/score", f"/api/feedback/trace/{bench_trace_id(0)}/score"))
    return found


async def main(args: argparse.Namespace) -> None:
    with target_database(args) as url:
        log(f"database: {describe_url(url)}")
        made: Generated | None = None
        async with database(url) as db:
            if not args.no_generate:
                made = await generate(
                    db, traces=args.traces, feedback=args.feedback, seed=args.seed, progress=log
                )
                log(made.describe())
            statistics_note = await refresh_statistics(db)
            log(statistics_note)
        async with (
            Server(url) as server,
            httpx.AsyncClient(base_url=server.base_url, timeout=600) as client,
        ):
            log(f"server pid {server.pid} at {server.base_url}")
            first = await client.get("/api/feedback", params={"limit": 100})
            first.raise_for_status()
            results = []
            for label, path in routes(first.headers.get("X-Next-Cursor")):
                median_ms, response, _ = await time_route(client, path, runs=args.runs)
                results.append((label, median_ms, len(response.content)))
                log(f"{label}: {median_ms:.1f} ms")

    print(f"\n{describe_url(url).split('://')[0]}, median of {args.runs} runs after one warm-up")
    if made is not None:
        print(made.describe())
    print(statistics_note)
    print()
    baseline = results[0][1]
    print(
        table(
            ("route", "median ms", "x bare GET", "response bytes"),
            [
                (label, f"{ms:.1f}", f"{ms / baseline:.0f}", f"{size:,}")
                for label, ms, size in results
            ],
        )
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_database_args(parser)
    parser.add_argument("--traces", type=int, default=100_000)
    parser.add_argument("--feedback", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=5, help="Timed runs per route.")
    parser.add_argument(
        "--no-generate",
        action="store_true",
        help="Measure the data already in --database-url instead of generating.",
    )
    args = parser.parse_args()
    if args.no_generate and not args.database_url:
        parser.error("--no-generate needs --database-url (a fresh database has no data)")
    return args


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
