"""`agentcost demo`: a realistic data set, so a newcomer sees meaningful analytics at once.

Everything goes through the same services as real clients (trace ingestion, feedback submission),
in batches, so the demo also shows that the roll-ups, the pricing and the late-trace join work.
The data is a pure function of the seed (and of ``now``, which only shifts timestamps): every id
is drawn from the seeded generator, so running the demo twice replaces instead of duplicating.

The story it tells: three prompts (support-bot v1-v3, summarizer v1-v2, code-review v1-v2) run on
five models over the last 30 days. Better models and newer prompt versions get better votes;
gpt-4.1-mini is much cheaper than gpt-4.1 but rated lower; a self-hosted model has no public
price, so its cost stays unknown (null), never zero.
"""

import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from agentcost import pricing
from agentcost.db import Database
from agentcost.models import FeedbackCreate, FeedbackSource, TraceEvent, utcnow
from agentcost.services import feedback
from agentcost.services import traces as traces_service

DAYS = 30
# Traces per service call: big enough that the demo takes seconds, small enough for any driver.
BATCH_TRACES = 250


@dataclass(frozen=True, slots=True)
class _Model:
    name: str
    provider: str
    quality: float  # chance that a typical response is good
    verbosity: float  # multiplies output tokens
    ms_per_token: float
    weak_spots: tuple[str, ...]  # the tags its bad answers tend to get


MODELS = {
    m.name: m
    for m in (
        _Model("gpt-4.1", "openai", 0.90, 1.0, 9.0, ("too-long", "formatting")),
        _Model("gpt-4.1-mini", "openai", 0.77, 0.85, 5.0, ("hallucination", "off-topic")),
        _Model("claude-sonnet-4-5", "anthropic", 0.92, 1.15, 11.0, ("too-long", "refusal")),
        _Model("gemini-2.5-flash", "google", 0.82, 0.9, 4.0, ("formatting", "hallucination")),
        # Not in genai-prices' table: its calls are stored with cost null.
        _Model("acme-llama-3.1-70b-ft", "self-hosted", 0.71, 1.1, 14.0, ("refusal", "off-topic")),
    )
}
UNPRICED_MODEL = "acme-llama-3.1-70b-ft"
ROUTER_MODEL = "gpt-4.1-mini"


@dataclass(frozen=True, slots=True)
class _Prompt:
    prompt_id: str
    project: str
    agent_id: str
    # version -> (day it was released, counted back from now; change of the chance of a good answer)
    versions: dict[int, tuple[int, float]]
    models: dict[str, float]  # model -> share of traffic
    tools: tuple[str, ...]
    max_tool_calls: int
    routed: bool  # a cheap intent-classification call precedes the answer
    input_tokens: tuple[int, int]
    output_tokens: tuple[int, int]
    length_limit: int  # output tokens above which the automated length check complains
    own_tags: tuple[str, ...]
    share: float


PROMPTS = (
    _Prompt(
        "support-bot",
        "support-portal",
        "support-agent",
        {1: (DAYS, -0.09), 2: (19, 0.0), 3: (7, 0.05)},
        {"gpt-4.1": 0.35, "gpt-4.1-mini": 0.40, "claude-sonnet-4-5": 0.25},
        ("search_kb", "lookup_order", "create_ticket"),
        3,
        True,
        (900, 3200),
        (120, 520),
        600,
        ("outdated-policy", "wrong-order"),
        0.5,
    ),
    _Prompt(
        "summarizer",
        "content-pipeline",
        "summarizer-worker",
        {1: (DAYS, -0.04), 2: (14, 0.04)},
        {"gemini-2.5-flash": 0.45, "gpt-4.1-mini": 0.30, UNPRICED_MODEL: 0.25},
        (),
        0,
        False,
        (2500, 9000),
        (140, 420),
        450,
        ("missed-key-point",),
        0.3,
    ),
    _Prompt(
        "code-review",
        "dev-tools",
        "review-bot",
        {1: (DAYS, 0.0), 2: (10, 0.03)},
        {"claude-sonnet-4-5": 0.55, "gpt-4.1": 0.45},
        ("read_file", "run_tests", "grep_repo"),
        4,
        False,
        (1500, 6000),
        (200, 800),
        900,
        ("false-positive", "missed-bug"),
        0.2,
    ),
)

REVIEWERS = ("reviewer-jane", "reviewer-omar", "reviewer-li")
JUDGE = "judge-gpt-4.1"

