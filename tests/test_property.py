"""Property test: every aggregate route against a plain-Python reading of DESIGN.md.

Hypothesis draws traces of several calls (some priced by the client, some by the price library,
some unpriced), feedback on known and unknown traces, on whole traces and on single calls, several
votes per trace, replacements by client id, sources, projects, tags and trace times. The data go
in through the REST routes (in an order where feedback often precedes its trace), and every
aggregate the routes answer, with and without filters, is compared with the reference below.

Each example lives in an organisation of its own, so nothing needs truncating between examples.
"""

import math
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import Request
from genai_prices import Usage, calc_price
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentcost.app import create_app
from agentcost.rest_api.deps import get_principal
from agentcost.services.auth import Principal, open_principal
from agentcost.settings import Settings

pytestmark = pytest.mark.anyio

T0 = datetime(2025, 1, 6, tzinfo=UTC)
# Two the price library knows, one with a slash it does not, one nobody prices.
MODELS = ["gpt-4.1", "gpt-4.1-mini", "openai/gpt-4o", "in-house-llm"]
PROJECTS = ["web", "api"]
PROMPTS = ["bot", "faq"]
SOURCES = ["user", "human-review", "automated", "eval"]
TAGS = ["slow", "wrong", "great"]
ORG_HEADER = "X-Test-Org"
Z = 1.959963984540054


def library_cost(model: str, input_tokens: int, output_tokens: int) -> float | None:
    try:
        price = calc_price(
            Usage(input_tokens=input_tokens, output_tokens=output_tokens), model_ref=model
        )
    except LookupError:
        return None
    return float(price.total_price)


# ---------------------------------------------------------------------------------------------
# The data


@dataclass
class RefCall:
    call_id: str
    model: str
    cost: float | None
    at: datetime
    event: dict[str, Any]


@dataclass
class RefTrace:
    trace_id: str
    project: str
    prompt_id: str | None
    prompt_version: int | None
    calls: list[RefCall]
    split: bool

    @property
    def started_at(self) -> datetime:
        return min(c.at for c in self.calls)

    @property
    def cost(self) -> float | None:
        known = [c.cost for c in self.calls if c.cost is not None]
        return sum(known) if known else None

    @property
    def primary(self) -> RefCall:
        """The costliest call; unknown costs rank lowest; on a tie, the earliest."""
        return max(
            self.calls, key=lambda c: (-1.0 if c.cost is None else c.cost, -c.at.timestamp())
        )


@dataclass
class Scenario:
    traces: dict[str, RefTrace]
    feedback: list[dict[str, Any]]  # first round, every item with a client id
    replacements: list[dict[str, Any]]  # the same ids again: they replace the first round
    filters: dict[str, Any]

    @property
    def final_feedback(self) -> list[dict[str, Any]]:
        latest = {f["id"]: f for f in self.feedback}
        latest.update({f["id"]: f for f in self.replacements})
        return list(latest.values())


