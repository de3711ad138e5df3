"""The guide's Python API: ``get_feedback_service()`` on the configured database, every method.

Settings come from the environment exactly as for a user (AGENTCOST_DATABASE_URL and
AGENTCOST_DATA_DIR), with the settings cache cleared so each test sees its own database.
"""

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

import agentcost.feedback as feedback_module
from agentcost.app import create_app
from agentcost.feedback import FeedbackService, get_feedback_service
from agentcost.settings import Settings, get_settings

GUIDE_SNIPPET = """
from agentcost.feedback import get_feedback_service

svc = get_feedback_service()

# Simple thumbs up
svc.submit("trace-abc-123", score=1)

# Detailed feedback
svc.submit(
    "trace-abc-123",
    score=-1,
    comment="Response was too long and included incorrect pricing",
    source="human-review",
    user_id="reviewer-jane",
    tags=["verbose", "inaccurate"],
)
"""

AUTOMATED_SNIPPET = """
# Automated quality check
if "I don't know" in response.content:
    svc.submit(trace_id, score=-1, source="automated", tags=["refusal"])
"""

GUIDE = Path(__file__).resolve().parents[2] / "shared" / "feedback-guide.md"


def _close_services() -> None:
    for service in feedback_module._services.values():
        service.close()
    feedback_module._services.clear()


@pytest.fixture
def env(user_env: str) -> Iterator[str]:
    _close_services()
    yield user_env
    _close_services()


@pytest.fixture
def svc(env: str) -> FeedbackService:
    return get_feedback_service()


def run_snippet(code: str, **names: Any) -> dict[str, Any]:
    namespace: dict[str, Any] = dict(names)
    exec(compile(code, "<guide>", "exec"), namespace)
    return namespace


@pytest.mark.skipif(not GUIDE.exists(), reason="the guide is not next to this checkout")
def test_snippets_are_the_guides() -> None:
    guide = GUIDE.read_text()
    assert GUIDE_SNIPPET.strip() in guide
    assert AUTOMATED_SNIPPET.strip() in guide


def test_guide_snippet_verbatim(env: str) -> None:
    ns = run_snippet(GUIDE_SNIPPET)
    svc = ns["svc"]
    assert svc is get_feedback_service()  # one shared service per process and database
    up, down = svc.get_trace_feedback("trace-abc-123")
    assert (up.score, up.source.value, up.comment, up.tags) == (1, "user", None, [])
    assert down.score == -1
    assert down.comment == "Response was too long and included incorrect pricing"
    assert down.source.value == "human-review"
    assert down.user_id == "reviewer-jane"
    assert down.tags == ["verbose", "inaccurate"]
    score = svc.get_trace_score("trace-abc-123")
    assert (score.total, score.positive, score.negative, score.score) == (2, 1, 1, 0.0)
    summary = svc.get_summary()
    assert (summary.total_feedback, summary.unknown_trace_feedback) == (2, 2)


def test_automated_snippet(svc: FeedbackService) -> None:
    class Response:
        content = "I don't know the answer to that."

    run_snippet(AUTOMATED_SNIPPET, svc=svc, response=Response(), trace_id="t-refusal")
    [item] = svc.get_trace_feedback("t-refusal")
    assert (item.score, item.source.value, item.tags) == (-1, "automated", ["refusal"])


def test_guide_snippet_on_a_fresh_sqlite_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data_dir = tmp_path / "fresh-home" / ".agentcost"
    monkeypatch.delenv("AGENTCOST_DATABASE_URL", raising=False)
    monkeypatch.setenv("AGENTCOST_DATA_DIR", str(data_dir))
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    _close_services()
    try:
        ns = run_snippet(GUIDE_SNIPPET)
        assert (data_dir / "agentcost.db").exists()
        assert len(ns["svc"].list_feedback()) == 2
    finally:
        _close_services()
        get_settings.cache_clear()


