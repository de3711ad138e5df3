"""Issue 5's benchmark in one command: every figure, its target, and the bare-GET baseline.

For each scale (default 100k traces / 200k feedback and 1M / 2M) the data is generated through
the services' batch ingestion once and kept (bench/results/data/, or a PostgreSQL database
agentcost_bench_cache_*), keyed by scale, seed and schema; each run works on a copy, since the
write loads add rows. Per scale one server process (`agentcost serve` on 127.0.0.1) is measured:
bare GET, analytics routes with and without filters, feedback pages, GraphQL, single and batch
writes at 32 connections with a committed-rows check after each, writes while an analytics
request runs, and the server's peak RSS. Reads come first, so they see the generated data only.

The table goes to stdout and to bench/results/<timestamp>-<db>.md. Nothing here asserts a
timing: a figure that misses its target is marked FAIL and the run goes on.

    python bench/run.py --quick            # small scales, 2 s loads: a smoke run under 2 minutes
    python bench/run.py                    # 100k and 1M on SQLite
    python bench/run.py --postgres         # the same on a PostgreSQL database of its own
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import httpx
from common import (
    FEEDBACK,
    HEALTH,
    ORG,
    PG_ADMIN_URL,
    ROOT,
    TRACE,
    KeptDataset,
    LoadResult,
    Request,
    Scale,
    Server,
    batch_of,
    bench_trace_id,
    committed,
    counting,
    database,
    ensure_dataset,
    log,
    on_stored_traces,
    parse_scale,
    peak_rss_mb,
    run_load,
    table,
    time_route,
    wait_idle,
    working_copy,
)

from agentcost.db import Database
from agentcost.graphql_api import schema
from agentcost.graphql_api.context import Context
from agentcost.services.auth import open_principal

RESULTS = ROOT / "bench" / "results"
ANALYTICS = (
    ("summary", "/api/feedback/summary"),
    ("quality/models", "/api/feedback/quality/models"),
    ("quality/model/gpt-4.1", "/api/feedback/quality/model/gpt-4.1"),
    ("quality/prompt/support-bot", "/api/feedback/quality/prompt/support-bot"),
)
GRAPHQL_SMALL = f'{{ trace(traceId: "{bench_trace_id(0)}") {{ traceId cost model }} }}'


def graphql_page(first: int) -> str:
    """Issue 5's nested page: ``first`` traces with their calls, feedback and score."""
    return f"""{{
  traces(first: {first}) {{
    edges {{ cursor node {{
      traceId project model cost inputTokens outputTokens latencyMs promptId promptVersion
      calls {{ callId model cost latencyMs }}
      feedback {{ feedbackId score source tags }}
      score {{ total positive negative score }}
    }} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}"""


# ---------------------------------------------------------------------------------------------
# Figures


@dataclass(frozen=True, slots=True)
class Figure:
    """One row of the table; ``ok`` is None for figures without a target (the baselines)."""

    scale: str
    name: str
    value: str
    target: str
    ok: bool | None
    baseline: str


@dataclass(slots=True)
class ScaleRun:
    """What one scale's server answered; analytics medians are kept to compare the scales."""

    scale: Scale
    figures: list[Figure] = field(default_factory=list)
    analytics_ms: dict[str, float] = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)
    tool: str = ""  # the load generator used

    def add(
        self, name: str, value: str, target: str = "-", ok: bool | None = None, baseline: str = ""
    ) -> None:
        self.figures.append(Figure(self.scale.label, name, value, target, ok, baseline))


def ms(value: float) -> str:
    return f"{value:,.1f} ms"


def mark(ok: bool | None) -> str:
    return "-" if ok is None else "pass" if ok else "FAIL"


def generation_figure(run: ScaleRun, kept: KeptDataset) -> None:
    """Issue 5 asks for 1M / 2M in under 2 minutes; a smaller scale gets the same rate."""
    made = kept.generated
    rows = made.traces + made.calls + made.feedback
    limit = 120.0 * made.traces / 1_000_000
    when = f"kept from {kept.generated_at}" if kept.reused else "this run"
    run.add(
        "data generation (bulk import)",
        f"{made.seconds:,.1f} s, {rows / made.seconds:,.0f} rows/s ({rows:,} rows; {when})",
        f"≤ 120 s at 1M/2M (≤ {limit:,.1f} s here)",
        made.seconds <= limit,
    )


# ---------------------------------------------------------------------------------------------
# Measurements of one scale, one server process


