"""Shared benchmark plumbing: a database to run on, the real server as a separate process, bulk
data through the services, a bounded HTTP load generator, and figures.

Benchmarks print figures and never assert timings. Every server binds to 127.0.0.1 only, and
every load loop stops at a deadline and at a request cap, so a stuck server cannot keep a run
going. Issue 5's harness, ``run.py``, is built from these pieces: ``cached_dataset`` (generated
data kept between runs), ``Server``, ``run_load`` with the write ``Request``s and ``committed``,
``time_route``, ``counting`` (SQL statements) and ``peak_rss_mb``.
"""

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
import uuid
from array import array
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from alembic.script import ScriptDirectory
from psycopg import sql as pg_sql
from sqlalchemy import event, func, select
from sqlalchemy.engine import make_url

from agentcost.db import Database
from agentcost.migrate import alembic_config, upgrade
from agentcost.models import FeedbackImport, FeedbackSource, TraceEvent
from agentcost.services.imports import import_history
from agentcost.services.sql import feedback as feedback_table
from agentcost.services.sql import traces as traces_table

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get(
    "AGENTCOST_BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1/postgres"
)
ORG = "default"  # the org the server uses without auth, so generated data is what routes see

# ---------------------------------------------------------------------------------------------
# Where to run


def add_database_args(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--database-url",
        help="Run on this existing database (kept afterwards), e.g. "
        "postgresql+asyncpg://postgres@127.0.0.1/DBNAME. Default: a fresh SQLite file.",
    )
    where.add_argument(
        "--postgres",
        action="store_true",
        help=f"Create a PostgreSQL database of its own (admin URL {PG_ADMIN_URL}), drop it after.",
    )


@contextlib.contextmanager
def target_database(args: argparse.Namespace) -> Iterator[str]:
    """The async URL the run uses; a database created here is removed when the run ends."""
    if args.database_url:
        yield args.database_url
        return
    if args.postgres:
        name = f"agentcost_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        url = make_url(PG_ADMIN_URL).set(drivername="postgresql+asyncpg", database=name)
        try:
            yield url.render_as_string(hide_password=False)
        finally:
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        return
    folder = Path(tempfile.mkdtemp(prefix="agentcost-bench-"))
    try:
        yield f"sqlite+aiosqlite:///{folder / 'bench.db'}"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def describe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


@contextlib.asynccontextmanager
async def database(url: str) -> AsyncIterator[Database]:
    """The bench process's own connection, migrated the way the server migrates on start."""
    db = Database(url)
    try:
        await upgrade(db)
        yield db
    finally:
        await db.dispose()


