"""Every curl example of the feedback guide, sent verbatim, answered with the guide's JSON.

The commands are copied from ``../shared/feedback-guide.md`` (the contract) and run through a tiny
curl interpreter against the app, so method, path, headers and body are exactly the guide's. When
the guide sits next to the checkout, a test also checks that the copies still match it.
"""

import json
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

pytestmark = pytest.mark.anyio

GUIDE = Path(__file__).resolve().parents[2] / "shared" / "feedback-guide.md"

THUMBS_UP = """curl -X POST http://localhost:8100/api/feedback \\
  -H "Content-Type: application/json" \\
  -d '{"trace_id": "abc-123", "score": 1, "comment": "Accurate and helpful"}'"""

THUMBS_DOWN = """curl -X POST http://localhost:8100/api/feedback \\
  -H "Content-Type: application/json" \\
  -d '{"trace_id": "abc-123", "score": -1, "comment": "Hallucinated a date", "tags": ["hallucination"]}'"""

QUALITY_BY_MODEL = "curl http://localhost:8100/api/feedback/quality/models"
QUALITY_BY_PROMPT = "curl http://localhost:8100/api/feedback/quality/prompt/support-bot"
TRACE_SCORE = "curl http://localhost:8100/api/feedback/trace/abc-123/score"

QUALITY_BY_MODEL_JSON = """[
  {
    "model": "gpt-4.1",
    "total_feedback": 240,
    "positive_pct": 92.1,
    "negative_pct": 4.2,
    "avg_score": 0.879,
    "avg_cost": 0.0034,
    "cost_per_positive": 0.00369
  },
  {
    "model": "gpt-4.1-mini",
    "total_feedback": 180,
    "positive_pct": 78.3,
    "negative_pct": 12.2,
    "avg_score": 0.661,
    "avg_cost": 0.0006,
    "cost_per_positive": 0.000766
  }
]"""

QUALITY_BY_PROMPT_JSON = """[
  {"version": 1, "total_feedback": 50, "positive_pct": 82.0, "avg_score": 0.64},
  {"version": 2, "total_feedback": 120, "positive_pct": 91.7, "avg_score": 0.833},
  {"version": 3, "total_feedback": 30, "positive_pct": 96.7, "avg_score": 0.933}
]"""

TRACE_SCORE_JSON = """{
  "trace_id": "abc-123",
  "total": 5,
  "positive": 4,
  "negative": 1,
  "neutral": 0,
  "score": 0.6
}"""

ALL_COMMANDS = [THUMBS_UP, THUMBS_DOWN, QUALITY_BY_MODEL, QUALITY_BY_PROMPT, TRACE_SCORE]
ALL_JSON = [QUALITY_BY_MODEL_JSON, QUALITY_BY_PROMPT_JSON, TRACE_SCORE_JSON]


async def curl(client: httpx.AsyncClient, command: str) -> httpx.Response:
    """Run a curl command line (-X, -H, -d and a URL) against the app under test."""
    args = shlex.split(command.replace("\\\n", " "))
    assert args[0] == "curl"
    method, headers, data, url = None, {}, None, None
    rest = iter(args[1:])
    for arg in rest:
        if arg == "-X":
            method = next(rest)
        elif arg == "-H":
            name, _, value = next(rest).partition(":")
            headers[name.strip()] = value.strip()
        elif arg == "-d":
            data = next(rest)
        else:
            assert url is None, f"unexpected curl argument {arg!r}"
            url = arg
    assert url is not None
    parts = urlsplit(url)
    assert (parts.hostname, parts.port) == ("localhost", 8100)  # the guide's default port
    method = method or ("POST" if data is not None else "GET")
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return await client.request(
        method, path, headers=headers, content=None if data is None else data.encode()
    )


def assert_matches_guide(got: Any, published: Any) -> None:
    """Every field of the guide's JSON is present, with the same type and the same value."""
    if isinstance(published, list):
        assert isinstance(got, list)
        assert len(got) == len(published)
        for g, p in zip(got, published, strict=True):
            assert_matches_guide(g, p)
    elif isinstance(published, dict):
        assert isinstance(got, dict)
        for key, value in published.items():
            assert key in got, f"missing field {key!r}"
            assert type(got[key]) is type(value), (key, got[key], value)
            assert got[key] == value, (key, got[key], value)
    else:
        assert type(got) is type(published) and got == published


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("\\\n", " ")).strip()