async def graphql_statements(url: str) -> dict[int, int]:
    """SQL statements of the nested page at two sizes, counted in-process: the same count at
    both means the page costs a fixed number of statements (no N+1)."""
    db = Database(url)
    try:
        counts = {}
        for first in (10, 50):
            with counting(db) as statements:
                result = await schema.execute(
                    graphql_page(first), context_value=Context.create(db, open_principal(ORG))
                )
            if result.errors:
                raise RuntimeError(f"GraphQL page failed: {result.errors}")
            counts[first] = len(statements)
        return counts
    finally:
        await db.dispose()


def graphql_request(query: str) -> Request:
    return Request("POST", "/graphql", json.dumps({"query": query}))


async def load(
    server: Server,
    request: Request,
    args: argparse.Namespace,
    connections: int | None = None,
    settle: bool = True,
    stored: int = 1,
) -> tuple[str, LoadResult]:
    """One bounded load run (``--connections`` unless told); the tag marks its writes' rows.
    With ``settle`` it returns once the server has finished what the load left running."""
    tag = f"bench{uuid.uuid4().hex[:10]}"
    result = await run_load(
        server.base_url,
        request,
        tag=tag,
        connections=connections or args.connections,
        seconds=args.duration,
        tool=args.tool,
        stored=stored,
    )
    if settle:
        await settle_server(server)
    return tag, result


async def settle_server(server: Server) -> None:
    assert server.pid is not None
    waited = await wait_idle(server.pid)
    if waited > 2:
        log(f"waited {waited:.0f} s for the server to finish requests the load gave up on")


def check_committed(
    run: ScaleRun, name: str, result: LoadResult, rows: int, per_request: int, in_flight: int
) -> None:
    """DESIGN.md: nothing acknowledged is lost. Rows may exceed the 2xx count by the requests
    still in flight when the load stopped (committed, answered after the client left)."""
    expected = result.ok * per_request
    slack = in_flight * per_request
    ok = expected <= rows <= expected + slack and result.errors == 0
    unit = "items" if per_request > 1 else "requests"
    run.add(
        f"{name}: acknowledged = committed",
        f"{expected:,} {unit} 2xx, {rows:,} rows ({rows - expected:+,}); "
        f"{result.errors:,} non-2xx/errors",
        f"0 ≤ rows - 2xx ≤ {slack:,}, no errors",
        ok,
    )
    if rows < expected:
        run.lost.append(f"{run.scale.label} {name}: {expected - rows:,} acknowledged, not stored")


async def measure_scale(kept: KeptDataset, url: str, args: argparse.Namespace) -> ScaleRun:
    run = ScaleRun(kept.scale)
    generation_figure(run, kept)
    analytics_target = 50.0 if args.postgres else 20.0
    statements = await graphql_statements(url)
    async with (
        database(url) as db,
        Server(url) as server,
        httpx.AsyncClient(base_url=server.base_url, timeout=600) as client,
    ):
        assert server.pid is not None
        log(f"[{kept.scale.label}] server pid {server.pid} at {server.base_url}")
        _, health = await load(server, HEALTH, args)
        run.tool = health.tool
        get_ms, _, _ = await time_route(client, "/api/health", runs=50, warmup=5)
        base = f"{health.rps:,.0f} req/s"
        run.add(
            f"bare GET /api/health, {args.connections} conn ({health.tool})",
            f"{health.rps:,.0f} req/s, p50 {ms(health.p50_ms)}, p99 {ms(health.p99_ms)}",
            baseline=base,
        )
        run.add("bare GET /api/health, one at a time", f"median {ms(get_ms)}", baseline=ms(get_ms))
        log(f"[{kept.scale.label}] bare GET {health.rps:,.0f} req/s, {get_ms:.1f} ms")

        await measure_reads(run, client, kept, args, analytics_target, get_ms)
        await measure_graphql(run, server, client, args, health, statements)
        idle = await measure_writes(run, server, db, args, health)
        await measure_write_under_analytics(run, server, db, args, idle)

        peak, current = peak_rss_mb(server.pid)
        run.add(
            "server peak RSS (VmHWM)",
            f"{peak:,.0f} MB (now {current:,.0f} MB)",
            "≤ 300 MB at 1M/2M",
            peak <= 300,
        )
    return run