@st.composite
def calls_of(draw: st.DrawFn, trace_id: str, project: str, start: datetime) -> list[RefCall]:
    calls = []
    for j in range(draw(st.integers(1, 4))):
        model = draw(st.sampled_from(MODELS))
        input_tokens = draw(st.integers(1, 5000))
        output_tokens = draw(st.integers(1, 2000))
        pricing = draw(st.sampled_from(["sent", "library"]))
        at = start + timedelta(minutes=7 * j + draw(st.integers(0, 6)))
        event: dict[str, Any] = {
            "trace_id": trace_id,
            "call_id": f"{trace_id}-c{j}",
            "project": project,
            "model": model,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "timestamp": at.isoformat(),
        }
        if pricing == "sent":
            cost: float | None = draw(st.integers(0, 40)) / 1000
            event["cost"] = cost
        else:
            cost = library_cost(model, input_tokens, output_tokens)  # None: unpriced
        calls.append(RefCall(event["call_id"], model, cost, at, event))
    return calls


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    traces: dict[str, RefTrace] = {}
    for i in range(draw(st.integers(0, 6))):
        trace_id = f"t{i}"
        project = draw(st.sampled_from(PROJECTS))
        start = T0 + timedelta(hours=draw(st.integers(0, 72)))
        calls = draw(calls_of(trace_id, project, start))
        prompt_id = draw(st.none() | st.sampled_from(PROMPTS))
        version = draw(st.none() | st.integers(1, 3)) if prompt_id else None
        if prompt_id is not None:
            # Prompt fields ride on one of the calls, top-level or inside metadata (as AgentCost).
            carrier = draw(st.sampled_from(calls)).event
            fields = {"prompt_id": prompt_id, "prompt_version": version}
            if draw(st.booleans()):
                carrier["metadata"] = {k: v for k, v in fields.items() if v is not None}
            else:
                carrier.update(fields)
        trace = RefTrace(trace_id, project, prompt_id, version, calls, split=False)
        # Sending a trace's calls in two requests exercises the roll-up upsert, ties included.
        trace.split = len(calls) > 1 and draw(st.booleans())
        traces[trace_id] = trace

    trace_ids = [*traces, "ghost-1", "ghost-2"]  # votes on traces that never arrive
    feedback = []
    for k in range(draw(st.integers(0, 16))):
        trace_id = draw(st.sampled_from(trace_ids))
        call_choices: list[str | None] = [None, f"{trace_id}-unknown-call"]
        if trace_id in traces:
            call_choices += [c.call_id for c in traces[trace_id].calls]
        feedback.append(
            {
                "id": f"f{k}",
                "trace_id": trace_id,
                "score": draw(st.sampled_from([-1, 0, 1])),
                "source": draw(st.sampled_from(SOURCES)),
                "tags": draw(st.lists(st.sampled_from(TAGS), max_size=2, unique=True)),
                "call_id": draw(st.sampled_from(call_choices)),
            }
        )
    replacements = []
    again = (
        draw(st.lists(st.sampled_from(feedback), unique_by=lambda f: f["id"])) if feedback else []
    )
    for item in again:
        replacements.append(
            {
                **item,
                "score": draw(st.sampled_from([-1, 0, 1])),
                "source": draw(st.sampled_from(SOURCES)),
            }
        )

    filters: dict[str, Any] = {}
    if draw(st.booleans()):
        filters["project"] = draw(st.sampled_from(PROJECTS))
    if draw(st.booleans()):
        filters["source"] = draw(st.sampled_from(SOURCES))
    if draw(st.booleans()):
        filters["tag"] = draw(st.sampled_from(TAGS))
    window = draw(st.sampled_from(["none", "since", "until", "both"]))
    lo = draw(st.integers(0, 80))
    if window in ("since", "both"):
        filters["since"] = (T0 + timedelta(hours=lo)).isoformat()
    if window in ("until", "both"):
        filters["until"] = (T0 + timedelta(hours=lo + draw(st.integers(1, 40)))).isoformat()
    return Scenario(traces, feedback, replacements, filters)


# ---------------------------------------------------------------------------------------------
# The reference: DESIGN.md's metric table, in plain Python


@dataclass
class Subject:
    """A rated thing (a trace, or one call of it): its votes, its cost counted once."""

    known: bool
    cost: float | None
    votes: list[int] = field(default_factory=list)


def passes(item: dict[str, Any], trace: RefTrace | None, f: dict[str, Any]) -> bool:
    """Project and window are trace attributes; source and tag are feedback attributes."""
    if ("project" in f or "since" in f or "until" in f) and trace is None:
        return False
    if "project" in f and trace.project != f["project"]:  # type: ignore[union-attr]
        return False
    if "since" in f and trace.started_at < datetime.fromisoformat(f["since"]):  # type: ignore[union-attr]
        return False
    if "until" in f and trace.started_at >= datetime.fromisoformat(f["until"]):  # type: ignore[union-attr]
        return False
    if "source" in f and item["source"] != f["source"]:
        return False
    return not ("tag" in f and f["tag"] not in item["tags"])


def wilson(pos: int, n: int) -> tuple[float, float]:
    p = pos / n
    denom = 1 + Z * Z / n
    centre = (p + Z * Z / (2 * n)) / denom
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / denom
    return 100 * max(0.0, centre - half), 100 * min(1.0, centre + half)


def metrics(subjects: Iterable[Subject]) -> dict[str, Any]:
    subjects = list(subjects)
    votes = [v for s in subjects for v in s.votes]
    total = len(votes)
    pos, neg = votes.count(1), votes.count(-1)
    rated = [s for s in subjects if s.known]
    positive_traces = sum(1 for s in rated if sum(s.votes) / len(s.votes) > 0)
    costs = [s.cost for s in rated if s.cost is not None]
    avg_cost = sum(costs) / len(costs) if costs else None
    # "total cost of the rated traces / rated traces with mean score > 0"; a rated trace whose
    # cost is unknown is valued at the mean of the known ones (the service's reading).
    cost_per_positive = (
        avg_cost * len(rated) / positive_traces
        if avg_cost is not None and positive_traces
        else None
    )
    low, high = wilson(pos, total) if total else (None, None)
    return {
        "total_feedback": total,
        "positive": pos,
        "negative": neg,
        "neutral": total - pos - neg,
        "positive_pct": round(100 * pos / total, 1) if total else None,
        "negative_pct": round(100 * neg / total, 1) if total else None,
        "neutral_pct": round(100 * (total - pos - neg) / total, 1) if total else None,
        "avg_score": round((pos - neg) / total, 3) if total else None,
        "rated_traces": len(rated),
        "positive_traces": positive_traces,
        "total_cost": sum(costs) if costs else None,
        "avg_cost": avg_cost,
        "cost_per_positive": cost_per_positive,
        "positive_pct_low": low,
        "positive_pct_high": high,
    }


