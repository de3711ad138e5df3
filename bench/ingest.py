"""Write throughput: POST /api/feedback and POST /api/trace at 32 connections, against a bare
GET /api/health in the same run, so figures read as ratios that hold from machine to machine.

After each write run the rows the run committed are counted and compared with its 2xx answers:
nothing acknowledged may be lost (DESIGN.md). Up to one request per connection may still be in
flight when the load stops, so committed rows may exceed the 2xx count by that much.

    python bench/ingest.py                     # fresh SQLite file
    python bench/ingest.py --postgres          # a PostgreSQL database of its own
"""

import argparse
import asyncio
import uuid
from typing import Any

from common import (
    FEEDBACK,
    HEALTH,
    TRACE,
    LoadResult,
    Server,
    add_database_args,
    committed,
    database,
    describe_url,
    generate,
    log,
    run_load,
    table,
    target_database,
)


async def main(args: argparse.Namespace) -> None:
    with target_database(args) as url:
        log(f"database: {describe_url(url)}")
        async with database(url) as db:
            if args.preload_traces:
                made = await generate(
                    db, traces=args.preload_traces, feedback=args.preload_traces * 2, progress=log
                )
                log(made.describe())
            async with Server(url) as server:
                log(f"server pid {server.pid} at {server.base_url}")
                results: list[tuple[str, LoadResult, dict[str, Any]]] = []
                for name, request, kind in (
                    ("GET /api/health", HEALTH, None),
                    ("POST /api/feedback", FEEDBACK, "feedback"),
                    ("POST /api/trace", TRACE, "trace"),
                ):
                    tag = f"bench{uuid.uuid4().hex[:10]}"
                    result = await run_load(
                        server.base_url,
                        request,
                        tag=tag,
                        connections=args.connections,
                        seconds=args.seconds,
                        tool=args.tool,
                    )
                    check: dict[str, Any] = {}
                    if kind is not None:
                        rows = await committed(db, kind, tag)
                        check = {"rows": rows, "lost": result.ok - rows if rows < result.ok else 0}
                    results.append((name, result, check))
                    log(f"{name}: {result.rps:,.0f} req/s ({result.tool})")
    print_report(args, describe_url(url), results)


def print_report(
    args: argparse.Namespace, where: str, results: list[tuple[str, LoadResult, dict[str, Any]]]
) -> None:
    baseline = results[0][1].rps
    rows = []
    for name, r, check in results:
        extra = r.ok - check["rows"] if check else None
        rows.append(
            (
                name,
                f"{r.rps:,.0f}",
                f"{r.rps / baseline:.1%}" if baseline else "-",
                f"{r.p50_ms:.1f}",
                f"{r.p99_ms:.1f}",
                f"{r.requests:,}",
                f"{r.errors:,}",
                "-" if not check else f"{check['rows']:,}",
                "-" if extra is None else f"{extra:+,}",
            )
        )
    print(
        f"\n{args.connections} connections, {args.seconds:.0f} s per route, "
        f"load generator {results[0][1].tool}, {where.split('://')[0]}\n"
    )
    print(
        table(
            (
                "route",
                "req/s",
                "of bare GET",
                "p50 ms",
                "p99 ms",
                "answered",
                "non-2xx/errors",
                "rows committed",
                "2xx - rows",
            ),
            rows,
        )
    )
    lost = [name for name, _, check in results if check and check["lost"]]
    if lost:
        print(f"\nACKNOWLEDGED BUT NOT STORED: {', '.join(lost)}")
    else:
        print(
            f"\nEvery 2xx answer has its row (rows may exceed 2xx by up to {args.connections}, "
            "the requests in flight when the load stopped)."
        )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_database_args(parser)
    parser.add_argument("--seconds", type=float, default=10.0, help="Load time per route.")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--tool",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="Load generator: wrk when installed (auto), or the Python fallback.",
    )
    parser.add_argument(
        "--preload-traces",
        type=int,
        default=0,
        help="Traces (and twice as many feedback items) in the database before the load.",
    )
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