def analytics_paths(kept: KeptDataset) -> list[tuple[str, str]]:
    """Each analytics route unfiltered and with each kind of filter issue 5 names."""
    window = {
        "since": (kept.anchor - timedelta(days=30)).isoformat(),
        "until": kept.anchor.isoformat(),
    }
    filters = (
        ("", {}),
        ("project", {"project": "support-portal"}),
        ("source", {"source": "user"}),
        ("since-until 30 d", window),
    )
    return [
        (f"{label}{f' ?{fname}' if fname else ''}", f"{path}?{urlencode(params)}".rstrip("?"))
        for label, path in ANALYTICS
        for fname, params in filters
    ]


async def measure_reads(
    run: ScaleRun,
    client: httpx.AsyncClient,
    kept: KeptDataset,
    args: argparse.Namespace,
    target_ms: float,
    get_ms: float,
) -> None:
    for name, path in analytics_paths(kept):
        median, _, runs = await time_route(client, path, runs=args.runs, budget=args.route_budget)
        run.analytics_ms[name] = median
        run.add(
            name,
            f"{ms(median)} (median of {runs})",
            f"≤ {target_ms:.0f} ms",
            median <= target_ms,
            ms(get_ms),
        )
        log(f"[{kept.scale.label}] {name}: {median:,.1f} ms")

    first = await client.get("/api/feedback", params={"limit": 100})
    first.raise_for_status()
    pages = [("GET /api/feedback?limit=100", "/api/feedback?limit=100")]
    cursor = first.headers.get("X-Next-Cursor")
    if cursor is not None:
        pages.append(
            (
                "GET /api/feedback?limit=100, next page",
                f"/api/feedback?{urlencode({'limit': 100, 'cursor': cursor})}",
            )
        )
    for name, path in pages:
        median, _, runs = await time_route(client, path, runs=args.runs * 4)
        run.add(name, f"{ms(median)} (median of {runs})", "≤ 10 ms", median <= 10, ms(get_ms))


async def measure_graphql(
    run: ScaleRun,
    server: Server,
    client: httpx.AsyncClient,
    args: argparse.Namespace,
    health: LoadResult,
    statements: dict[int, int],
) -> None:
    base = f"{health.rps:,.0f} req/s"
    for query in (GRAPHQL_SMALL, graphql_page(50)):  # a query with errors answers 200: check
        answer = (await client.post("/graphql", json={"query": query})).json()
        if answer.get("errors") or not answer.get("data"):
            raise RuntimeError(f"GraphQL query failed: {str(answer)[:500]}")
    _, small = await load(server, graphql_request(GRAPHQL_SMALL), args)
    ratio = small.rps / health.rps
    run.add(
        "GraphQL small query",
        f"{small.rps:,.0f} req/s = {ratio:.1%} of GET; p99 {ms(small.p99_ms)}; "
        f"{small.errors:,} errors",
        "≥ 25 % of GET",
        ratio >= 0.25 and small.errors == 0,
        base,
    )
    _, page = await load(server, graphql_request(graphql_page(50)), args)
    fixed = statements[10] == statements[50]
    run.add(
        "GraphQL 50-trace nested page",
        f"{page.rps:,.1f} pages/s; p99 {ms(page.p99_ms)}; SQL statements "
        f"{statements[50]} (10-trace page: {statements[10]}); {page.errors:,} errors",
        "≥ 60 pages/s, fixed statement count",
        page.rps >= 60 and fixed and page.errors == 0,
        base,
    )
    log(f"[{run.scale.label}] GraphQL {small.rps:,.0f} req/s, {page.rps:,.1f} pages/s")