@pytest.mark.skipif(not GUIDE.exists(), reason="the guide is not next to this checkout")
def test_the_examples_here_are_the_guides() -> None:
    guide = normalise(GUIDE.read_text())
    for text in ALL_COMMANDS + ALL_JSON:
        assert normalise(text) in guide, text


async def test_submit_examples(client: httpx.AsyncClient) -> None:
    r = await curl(client, THUMBS_UP)
    assert r.status_code == 201
    up = r.json()
    assert (up["trace_id"], up["score"], up["comment"]) == ("abc-123", 1, "Accurate and helpful")
    assert up["source"] == "user"
    r = await curl(client, THUMBS_DOWN)
    assert r.status_code == 201
    down = r.json()
    assert (down["score"], down["comment"], down["tags"]) == (
        -1,
        "Hallucinated a date",
        ["hallucination"],
    )
    assert up["id"] != down["id"]  # no client id: two votes
    stored = (await client.get("/api/feedback/trace/abc-123")).json()
    assert [f["id"] for f in stored] == [up["id"], down["id"]]


async def test_trace_score_example(client: httpx.AsyncClient) -> None:
    published = json.loads(TRACE_SCORE_JSON)
    for _ in range(published["positive"]):
        assert (await curl(client, THUMBS_UP)).status_code == 201
    for _ in range(published["negative"]):
        assert (await curl(client, THUMBS_DOWN)).status_code == 201
    r = await curl(client, TRACE_SCORE)
    assert r.status_code == 200
    assert r.json() == published


def one_vote_per_trace(
    total: int, positive_pct: float, negative: int
) -> tuple[list[int], int, int]:
    positive = round(total * positive_pct / 100)
    neutral = total - positive - negative
    return [1] * positive + [-1] * negative + [0] * neutral, positive, negative


async def test_quality_by_model_example(client: httpx.AsyncClient) -> None:
    published = json.loads(QUALITY_BY_MODEL_JSON)
    events, votes = [], []
    for group in published:
        negative = round(group["total_feedback"] * group["negative_pct"] / 100)
        scores, _, _ = one_vote_per_trace(group["total_feedback"], group["positive_pct"], negative)
        for i, score in enumerate(scores):
            trace_id = f"{group['model']}-{i}"
            events.append(
                {"trace_id": trace_id, "model": group["model"], "cost": group["avg_cost"]}
            )
            votes.append({"trace_id": trace_id, "score": score})
    assert (await client.post("/api/trace/batch", json=events)).status_code == 201
    assert (await client.post("/api/feedback/batch", json=votes)).status_code == 201

    r = await curl(client, QUALITY_BY_MODEL)
    assert r.status_code == 200
    got = r.json()
    assert_matches_guide(got, published)
    # DESIGN.md's extra fields ride along, never renaming the guide's.
    for row, group in zip(got, published, strict=True):
        assert row["rated_traces"] == group["total_feedback"]
        assert row["positive"] + row["negative"] + row["neutral"] == group["total_feedback"]
        assert row["positive_pct_low"] < group["positive_pct"] < row["positive_pct_high"]
    # The same figures for one model at a time.
    for group in published:
        r = await client.get(f"/api/feedback/quality/model/{group['model']}")
        assert r.status_code == 200
        assert_matches_guide(r.json(), group)


async def test_quality_by_prompt_version_example(client: httpx.AsyncClient) -> None:
    published = json.loads(QUALITY_BY_PROMPT_JSON)
    events, votes = [], []
    for group in published:
        total = group["total_feedback"]
        positive = round(total * group["positive_pct"] / 100)
        negative = positive - round(group["avg_score"] * total)
        scores, _, _ = one_vote_per_trace(total, group["positive_pct"], negative)
        for i, score in enumerate(scores):
            trace_id = f"v{group['version']}-{i}"
            events.append(
                {
                    "trace_id": trace_id,
                    "model": "gpt-4.1-mini",
                    "cost": 0.001,
                    # AgentCost's SDK puts the prompt inside metadata.
                    "metadata": {"prompt_id": "support-bot", "prompt_version": group["version"]},
                }
            )
            votes.append({"trace_id": trace_id, "score": score})
    # Another prompt's traces do not leak into support-bot's versions.
    events.append({"trace_id": "other", "model": "m", "prompt_id": "faq", "prompt_version": 1})
    votes.append({"trace_id": "other", "score": -1})
    assert (await client.post("/api/trace/batch", json=events)).status_code == 201
    assert (await client.post("/api/feedback/batch", json=votes)).status_code == 201

    r = await curl(client, QUALITY_BY_PROMPT)
    assert r.status_code == 200
    assert_matches_guide(r.json(), published)