# ---------------------------------------------------------------------------------------------
# The server, as `agentcost serve` runs it, in a process of its own


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``agentcost serve`` on a free 127.0.0.1 port; ready once /api/ready answers 200.

    The server runs in a process of its own, as in production, so the bench's own work (data
    generation, a Python load generator) never shares its event loop. Its output goes to a log
    file, shown when it fails to start.
    """

    def __init__(self, database_url: str, *, ready_timeout: float = 120.0) -> None:
        self.database_url = database_url
        self.ready_timeout = ready_timeout
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(tempfile.gettempdir()) / f"agentcost-bench-server-{self.port}.log"
        self._process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> "Server":
        env = {**os.environ, "AGENTCOST_DATABASE_URL": self.database_url}
        command = [
            "-c",
            "from agentcost.cli import main; main()",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "warning",  # no access log line per request, as a production deployment would run
        ]
        with self.log_path.open("wb") as log_file:  # the child keeps its own copy of the fd
            self._process = await asyncio.create_subprocess_exec(
                sys.executable, *command, env=env, cwd=ROOT, stdout=log_file, stderr=log_file
            )
        await self._wait_ready()
        return self

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        async with httpx.AsyncClient(base_url=self.base_url, timeout=5) as client:
            while time.monotonic() < deadline:
                if self._process is None or self._process.returncode is not None:
                    break
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/api/ready")).status_code == 200:
                        return
                await asyncio.sleep(0.2)
        await self.stop()
        output = self.log_path.read_text(errors="replace")[-4000:]
        raise RuntimeError(f"server did not become ready:\n{output}")

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    async def stop(self) -> None:
        """Graceful shutdown (SIGINT, as Ctrl-C), then a kill if it hangs; only our own pid."""
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            process.kill()
            await asyncio.wait_for(process.wait(), 5)

    async def __aexit__(self, *_: object) -> None:
        await self.stop()
        self.log_path.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# Bulk data through the services


@dataclass(frozen=True, slots=True)
class Shape:
    """What the generated data looks like: enough groups for the analytics to have work."""

    models: tuple[tuple[str, str], ...] = (
        ("gpt-4.1", "openai"),
        ("gpt-4.1-mini", "openai"),
        ("claude-sonnet-4-5", "anthropic"),
        ("claude-haiku-4-5", "anthropic"),
        ("gemini-2.5-flash", "google"),
        ("acme-llama-3.1-70b-ft", "self-hosted"),
    )
    prompts: tuple[str, ...] = ("support-bot", "summarizer", "code-review")
    versions: int = 3
    projects: tuple[str, ...] = ("support-portal", "content-pipeline", "dev-tools", "playground")
    tags: tuple[str, ...] = ("hallucination", "too-long", "off-topic", "formatting", "refusal")
    days: int = 90
    unknown_trace_share: float = 0.01  # feedback whose trace never arrives
    call_feedback_share: float = 0.03  # feedback that names one call


@dataclass(frozen=True, slots=True)
class Generated:
    traces: int
    calls: int
    feedback: int
    seconds: float
    trace_seconds: float
    feedback_seconds: float

    def describe(self) -> str:
        rows = self.traces + self.calls + self.feedback
        return (
            f"generated {self.traces:,} traces / {self.calls:,} calls / {self.feedback:,} feedback "
            f"in {self.seconds:.1f} s (traces {self.trace_seconds:.1f} s, then feedback and "
            f"roll-ups {self.feedback_seconds:.1f} s; {rows / self.seconds:,.0f} rows/s)"
        )


TRACE_ID_PREFIX = "bench-trace-"


def bench_trace_id(index: int) -> str:
    """Ids of generated traces, so benchmarks can name one (trace score, trace detail)."""
    return f"{TRACE_ID_PREFIX}{index:08d}"


async def generate(
    db: Database,
    *,
    traces: int,
    feedback: int,
    seed: int = 1,
    shape: Shape = Shape(),
    anchor: datetime | None = None,
    progress: Callable[[str], None] | None = None,
) -> Generated:
    """``traces`` traces (1-3 calls each) and ``feedback`` items, through
    ``services.imports.import_history``: the bulk path, with the same rows and rules as every
    client's writes and the roll-ups computed once.

    Traces fall in the ``shape.days`` before ``anchor`` (default now); a kept dataset records its
    anchor so time-window filters select the same traces however old the data file is. Each
    vote is dated up to an hour after its trace. Token counts are drawn from a coarse grid so
    the price cache serves most calls: pricing an unseen (model, tokens) pair is far slower than
    storing it and would dominate the timing.
    """
    rng = random.Random(seed)
    now = anchor or datetime.now(UTC)
    span = shape.days * 86_400
    started = time.perf_counter()
    times = array("d")  # each trace's age in seconds, to date its votes
    counts = {"calls": 0}
    marks: dict[str, float] = {}

    def events() -> Iterator[TraceEvent]:
        for index in range(traces):
            model, provider = rng.choice(shape.models)
            prompt = rng.choice(shape.prompts)
            age = rng.random() * span
            times.append(age)
            at = now - timedelta(seconds=age)
            for step in range(rng.choice((1, 1, 2, 3))):
                counts["calls"] += 1
                yield TraceEvent.model_validate(
                    {
                        "trace_id": bench_trace_id(index),
                        "call_id": f"c{step}",
                        "project": rng.choice(shape.projects),
                        "model": model,
                        "provider": provider,
                        "input_tokens": 200 * rng.randint(1, 20),
                        "output_tokens": 50 * rng.randint(1, 15),
                        "latency_ms": rng.uniform(200, 4000),
                        "session_id": f"s{index // 4}",
                        "timestamp": at + timedelta(seconds=step),
                        "prompt_id": prompt,
                        "prompt_version": rng.randint(1, shape.versions),
                    }
                )
            if progress and (index + 1) % 100_000 == 0:
                progress(f"traces {index + 1:,}/{traces:,}")

    def votes() -> Iterator[FeedbackImport]:
        marks["feedback"] = time.perf_counter()
        sources = list(FeedbackSource)
        for index in range(feedback):
            if rng.random() < shape.unknown_trace_share:
                trace_id = f"bench-missing-{rng.getrandbits(48):012x}"
                age = rng.random() * span
            else:
                trace = rng.randrange(traces)
                trace_id = bench_trace_id(trace)
                age = max(0.0, times[trace] - rng.random() * 3600)
            score = rng.choices((1, 0, -1), weights=(75, 5, 20))[0]
            yield FeedbackImport.model_validate(
                {
                    "trace_id": trace_id,
                    "call_id": "c0" if rng.random() < shape.call_feedback_share else None,
                    "score": score,
                    "source": rng.choice(sources),
                    "user_id": f"user-{rng.randrange(5000)}",
                    "tags": [rng.choice(shape.tags)] if score < 0 else None,
                    "comment": "too long" if score < 0 and rng.random() < 0.3 else None,
                    "created_at": now - timedelta(seconds=age),
                }
            )
            if progress and (index + 1) % 200_000 == 0:
                progress(f"feedback {index + 1:,}/{feedback:,}")

    await import_history(db, org_id=ORG, events=events(), feedback=votes())
    total = time.perf_counter() - started
    trace_seconds = marks.get("feedback", started + total) - started
    return Generated(traces, counts["calls"], feedback, total, trace_seconds, total - trace_seconds)


async def refresh_statistics(db: Database) -> str:
    """What a production database has after a bulk load: PostgreSQL's planner statistics.

    Autovacuum would ANALYZE within a minute of the load, but it is off on this machine's
    cluster (conf.d/90-ci.conf), and without statistics PostgreSQL sorts every feedback row for
    a 100-row page. SQLite gathers none unless the application asks, and the service does not.
    """
    if db.is_sqlite:
        return "SQLite: no ANALYZE (the service never runs one)"
    started = time.perf_counter()
    async with db.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.exec_driver_sql("ANALYZE")
    return f"PostgreSQL: ANALYZE after the load ({time.perf_counter() - started:.1f} s)"


# ---------------------------------------------------------------------------------------------
# Kept datasets: generated once per scale and seed, copied for each run

GENERATOR_VERSION = 2  # bump when generate() or Shape changes what it writes
DATA_DIR = ROOT / "bench" / "results" / "data"  # git-ignored with the rest of bench/results/


@dataclass(frozen=True, slots=True)
class Scale:
    """A dataset size; issue 5 measures at 100k traces / 200k feedback and 1M / 2M."""

    label: str
    traces: int
    feedback: int


def parse_scale(text: str) -> Scale:
    """``100k``, ``1m`` or ``2500``: that many traces and twice as many feedback items."""
    label = text.strip().lower()
    factor = {"k": 1_000, "m": 1_000_000}.get(label[-1:], 1)
    traces = int(float(label[:-1] if factor > 1 else label) * factor)
    if traces < 1:
        raise ValueError(f"a scale needs at least one trace: {text!r}")
    return Scale(label, traces, 2 * traces)


@dataclass(frozen=True, slots=True)
class KeptDataset:
    """Generated data kept between runs; ``location`` is a SQLite file or a PostgreSQL name."""

    scale: Scale
    seed: int
    postgres: bool
    location: str
    anchor: datetime  # traces fall in the Shape.days before it
    generated: Generated  # how the kept copy was made, possibly by an earlier run
    generated_at: str
    reused: bool  # found from an earlier run, not generated by this one

    def describe(self) -> str:
        how = f"kept since {self.generated_at}" if self.reused else "generated now"
        return f"{self.scale.label} ({how}): {self.generated.describe()}"


def _dataset_key(scale: Scale, seed: int) -> str:
    """Name part of a kept dataset. The schema head is in it: a new migration (roll-up tables,
    say) means the data must go through the new write path again, not be migrated in place."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    raw = f"{scale.traces}-{scale.feedback}-seed{seed}-gen{GENERATOR_VERSION}-schema{head}"
    label = "".join(c if c.isalnum() else "_" for c in scale.label)
    return f"{label}_s{seed}_{hashlib.sha1(raw.encode()).hexdigest()[:8]}"