async def measure_writes(
    run: ScaleRun, server: Server, db: Database, args: argparse.Namespace, health: LoadResult
) -> LoadResult:
    """Single writes at 32 connections, then batches; returns the idle feedback run, the
    reference for writes under analytics.

    Votes go to traces nobody sent (as the guide's first example, before its trace arrives) and
    to generated traces drawn at random (each then moves the trace's roll-up rows at every
    level, in a ten-minute slot of its own more often than not: the costlier case)."""
    base = f"{health.rps:,.0f} req/s"
    idle: LoadResult | None = None
    stored_vote = on_stored_traces(FEEDBACK)
    for name, request, kind in (
        ("POST /api/feedback", FEEDBACK, "feedback"),
        ("POST /api/feedback, stored trace", stored_vote, "feedback"),
        ("POST /api/trace", TRACE, "trace"),
    ):
        tag, result = await load(server, request, args, stored=run.scale.traces)
        idle = idle or result
        ratio = result.rps / health.rps
        run.add(
            f"{name}, {args.connections} conn",
            f"{result.rps:,.0f} req/s = {ratio:.1%} of GET; p50 {ms(result.p50_ms)}, "
            f"p99 {ms(result.p99_ms)}",
            "≥ 40 % of GET, p99 ≤ 50 ms",
            ratio >= 0.4 and result.p99_ms <= 50,
            base,
        )
        rows = await committed(db, kind, tag)
        check_committed(run, name, result, rows, 1, args.connections)
        log(f"[{run.scale.label}] {name}: {result.rps:,.0f} req/s, p99 {result.p99_ms:.0f} ms")

    for name, single, kind in (
        ("POST /api/feedback/batch", FEEDBACK, "feedback"),
        ("POST /api/feedback/batch, stored traces", stored_vote, "feedback"),
        ("POST /api/trace/batch", TRACE, "trace"),
    ):
        request = batch_of(single, args.batch_items)
        tag, result = await load(
            server, request, args, connections=args.batch_connections, stored=run.scale.traces
        )
        items = result.ok * args.batch_items / result.seconds
        run.add(
            f"{name}, {args.batch_items:,} items, {args.batch_connections} conn",
            f"{items:,.0f} items/s ({result.rps:,.1f} req/s, p50 {ms(result.p50_ms)})",
            "≥ 100,000 items/s",
            items >= 100_000,
        )
        rows = await committed(db, kind, tag)
        check_committed(run, name, result, rows, args.batch_items, args.batch_connections)
        log(f"[{run.scale.label}] {name}: {items:,.0f} items/s")
    assert idle is not None
    return idle


async def measure_write_under_analytics(
    run: ScaleRun, server: Server, db: Database, args: argparse.Namespace, idle: LoadResult
) -> None:
    """POST /api/feedback at 32 connections while a loop asks quality/models back to back:
    an analytics request that blocked the event loop would stall every write meanwhile."""
    stop = asyncio.Event()
    answered = 0

    async def analytics_loop() -> None:
        nonlocal answered
        async with httpx.AsyncClient(base_url=server.base_url, timeout=600) as client:
            while not stop.is_set():
                (await client.get("/api/feedback/quality/models")).raise_for_status()
                answered += 1

    loop = asyncio.create_task(analytics_loop())
    await asyncio.sleep(0.2)  # the first analytics request is under way before the writes
    tag, busy = await load(server, FEEDBACK, args, settle=False)
    stop.set()
    await asyncio.wait_for(loop, 600)  # the request in flight ends before anything else runs
    await settle_server(server)
    p50x = busy.p50_ms / idle.p50_ms if idle.p50_ms else float("inf")
    p99x = busy.p99_ms / idle.p99_ms if idle.p99_ms else float("inf")
    run.add(
        "POST /api/feedback while quality/models runs",
        f"p50 {ms(busy.p50_ms)} ({p50x:.1f}x idle), p99 {ms(busy.p99_ms)} ({p99x:.1f}x idle), "
        f"{busy.rps:,.0f} req/s; {answered} analytics answers meanwhile",
        "p50 and p99 ≤ 2x idle",
        max(p50x, p99x) <= 2,
        f"idle p50 {ms(idle.p50_ms)}, p99 {ms(idle.p99_ms)}",
    )
    rows = await committed(db, "feedback", tag)
    check_committed(run, "POST /api/feedback under analytics", busy, rows, 1, args.connections)
    log(f"[{run.scale.label}] write under analytics: p99 {busy.p99_ms:.0f} ms ({p99x:.1f}x)")


def growth_figures(runs: list[ScaleRun]) -> list[Figure]:
    """Issue 5: at 1M each analytics route stays within 2x of itself at 100k, i.e. its cost
    follows the number of groups, not of rows. Compares the largest scale with the smallest."""
    if len(runs) < 2:
        return []
    small, large = runs[0], runs[-1]
    label = f"{large.scale.label} vs {small.scale.label}"
    figures = []
    for name, large_ms in large.analytics_ms.items():
        small_ms = small.analytics_ms[name]
        factor = large_ms / small_ms if small_ms else float("inf")
        figures.append(
            Figure(
                label,
                f"{name}: growth",
                f"{factor:.1f}x ({ms(small_ms)} → {ms(large_ms)})",
                "≤ 2x",
                factor <= 2,
                "",
            )
        )
    return figures


# ---------------------------------------------------------------------------------------------
# Report


def git_state() -> str:
    """The commit measured, and whether agentcost/ had uncommitted changes (work in progress
    is often what gets measured)."""

    def git(*argv: str) -> str:
        done = subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True, timeout=10)
        return done.stdout.strip()

    dirty = (
        " + uncommitted changes in agentcost/" if git("status", "--porcelain", "agentcost") else ""
    )
    return f"commit {git('rev-parse', '--short', 'HEAD')}{dirty}"