def test_guide_snippet_on_a_fresh_postgres_database(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pg_database_url: str
) -> None:
    """A brand-new, empty PostgreSQL database: the first call creates the schema."""
    name = f"agentcost_fresh_{uuid.uuid4().hex[:10]}"
    admin_url = make_url(pg_database_url).set(drivername="postgresql")
    admin = admin_url.set(database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(pg_database_url).set(database=name).render_as_string(hide_password=False)
    monkeypatch.setenv("AGENTCOST_DATABASE_URL", url)
    monkeypatch.setenv("AGENTCOST_DATA_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    _close_services()
    try:
        ns = run_snippet(GUIDE_SNIPPET)
        assert [f.score for f in ns["svc"].get_trace_feedback("trace-abc-123")] == [1, -1]
    finally:
        _close_services()
        get_settings.cache_clear()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_works_inside_a_running_event_loop(svc: FeedbackService) -> None:
    async def handler() -> tuple[int, float | None]:
        asyncio.get_running_loop()  # we are inside a loop, as in Jupyter or a web handler
        service = get_feedback_service()
        service.submit("in-loop", score=1)
        service.submit("in-loop", score=0)
        score = service.get_trace_score("in-loop")
        return score.total, score.score

    assert asyncio.run(handler()) == (2, 0.5)
    # and again from a second loop, then from plain code
    assert asyncio.run(handler()) == (4, 0.5)
    assert svc.get_trace_score("in-loop").total == 4


def test_every_method(svc: FeedbackService) -> None:
    result = svc.record_calls(
        [
            {"trace_id": "t1", "call_id": "a", "model": "gpt-4.1", "cost": 0.004,
             "project": "shop", "metadata": {"prompt_id": "bot", "prompt_version": 1}},
            {"trace_id": "t1", "call_id": "b", "model": "gpt-4.1-mini", "cost": 0.001,
             "project": "shop"},
            {"trace_id": "t2", "model": "gpt-4.1-mini", "cost": 0.002, "project": "blog",
             "prompt_id": "bot", "prompt_version": 2},
        ]
    )  # fmt: skip
    assert (result.accepted, result.trace_ids) == (3, ["t1", "t2"])
    trace = svc.get_trace("t1")
    assert (trace.call_count, trace.model, trace.cost) == (2, "gpt-4.1", pytest.approx(0.005))

    first = svc.submit("t1", score=1, tags=["good"], user_id="u1", metadata={"k": 1})
    second = svc.submit("t1", -1, "wrong", "eval", "u2", ["bad"], id="mine")
    third = svc.submit("t1", score=-1, call_id="b", source="automated")
    fourth = svc.submit("t2", score=1)
    assert svc.get_feedback(first.id) == first
    assert (second.id, second.comment, second.source.value) == ("mine", "wrong", "eval")
    # Same id again replaces that vote.
    replaced = svc.submit("t1", score=0, id="mine")
    assert replaced.score == 0
    assert replaced.created_at == second.created_at
    assert len(svc.list_feedback()) == 4

    assert [f.id for f in svc.get_trace_feedback("t1")] == [first.id, "mine", third.id]
    assert {f.id for f in svc.list_feedback(project="blog")} == {fourth.id}
    assert {f.id for f in svc.list_feedback(model="gpt-4.1-mini")} == {third.id, fourth.id}
    assert {f.id for f in svc.list_feedback(source="automated")} == {third.id}
    assert {f.id for f in svc.list_feedback(score=1)} == {first.id, fourth.id}
    assert {f.id for f in svc.list_feedback(tag="good", user_id="u1")} == {first.id}
    assert {f.id for f in svc.list_feedback(trace_id="t2")} == {fourth.id}
    page, cursor = svc.list_feedback_page(limit=3)
    rest, end = svc.list_feedback_page(limit=3, cursor=cursor)
    assert (len(page), len(rest), end) == (3, 1, None)
    assert [f.id for f in page + rest] == [f.id for f in svc.list_feedback()]

    updated = svc.update_feedback(first.id, comment="changed my mind", score=-1)
    assert (updated.comment, updated.score, updated.tags) == ("changed my mind", -1, ["good"])

    score = svc.get_trace_score("t1")
    assert (score.total, score.positive, score.negative, score.neutral) == (3, 0, 2, 1)
    by_model = {q.model: q for q in svc.get_quality_by_model()}
    assert by_model["gpt-4.1"].total_feedback == 2
    assert by_model["gpt-4.1-mini"].total_feedback == 2  # the call vote and t2's vote
    assert svc.get_model_quality("gpt-4.1-mini") == by_model["gpt-4.1-mini"]
    assert svc.get_model_quality("gpt-4.1-mini", project="blog").total_feedback == 1
    versions = svc.get_quality_by_prompt_version("bot")
    assert [(v.version, v.total_feedback) for v in versions] == [(1, 3), (2, 1)]
    assert [v.version for v in svc.get_quality_by_prompt_version("bot", source="user")] == [1, 2]
    summary = svc.get_summary()
    assert (summary.total_feedback, summary.rated_traces, summary.unknown_trace_feedback) == (
        4,
        2,
        0,
    )
    assert svc.get_summary(source="automated").total_feedback == 1

    svc.delete_feedback(first.id)
    with pytest.raises(LookupError):
        svc.delete_feedback(first.id)
    with pytest.raises(LookupError):
        svc.get_feedback(first.id)
    with pytest.raises(LookupError):
        svc.get_trace("unknown")
    with pytest.raises(LookupError):
        svc.get_trace_score("unknown")
    with pytest.raises(LookupError):
        svc.get_model_quality("unknown-model")
    with pytest.raises(LookupError):
        svc.get_quality_by_prompt_version("unknown-prompt")


def test_python_and_rest_see_the_same_database(env: str) -> None:
    svc = get_feedback_service()
    svc.record_calls([{"trace_id": "shared", "model": "gpt-4.1", "cost": 0.01}])
    svc.submit("shared", score=1, tags=["x"])

    async def via_rest() -> dict[str, Any]:
        app = create_app(Settings(database_url=env, _env_file=None))  # type: ignore[call-arg]
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                await c.post("/api/feedback", json={"trace_id": "shared", "score": -1})
                return {
                    "models": (await c.get("/api/feedback/quality/models")).json(),
                    "summary": (await c.get("/api/feedback/summary")).json(),
                }

    rest = asyncio.run(via_rest())
    python = json.loads(json.dumps([q.model_dump(mode="json") for q in svc.get_quality_by_model()]))
    assert rest["models"] == python
    assert rest["summary"] == svc.get_summary().model_dump(mode="json")
    assert rest["summary"]["total_feedback"] == 2


def test_closed_service_restarts_on_use(svc: FeedbackService) -> None:
    svc.submit("t", score=1)
    svc.close()
    assert svc.get_trace_score("t").total == 1
    with FeedbackService(org_id="another-org") as other:
        assert other.list_feedback() == []
        other.submit("t", score=-1)
        assert other.get_trace_score("t").negative == 1
    assert svc.get_trace_score("t").negative == 0