_PRAISE = (
    "Accurate and helpful",
    "Exactly what I needed",
    "Clear and concise",
    "Solved my problem on the first try",
    "Good answer, cited the right article",
)
_NEUTRAL = ("OK, but I had to rephrase my question", "Fine, nothing special", "Partly useful")
_COMPLAINTS = {
    "hallucination": ("Hallucinated a date", "Invented a feature we do not have"),
    "too-long": ("Way too long, buried the answer", "Three paragraphs for a yes/no question"),
    "off-topic": ("Answered a different question", "Drifted into unrelated advice"),
    "formatting": ("Broken markdown table", "Returned prose where JSON was expected"),
    "refusal": ("Refused a perfectly normal request", "Said it cannot help with that"),
    "outdated-policy": ("Quoted the old refund policy",),
    "wrong-order": ("Looked up the wrong order number",),
    "missed-key-point": ("Summary skipped the main decision",),
    "false-positive": ("Flagged correct code as a bug",),
    "missed-bug": ("Missed an obvious off-by-one",),
}


@dataclass(slots=True)
class DemoStats:
    """What the demo sent; deterministic for a seed, so tests can compare it with the analytics."""

    org_id: str
    traces: int = 0
    calls: int = 0
    feedback: int = 0
    # Submitted before its trace was ingested: stored at once, joined when the trace came.
    feedback_before_trace: int = 0
    # Its trace never arrives (a client lost it): counted in the summary only.
    unknown_trace_feedback: int = 0
    explicit_cost_calls: int = 0
    unpriced_calls: int = 0
    by_source: dict[str, int] = field(default_factory=dict)
    models: tuple[str, ...] = tuple(MODELS)
    prompts: dict[str, tuple[int, ...]] = field(
        default_factory=lambda: {p.prompt_id: tuple(sorted(p.versions)) for p in PROMPTS}
    )

    def describe(self) -> str:
        sources = ", ".join(f"{n} {s}" for s, n in sorted(self.by_source.items()))
        prompts = ", ".join(f"{p} v{min(v)}-v{max(v)}" for p, v in self.prompts.items())
        return "\n".join(
            (
                f"org {self.org_id}: {self.traces} traces with {self.calls} calls "
                f"({self.explicit_cost_calls} with a client-sent cost, "
                f"{self.unpriced_calls} on an unpriced model)",
                f"{self.feedback} feedback items: {sources}",
                f"  {self.feedback_before_trace} arrived before their trace, "
                f"{self.unknown_trace_feedback} on traces that never arrived",
                f"models: {', '.join(self.models)}",
                f"prompts: {prompts}",
            )
        )


@dataclass(slots=True)
class _Trace:
    """One generated trace: its call events, its votes, and whether it arrives after them."""

    events: list[TraceEvent]
    feedback: list[FeedbackCreate]
    late: bool