async def _generate_into(
    url: str, scale: Scale, seed: int, anchor: datetime, progress: Callable[[str], None]
) -> Generated:
    async with database(url) as db:
        made = await generate(
            db,
            traces=scale.traces,
            feedback=scale.feedback,
            seed=seed,
            anchor=anchor,
            progress=progress,
        )
        progress(made.describe())
        progress(await refresh_statistics(db))
        if db.is_sqlite:  # fold the WAL into the file, so the file alone is the dataset
            async with db.engine.connect() as conn:
                await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return made


def _meta(scale: Scale, seed: int, anchor: datetime, made: Generated) -> dict[str, Any]:
    return {
        "scale": asdict(scale),
        "seed": seed,
        "anchor": anchor.isoformat(),
        "generated": asdict(made),
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _kept(meta: dict[str, Any], *, postgres: bool, location: str, reused: bool) -> KeptDataset:
    return KeptDataset(
        scale=Scale(**meta["scale"]),
        seed=meta["seed"],
        postgres=postgres,
        location=location,
        anchor=datetime.fromisoformat(meta["anchor"]),
        generated=Generated(**meta["generated"]),
        generated_at=meta["generated_at"],
        reused=reused,
    )


async def ensure_dataset(
    scale: Scale,
    *,
    seed: int,
    postgres: bool,
    fresh: bool = False,
    progress: Callable[[str], None] = lambda _: None,
) -> KeptDataset:
    """The kept dataset of ``scale`` and ``seed``, generated through the services if missing.

    Generation writes under a temporary name that is renamed once complete, so an interrupted
    run never leaves half a dataset that a later run would take for whole. On PostgreSQL the
    kept database is ``agentcost_bench_cache_*`` (its metadata in the database's comment), loaded
    and ANALYZEd once; copies made from it as a template carry its statistics.
    """
    key = _dataset_key(scale, seed)
    anchor = datetime.now(UTC).replace(microsecond=0)
    if not postgres:
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        path, meta_path = DATA_DIR / f"{key}.db", DATA_DIR / f"{key}.json"
        if path.exists() and meta_path.exists() and not fresh:
            meta = json.loads(meta_path.read_text())
            return _kept(meta, postgres=False, location=str(path), reused=True)
        partial = DATA_DIR / f"{key}.partial.db"
        for stale in (
            partial,
            *(Path(f"{p}{x}") for p in (partial, path) for x in ("-wal", "-shm")),
        ):
            stale.unlink(missing_ok=True)
        made = await _generate_into(f"sqlite+aiosqlite:///{partial}", scale, seed, anchor, progress)
        os.replace(partial, path)
        meta = _meta(scale, seed, anchor, made)
        meta_path.write_text(json.dumps(meta, indent=2))
        return _kept(meta, postgres=False, location=str(path), reused=False)

    name, partial = f"agentcost_bench_cache_{key}", f"agentcost_bench_partial_{key}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        found = admin.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            (name,),
        ).fetchone()
        if found and found[0] and not fresh:
            return _kept(json.loads(found[0]), postgres=True, location=name, reused=True)
        admin.execute(
            pg_sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pg_sql.Identifier(partial))
        )
        admin.execute(pg_sql.SQL("CREATE DATABASE {}").format(pg_sql.Identifier(partial)))
    made = await _generate_into(_pg_url(partial), scale, seed, anchor, progress)
    meta = _meta(scale, seed, anchor, made)
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        ident = pg_sql.Identifier(name)
        admin.execute(pg_sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        admin.execute(
            pg_sql.SQL("ALTER DATABASE {} RENAME TO {}").format(pg_sql.Identifier(partial), ident)
        )
        admin.execute(
            pg_sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                ident, pg_sql.Literal(json.dumps(meta))
            )
        )
    return _kept(meta, postgres=True, location=name, reused=False)