def attributed(item: dict[str, Any], trace: RefTrace) -> tuple[tuple[str, str | None], str, Any]:
    """(subject key, model, cost): a vote naming a stored call counts for that call."""
    call = next((c for c in trace.calls if c.call_id == item["call_id"]), None)
    if call is not None:
        return (trace.trace_id, call.call_id), call.model, call.cost
    return (trace.trace_id, None), trace.primary.model, trace.cost


def ref_summary(s: Scenario, f: dict[str, Any]) -> dict[str, Any]:
    subjects: dict[str, Subject] = {}
    sources: Counter[str] = Counter()
    unknown = 0
    for item in s.final_feedback:
        trace = s.traces.get(item["trace_id"])
        if not passes(item, trace, f):
            continue
        subject = subjects.setdefault(
            item["trace_id"], Subject(trace is not None, trace.cost if trace else None)
        )
        subject.votes.append(item["score"])
        sources[item["source"]] += 1
        unknown += trace is None
    return {**metrics(subjects.values()), "unknown_trace_feedback": unknown, "by_source": sources}


def ref_by_model(s: Scenario, f: dict[str, Any]) -> dict[str, dict[str, Any]]:
    groups: dict[str, dict[Any, Subject]] = defaultdict(dict)
    for item in s.final_feedback:
        trace = s.traces.get(item["trace_id"])
        if trace is None or not passes(item, trace, f):
            continue  # feedback on unknown traces is in no per-model group
        key, model, cost = attributed(item, trace)
        groups[model].setdefault(key, Subject(True, cost)).votes.append(item["score"])
    return {model: metrics(subjects.values()) for model, subjects in groups.items()}


def ref_by_prompt(s: Scenario, prompt_id: str, f: dict[str, Any]) -> dict[Any, dict[str, Any]]:
    groups: dict[Any, dict[str, Subject]] = defaultdict(dict)
    for item in s.final_feedback:
        trace = s.traces.get(item["trace_id"])
        if trace is None or trace.prompt_id != prompt_id or not passes(item, trace, f):
            continue
        subject = groups[trace.prompt_version].setdefault(trace.trace_id, Subject(True, trace.cost))
        subject.votes.append(item["score"])
    return {version: metrics(subjects.values()) for version, subjects in groups.items()}


def ref_trace_score(s: Scenario, trace_id: str) -> dict[str, Any] | None:
    votes = [f["score"] for f in s.final_feedback if f["trace_id"] == trace_id]
    if not votes and trace_id not in s.traces:
        return None
    total, pos, neg = len(votes), votes.count(1), votes.count(-1)
    return {
        "trace_id": trace_id,
        "total": total,
        "positive": pos,
        "negative": neg,
        "neutral": total - pos - neg,
        "score": round((pos - neg) / total, 3) if total else None,
    }


def ref_listing_by_model(s: Scenario, model: str) -> set[str]:
    found = set()
    for item in s.final_feedback:
        trace = s.traces.get(item["trace_id"])
        if trace is not None and attributed(item, trace)[1] == model:
            found.add(item["id"])
    return found


# ---------------------------------------------------------------------------------------------
# Comparing


def money_close(got: float | None, want: float | None) -> bool:
    """The service gives money to 3 significant figures; accept either side of a rounding tie."""
    if want is None or got is None:
        return got is want
    if want == 0:
        return got == 0
    unit = 10 ** (math.floor(math.log10(abs(want))) - 2)
    return abs(got - want) <= 0.5 * unit * 1.000001 + 1e-15


def assert_metrics(got: dict[str, Any], want: dict[str, Any], where: str) -> None:
    for name, value in want.items():
        if name in ("avg_cost", "cost_per_positive"):
            assert money_close(got[name], value), (where, name, got[name], value)
        elif name == "total_cost":
            assert got[name] == (None if value is None else pytest.approx(value, abs=1e-9)), (
                where,
                name,
                got[name],
                value,
            )
        elif name in ("positive_pct_low", "positive_pct_high"):
            if value is None:
                assert got[name] is None, (where, name)
            else:
                assert got[name] == pytest.approx(value, abs=0.051), (where, name, got[name])
        elif name == "by_source":
            assert got[name] == dict(value), (where, name, got[name], value)
        else:
            assert got[name] == value, (where, name, got[name], value)