class _Generator:
    """Draws traces and their feedback from one seeded random stream, oldest trace first."""

    def __init__(self, seed: int, now: datetime, count: int) -> None:
        self.rng = random.Random(seed)
        self.now = now
        self.count = count
        self.end_users = [f"user-{n:04d}" for n in range(max(20, count // 8))]
        self.sessions = max(10, count // 3)

    def uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def starts(self) -> list[datetime]:
        span = DAYS * 86_400
        offsets = sorted((self.rng.random() * span for _ in range(self.count)), reverse=True)
        return [self.now - timedelta(seconds=s) for s in offsets]

    def pick(self, weights: dict[str, float]) -> str:
        return self.rng.choices(list(weights), weights=list(weights.values()))[0]

    def trace(self, started: datetime) -> _Trace:
        rng = self.rng
        prompt = rng.choices(PROMPTS, weights=[p.share for p in PROMPTS])[0]
        age_days = (self.now - started).total_seconds() / 86_400
        released = [v for v, (day, _) in prompt.versions.items() if day >= age_days]
        # Mostly the newest version live at that time; a few clients lag one version behind.
        version = max(released)
        if len(released) > 1 and rng.random() < 0.1:
            version = sorted(released)[-2]
        model = MODELS[self.pick(prompt.models)]
        trace_id = self.uid()
        end_user = rng.choice(self.end_users)
        common = {
            "trace_id": trace_id,
            "project": prompt.project,
            "agent_id": prompt.agent_id,
            "session_id": f"sess-{rng.randrange(self.sessions):05d}",
            "user_id": end_user,
            "metadata": {"prompt_id": prompt.prompt_id, "prompt_version": f"v{version}"},
        }
        # Some clients compute the cost themselves (a negotiated rate); the rest leave it out and
        # the service prices the tokens with genai-prices.
        explicit_cost = model.name != UNPRICED_MODEL and rng.random() < 0.2
        clock = started
        steps: list[tuple[_Model, str, dict[str, Any]]] = []
        if prompt.routed:
            steps.append((MODELS[ROUTER_MODEL], "classify_intent", {}))
        for _ in range(rng.randint(min(1, prompt.max_tool_calls), prompt.max_tool_calls)):
            steps.append((model, "tool_call", {"tool": rng.choice(prompt.tools)}))
        steps.append((model, "final_answer", {}))

        events: list[TraceEvent] = []
        context = rng.randint(*prompt.input_tokens)
        answer_tokens = 0
        failed = False
        for index, (step_model, step, extra) in enumerate(steps):
            final = step == "final_answer"
            if final:
                low, high = prompt.output_tokens
                output = int(rng.randint(low, high) * model.verbosity)
                answer_tokens = output
            else:
                output = rng.randint(15, 60) if step == "classify_intent" else rng.randint(40, 160)
            error = None
            if not final and rng.random() < 0.02:
                error, failed = "tool timed out after 30s", True
            latency = round(output * step_model.ms_per_token + rng.uniform(150, 700), 1)
            cost = None
            if explicit_cost:
                listed = pricing.compute_cost(step_model.name, step_model.provider, context, output)
                cost = None if listed is None else round(listed * 0.85, 8)
            events.append(
                TraceEvent.model_validate(
                    {
                        **common,
                        "call_id": f"{trace_id}-{index}",
                        "name": prompt.prompt_id,
                        "model": step_model.name,
                        "provider": step_model.provider,
                        "input_tokens": context,
                        "output_tokens": output,
                        "cost": cost,
                        "latency_ms": latency,
                        "status": "error" if error else "success",
                        "error": error,
                        "timestamp": clock,
                        "metadata": {**common["metadata"], "step": step, **extra},
                    }
                )
            )
            clock += timedelta(milliseconds=latency + rng.uniform(5, 80))
            context += output + (rng.randint(200, 900) if step == "tool_call" else 0)

        good = model.quality + prompt.versions[version][1] - (0.15 if failed else 0.0)
        good -= 0.08 if answer_tokens > prompt.length_limit else 0.0
        votes = self.feedback(trace_id, prompt, model, version, good, answer_tokens, end_user)
        tool_calls = [e for e in events if e.metadata and e.metadata.get("step") == "tool_call"]
        if tool_calls and rng.random() < 0.04:
            # A reviewer rates one tool call on its own: it counts for that call's model and cost.
            call = rng.choice(tool_calls)
            votes.append(
                self.vote(
                    trace_id,
                    FeedbackSource.HUMAN_REVIEW,
                    rng.choice(REVIEWERS),
                    1 if rng.random() < good else -1,
                    prompt,
                    model,
                    call_id=call.call_id,
                )
            )
        return _Trace(events, votes, late=rng.random() < 0.03)

    def feedback(
        self,
        trace_id: str,
        prompt: _Prompt,
        model: _Model,
        version: int,
        good: float,
        answer_tokens: int,
        end_user: str,
    ) -> list[FeedbackCreate]:
        rng = self.rng
        votes: list[FeedbackCreate] = []
        if rng.random() < 0.45:
            votes.append(
                self.vote(trace_id, FeedbackSource.USER, end_user, self.score(good), prompt, model)
            )
            if rng.random() < 0.05:  # someone else in the conversation votes too
                other = rng.choice(self.end_users)
                votes.append(
                    self.vote(trace_id, FeedbackSource.USER, other, self.score(good), prompt, model)
                )
        if rng.random() < 0.08:
            reviewer = rng.choice(REVIEWERS)
            votes.append(
                self.vote(
                    trace_id,
                    FeedbackSource.HUMAN_REVIEW,
                    reviewer,
                    self.score(good - 0.04),
                    prompt,
                    model,
                )
            )
        if answer_tokens > prompt.length_limit and rng.random() < 0.7:
            votes.append(
                self.vote(
                    trace_id,
                    FeedbackSource.AUTOMATED,
                    "length-check",
                    -1,
                    prompt,
                    model,
                    tags=["too-long"],
                    metadata={"check": "max_output_tokens", "limit": prompt.length_limit},
                )
            )
        elif prompt.prompt_id != "support-bot" and rng.random() < 0.2:
            ok = rng.random() < good + 0.08
            votes.append(
                self.vote(
                    trace_id,
                    FeedbackSource.AUTOMATED,
                    "format-check",
                    1 if ok else -1,
                    prompt,
                    model,
                    tags=None if ok else ["formatting"],
                    metadata={"check": "output_schema", "passed": ok},
                )
            )
        if rng.random() < 0.22:
            score = self.score(good + 0.03)
            votes.append(
                self.vote(
                    trace_id,
                    FeedbackSource.EVAL,
                    JUDGE,
                    score,
                    prompt,
                    model,
                    metadata={
                        "judge_model": "gpt-4.1",
                        "rubric": f"{prompt.prompt_id}-helpfulness",
                        "raw": {1: rng.choice((4, 5)), 0: 3, -1: rng.choice((1, 2))}[score],
                        "prompt_version": version,
                    },
                )
            )
        return votes

    def score(self, good: float) -> int:
        draw = self.rng.random()
        if draw < good:
            return 1
        return 0 if draw < good + (1 - good) * 0.25 else -1

    def vote(
        self,
        trace_id: str,
        source: FeedbackSource,
        user_id: str,
        score: int,
        prompt: _Prompt,
        model: _Model,
        *,
        call_id: str | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> FeedbackCreate:
        rng = self.rng
        comment = None
        if tags is None and score == -1 and (source != FeedbackSource.USER or rng.random() < 0.6):
            tags = rng.sample(model.weak_spots + prompt.own_tags, k=rng.choice((1, 1, 2)))
        talkative = source in (FeedbackSource.HUMAN_REVIEW, FeedbackSource.EVAL)
        if talkative or rng.random() < 0.3:
            if score == 1:
                comment = rng.choice(_PRAISE)
            elif score == 0:
                comment = rng.choice(_NEUTRAL)
            else:
                comment = rng.choice(_COMPLAINTS[tags[0]] if tags else _NEUTRAL)
        return FeedbackCreate(
            id=self.uid(),
            trace_id=trace_id,
            call_id=call_id,
            score=score,
            comment=comment,
            source=source,
            user_id=user_id,
            tags=tags,
            metadata=metadata,
        )


async def seed_demo(
    db: Database,
    *,
    org_id: str,
    traces: int = 2000,
    seed: int = 42,
    now: datetime | None = None,
) -> DemoStats:
    """Create ``traces`` traces and their feedback in ``org_id``; the same seed, the same data.

    Traces go in oldest first, each batch of traces followed by its feedback, as a live system
    would send them. About 3 % of traces arrive only at the end, after their feedback; a few
    feedback items name traces that never arrive.
    """
    if traces < 1:
        raise ValueError("traces must be at least 1")
    gen = _Generator(seed, now or utcnow(), traces)
    stats = DemoStats(org_id=org_id)
    sources: Counter[str] = Counter()
    late: list[TraceEvent] = []
    starts = gen.starts()
    for begin in range(0, traces, BATCH_TRACES):
        batch = [gen.trace(started) for started in starts[begin : begin + BATCH_TRACES]]
        events = [e for t in batch if not t.late for e in t.events]
        late += [e for t in batch if t.late for e in t.events]
        votes = [v for t in batch for v in t.feedback]
        if events:
            await _ingest(db, org_id, events, stats)
        if votes:
            await feedback.submit(db, org_id=org_id, items=votes)
        stats.feedback_before_trace += sum(len(t.feedback) for t in batch if t.late)
        stats.feedback += len(votes)
        sources.update(v.source.value for v in votes)
    if late:
        await _ingest(db, org_id, late, stats)

    lost = [
        gen.vote(gen.uid(), FeedbackSource.USER, gen.rng.choice(gen.end_users), -1, prompt, model)
        for prompt, model in (
            (PROMPTS[0], MODELS["gpt-4.1-mini"]),
            (PROMPTS[1], MODELS[UNPRICED_MODEL]),
        )
        for _ in range(max(1, traces // 400))
    ]
    await feedback.submit(db, org_id=org_id, items=lost)
    stats.unknown_trace_feedback = len(lost)
    stats.feedback += len(lost)
    sources.update(v.source.value for v in lost)
    stats.by_source = dict(sorted(sources.items()))
    return stats


async def _ingest(db: Database, org_id: str, events: list[TraceEvent], stats: DemoStats) -> None:
    await traces_service.ingest(db, org_id=org_id, events=events)
    stats.traces += len({e.trace_id for e in events})
    stats.calls += len(events)
    stats.explicit_cost_calls += sum(e.cost is not None for e in events)
    stats.unpriced_calls += sum(e.model == UNPRICED_MODEL for e in events)