def _pg_url(name: str) -> str:
    url = make_url(PG_ADMIN_URL).set(drivername="postgresql+asyncpg", database=name)
    return url.render_as_string(hide_password=False)


@contextlib.contextmanager
def working_copy(kept: KeptDataset) -> Iterator[str]:
    """A writable copy of a kept dataset for one run (write loads add rows), removed after."""
    if not kept.postgres:
        folder = Path(tempfile.mkdtemp(prefix="agentcost-bench-"))
        try:
            shutil.copyfile(kept.location, folder / "bench.db")
            yield f"sqlite+aiosqlite:///{folder / 'bench.db'}"
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    name = pg_sql.Identifier(f"agentcost_bench_{uuid.uuid4().hex[:10]}")
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(
            pg_sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                name, pg_sql.Identifier(kept.location)
            )
        )
    try:
        yield _pg_url(name.as_string(None).strip('"'))
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(pg_sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))


# ---------------------------------------------------------------------------------------------
# Load


@dataclass(frozen=True, slots=True)
class Request:
    """One kind of request; ``{tag}``, ``{conn}`` and ``{n}`` in the body make each unique, and
    each ``{stored}`` becomes the number of a generated trace drawn at random (``stored`` of
    ``run_load``), so a vote can land on a trace that exists."""

    method: str
    path: str
    body: str | None = None  # JSON text; the placeholders are filled per request