# ---------------------------------------------------------------------------------------------
# The test


@pytest.fixture
async def org_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The whole app; each request's organisation comes from a test header."""

    def principal_from_header(request: Request) -> Principal:
        return open_principal(request.headers[ORG_HEADER])

    app = create_app(settings)
    app.dependency_overrides[get_principal] = principal_from_header
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


async def send(s: Scenario, c: httpx.AsyncClient) -> None:
    first_half, second_half = [], []
    for trace in s.traces.values():
        events = [call.event for call in trace.calls]
        if trace.split:
            cut = len(events) // 2
            first_half += events[:cut]
            second_half += events[cut:]
        else:
            first_half += events
    early, late = s.feedback[: len(s.feedback) // 2], s.feedback[len(s.feedback) // 2 :]
    for path, body in (
        ("/api/feedback/batch", early),  # votes before their traces arrive
        ("/api/trace/batch", first_half),
        ("/api/feedback/batch", late),
        ("/api/trace/batch", second_half),
        ("/api/feedback/batch", s.replacements),
    ):
        if body:
            r = await c.post(path, json=body)
            assert r.status_code == 201, r.text


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios())
async def test_every_aggregate_matches_the_reference(
    org_client: httpx.AsyncClient, scenario: Scenario
) -> None:
    c = org_client
    c.headers[ORG_HEADER] = f"prop-{uuid.uuid4().hex}"
    await send(scenario, c)

    async def get(path: str, **params: Any) -> httpx.Response:
        return await c.get(path, params=params)

    for f in ({}, scenario.filters):
        where = f"filters={f}"
        r = await get("/api/feedback/summary", **f)
        assert r.status_code == 200, r.text
        assert_metrics(r.json(), ref_summary(scenario, f), f"summary {where}")

        want_models = ref_by_model(scenario, f)
        r = await get("/api/feedback/quality/models", **f)
        got_models = r.json()
        assert [m["model"] for m in got_models] == sorted(
            want_models, key=lambda m: (-want_models[m]["total_feedback"], m)
        ), where
        for row in got_models:
            assert_metrics(row, want_models[row["model"]], f"model {row['model']} {where}")

        used = {call.model for t in scenario.traces.values() for call in t.calls}
        for model in [*MODELS, "never-used/model"]:
            r = await get(f"/api/feedback/quality/model/{model}", **f)
            if model in want_models:
                assert r.status_code == 200
                assert_metrics(r.json(), want_models[model], f"one model {model} {where}")
            elif model in used:
                assert r.status_code == 200
                assert_metrics(r.json(), metrics([]), f"one empty model {model} {where}")
            else:
                assert r.status_code == 404, (model, r.text)

        for prompt_id in PROMPTS:
            r = await get(f"/api/feedback/quality/prompt/{prompt_id}", **f)
            want = ref_by_prompt(scenario, prompt_id, f)
            if not any(t.prompt_id == prompt_id for t in scenario.traces.values()):
                assert r.status_code == 404
                continue
            assert r.status_code == 200
            rows = r.json()
            assert [row["version"] for row in rows] == sorted(
                want, key=lambda v: (v is None, v or 0)
            ), (prompt_id, where)
            for row in rows:
                assert row["prompt_id"] == prompt_id
                assert_metrics(row, want[row["version"]], f"{prompt_id} v{row['version']} {where}")

    for trace_id in {*scenario.traces, *(f["trace_id"] for f in scenario.feedback), "missing"}:
        want_score = ref_trace_score(scenario, trace_id)
        r = await get(f"/api/feedback/trace/{trace_id}/score")
        if want_score is None:
            assert r.status_code == 404
        else:
            assert r.json() == want_score

    for trace in scenario.traces.values():
        got = (await get(f"/api/traces/{trace.trace_id}")).json()
        assert got["call_count"] == len(trace.calls)
        assert got["model"] == trace.primary.model
        assert got["cost"] == (None if trace.cost is None else pytest.approx(trace.cost))
        assert got["unpriced_calls"] == sum(c.cost is None for c in trace.calls)
        assert got["input_tokens"] == sum(c.event["input_tokens"] for c in trace.calls)
        assert (got["prompt_id"], got["prompt_version"]) == (trace.prompt_id, trace.prompt_version)
        assert datetime.fromisoformat(got["started_at"]) == trace.started_at

    for model in MODELS:
        r = await get("/api/feedback", model=model, limit=1000)
        assert {f["id"] for f in r.json()} == ref_listing_by_model(scenario, model), model