def report(
    args: argparse.Namespace,
    code: str,
    kept: list[KeptDataset],
    runs: list[ScaleRun],
    seconds: float,
) -> str:
    """The table and its context; ``code`` is the git state when the run began, the code the
    servers imported (the tree may move while a long run goes on)."""
    figures = [f for run in runs for f in run.figures] + growth_figures(runs)
    db = (
        "PostgreSQL (local, ANALYZE after load)"
        if args.postgres
        else "SQLite (WAL, synchronous=FULL)"
    )
    lines = [
        f"{db}; {code}; {os.cpu_count()} cores; "
        f"{runs[0].tool if runs else '-'} load, "
        f"{args.duration:.0f} s per load run, {args.connections} connections "
        f"({args.batch_connections} for batches); analytics median of up to {args.runs} runs "
        f"after a warm-up, at most {args.route_budget:.0f} s per route; "
        f"run took {seconds / 60:.1f} min.",
        "",
        *(f"- {k.describe()}" for k in kept),
        "",
        table(
            ("scale", "figure", "value", "target (issue 5)", "pass", "bare GET, same run"),
            [(f.scale, f.name, f.value, f.target, mark(f.ok), f.baseline) for f in figures],
        ),
        "",
        f"{sum(f.ok is True for f in figures)} pass, {sum(f.ok is False for f in figures)} fail.",
    ]
    lost = [item for run in runs for item in run.lost]
    lines.append(
        "ACKNOWLEDGED BUT NOT STORED: " + "; ".join(lost)
        if lost
        else "Every 2xx answer has its committed row."
    )
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    code = git_state()
    log(f"database: {'PostgreSQL via ' + PG_ADMIN_URL if args.postgres else 'SQLite'}")
    kept = []
    for scale in args.scales:  # all data first, so generation never overlaps a measurement
        log(f"[{scale.label}] data: {scale.traces:,} traces / {scale.feedback:,} feedback")
        dataset = await ensure_dataset(
            scale,
            seed=args.seed,
            postgres=args.postgres,
            fresh=args.fresh,
            progress=lambda m, s=scale.label: log(f"[{s}] {m}"),
        )
        log(f"[{scale.label}] {dataset.describe()}")
        kept.append(dataset)
    runs = []
    for dataset in kept:
        with working_copy(dataset) as url:
            runs.append(await measure_scale(dataset, url, args))
    text = report(args, code, kept, runs, time.perf_counter() - started)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"{stamp}-{'postgres' if args.postgres else 'sqlite'}.md"
    out.write_text(f"# bench/run.py {' '.join(sys.argv[1:])}\n\n{text}\n")
    log(f"written to {out.relative_to(ROOT)}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scales",
        help="Comma-separated scales, traces with k/m suffix (feedback is twice that); "
        "default 100k,1m (1k,10k with --quick).",
    )
    parser.add_argument(
        "--quick", action="store_true", help="Small scales and 2 s loads: a smoke run."
    )
    parser.add_argument(
        "--postgres",
        action="store_true",
        help=f"Measure PostgreSQL: a database of its own per scale, copied from a kept one "
        f"(admin URL {PG_ADMIN_URL}), dropped at the end.",
    )
    parser.add_argument(
        "--duration", type=float, help="Seconds per load run (default 10; 2 quick)."
    )
    parser.add_argument("--runs", type=int, help="Timed runs per analytics route (default 5).")
    parser.add_argument(
        "--route-budget",
        type=float,
        help="Seconds of timed runs per analytics route, after which the median is taken of "
        "the runs so far (default 30; 5 quick).",
    )
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--batch-connections", type=int, default=4)
    parser.add_argument("--batch-items", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--fresh", action="store_true", help="Regenerate the data even when it is kept."
    )
    parser.add_argument(
        "--tool",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="Load generator: wrk when installed (auto), or the Python fallback.",
    )
    args = parser.parse_args()
    try:
        args.scales = [
            parse_scale(s)
            for s in (args.scales or ("1k,10k" if args.quick else "100k,1m")).split(",")
        ]
    except ValueError as error:
        parser.error(f"--scales: {error}")
    args.scales.sort(key=lambda s: s.traces)
    args.duration = args.duration or (2.0 if args.quick else 10.0)
    args.runs = args.runs or (3 if args.quick else 5)
    args.route_budget = args.route_budget or (5.0 if args.quick else 30.0)
    return args


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