@dataclass(frozen=True, slots=True)
class LoadResult:
    tool: str
    requests: int  # answered
    ok: int  # 2xx answers
    errors: int  # non-2xx answers and socket errors
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


HEALTH = Request("GET", "/api/health")
# The guide's thumbs-up body; user_id marks the run so its rows can be counted afterwards.
FEEDBACK = Request(
    "POST",
    "/api/feedback",
    '{"trace_id": "{tag}-{conn}-{n}", "score": 1, "comment": "Accurate and helpful", '
    '"user_id": "{tag}", "tags": ["bench"]}',
)
# One LLM call as AgentCost's SDK sends it (cost left out: the service prices the tokens).
TRACE = Request(
    "POST",
    "/api/trace",
    '{"trace_id": "{tag}-{conn}-{n}", "project": "{tag}", "model": "gpt-4.1-mini", '
    '"provider": "openai", "input_tokens": 1200, "output_tokens": 300, "latency_ms": 850.5, '
    '"status": "success", "agent_id": "bench-agent", "session_id": "s-{conn}", '
    '"metadata": {"prompt_id": "support-bot", "prompt_version": "v2"}}',
)


def on_stored_traces(single: Request) -> Request:
    """The vote ``single`` on generated traces instead of traces nobody sent. A vote on a stored
    trace retracts and re-adds the trace's roll-up contribution at every level; one on an
    unknown trace only counts in the summary's ``unknown``, so it is the cheaper of the two."""
    assert single.body is not None
    stored = f'"trace_id": "{TRACE_ID_PREFIX}{{stored}}"'
    body = single.body.replace('"trace_id": "{tag}-{conn}-{n}"', stored)
    assert body != single.body
    return Request(single.method, single.path, body)


def batch_of(single: Request, items: int) -> Request:
    """``items`` copies of a single write's body as one batch request (a JSON array); each item
    gets its own trace id, and the run's tag stays in it so committed rows can be counted."""
    assert single.body is not None
    body = ", ".join(single.body.replace("{n}", f"{{n}}-{i}") for i in range(items))
    return Request("POST", f"{single.path}/batch", f"[{body}]")


async def committed(db: Database, kind: str, tag: str) -> int:
    """Rows a write run tagged ``tag`` committed (``kind`` feedback or trace), counted until the
    count settles: requests in flight when the load stopped may still commit."""
    if kind == "feedback":
        where = (feedback_table.c.org_id == ORG, feedback_table.c.user_id == tag)
        stmt = select(func.count()).select_from(feedback_table).where(*where)
    else:
        stmt = select(func.count()).select_from(traces_table).where(traces_table.c.project == tag)
    last = -1
    for _ in range(20):  # at most ~10 s
        async with db.read() as conn:
            count = int((await conn.execute(stmt)).scalar_one())
        if count == last:
            return count
        last = count
        await asyncio.sleep(0.5)
    return last


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


async def run_load(
    base_url: str,
    request: Request,
    *,
    tag: str,
    connections: int = 32,
    seconds: float = 10.0,
    max_requests: int = 2_000_000,
    tool: str = "auto",
    stored: int = 1,
) -> LoadResult:
    """Keep ``connections`` connections busy with ``request`` for ``seconds``; ``{stored}``
    draws from the first ``stored`` generated traces.

    wrk (C, event loop) is preferred: a Python client on the same two cores would take CPU from
    the server and measure itself. The Python fallback stops at ``max_requests`` too; wrk is
    bounded by its duration.
    """
    if tool == "wrk" or (tool == "auto" and wrk_available()):
        return await _run_wrk(base_url, request, tag, connections, seconds, stored)
    return await _run_python(base_url, request, tag, connections, seconds, max_requests, stored)


_WRK_SCRIPT = """
local counter = 0
local threads = {}
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end
local n = 0
function init(args)
  math.randomseed(tid)
end
local template = %(template)s
local headers = {["Content-Type"] = "application/json"}
local function stored()
  return string.format("%%08d", math.random(0, %(stored)d - 1))
end
function request()
  n = n + 1
  if template == nil then
    return wrk.format(%(method)s, %(path)s)
  end
  local body = template:gsub("{conn}", tostring(tid)):gsub("{n}", tostring(n))
  body = body:gsub("{stored}", stored)
  return wrk.format(%(method)s, %(path)s, headers, body)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %%d, "duration_us": %%d, "status_errors": %%d, ' ..
    '"socket_errors": %%d, "p50_us": %%d, "p99_us": %%d}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def _lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string literal is a valid Lua string literal for our text


async def _run_wrk(
    base_url: str, request: Request, tag: str, connections: int, seconds: float, stored: int
) -> LoadResult:
    template = "nil" if request.body is None else _lua_string(request.body.replace("{tag}", tag))
    script = _WRK_SCRIPT % {
        "template": template,
        "method": _lua_string(request.method),
        "path": _lua_string(request.path),
        "stored": stored,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
        lua.write(script)
        lua.flush()
        threads = min(connections, max(1, os.cpu_count() or 1))
        proc = await asyncio.create_subprocess_exec(
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            lua.name,
            base_url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=seconds + 60)
    text = out.decode()
    line = next((x for x in text.splitlines() if x.startswith("WRK_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{text}")
    data = json.loads(line.removeprefix("WRK_JSON "))
    errors = data["status_errors"] + data["socket_errors"]
    return LoadResult(
        tool="wrk",
        requests=data["requests"],
        ok=data["requests"] - data["status_errors"],
        errors=errors,
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
    )


async def _run_python(
    base_url: str,
    request: Request,
    tag: str,
    connections: int,
    seconds: float,
    max_requests: int,
    stored: int,
) -> LoadResult:
    """Raw HTTP/1.1 keep-alive over asyncio streams, one task per connection.

    httpx's pool tops out near 150 requests/s at 32 connections on this machine, slower than
    the routes it would measure; writing the request bytes by hand keeps the client cheap.
    """
    url = httpx.URL(base_url)
    host, port = url.host, url.port or 80
    template = None if request.body is None else request.body.replace("{tag}", tag)
    latencies: list[float] = []
    ok = errors = issued = 0

    def encode(body: str | None) -> bytes:
        head = f"{request.method} {request.path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        if body is None:
            return (head + "\r\n").encode()
        data = body.encode()
        head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        return head.encode() + data

    async def worker(conn: int, deadline: float) -> None:
        nonlocal ok, errors, issued
        streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        n = 0
        while time.monotonic() < deadline and issued < max_requests:
            issued += 1
            n += 1
            body = None
            if template is not None:
                body = template.replace("{conn}", str(conn)).replace("{n}", str(n))
                body = re.sub(r"\{stored\}", lambda _: f"{random.randrange(stored):08d}", body)
            sent = time.perf_counter()
            try:
                if streams is None:
                    streams = await asyncio.open_connection(host, port)
                reader, writer = streams
                writer.write(encode(body))
                status = await asyncio.wait_for(_read_response(reader), 10)
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError):
                errors += 1
                if streams is not None:
                    streams[1].close()
                streams = None
                continue
            latencies.append(time.perf_counter() - sent)
            if 200 <= status < 300:
                ok += 1
            else:
                errors += 1
        if streams is not None:
            streams[1].close()

    started = time.perf_counter()
    deadline = time.monotonic() + seconds
    await asyncio.gather(*(worker(c, deadline) for c in range(connections)))
    return LoadResult(
        tool="python",
        requests=len(latencies),
        ok=ok,
        errors=errors,
        seconds=time.perf_counter() - started,
        p50_ms=percentile(latencies, 50) * 1000,
        p99_ms=percentile(latencies, 99) * 1000,
    )


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Read one response (Content-Length or chunked body) and return its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
            await reader.readexactly(size + 2)
        await reader.readuntil(b"\r\n")
    else:
        await reader.readexactly(int(headers.get("content-length", "0")))
    return status


# ---------------------------------------------------------------------------------------------
# Figures


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile; 0 for no values (a run that answered nothing)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, round(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


async def time_route(
    client: httpx.AsyncClient,
    path: str,
    *,
    runs: int,
    warmup: int = 1,
    budget: float = float("inf"),
) -> tuple[float, httpx.Response, int]:
    """Median wall time in ms of up to ``runs`` sequential GETs after ``warmup``, a response,
    and how many runs were timed: runs stop once the route has taken ``budget`` seconds, warm-up
    included (at least one is timed), so a route taking seconds at 1M rows cannot stretch a
    run to an hour."""
    started = time.perf_counter()
    for _ in range(warmup):
        (await client.get(path)).raise_for_status()
    times: list[float] = []
    while len(times) < max(1, runs) and (not times or time.perf_counter() - started < budget):
        sent = time.perf_counter()
        response = await client.get(path)
        times.append((time.perf_counter() - sent) * 1000)
        response.raise_for_status()
    return statistics.median(times), response, len(times)


@contextlib.contextmanager
def counting(db: Database) -> Iterator[list[str]]:
    """The SQL statements ``db`` sends inside the block (transaction control left out), to
    check that a GraphQL page costs a fixed number of statements whatever its size."""
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        if not sql.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK")):
            statements.append(sql)

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, from /proc/<pid>/stat (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def wait_idle(pid: int, *, limit: float = 300.0, busy_share: float = 0.05) -> float:
    """Wait (at most ``limit`` s) until the server uses under ``busy_share`` of a core; the
    seconds waited.

    A load generator that gives up on slow requests (wrk's 10 s timeout) leaves them running
    in the server; without this wait the next figure would measure that backlog.
    """
    started = time.monotonic()
    last = cpu_seconds(pid)
    while time.monotonic() - started < limit:
        await asyncio.sleep(0.5)
        now = cpu_seconds(pid)
        if now - last < 0.5 * busy_share:
            break
        last = now
    return time.monotonic() - started


def peak_rss_mb(pid: int) -> tuple[float, float]:
    """(peak, current) resident memory of a process in MB, from /proc (Linux): VmHWM is the
    high-water mark, so one read at the end covers every load the process went through."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        fields[name] = value
    return int(fields["VmHWM"].split()[0]) / 1024, int(fields["VmRSS"].split()[0]) / 1024


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table, so printed figures paste straight into bench/README.md."""
    cells = [list(map(str, header)), *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
