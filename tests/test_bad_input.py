"""Bad input gets a clear error and changes nothing (DESIGN.md), at every entry point.

REST answers 422 with ``{field, reason}`` for each problem and writes nothing; the Python API
raises ValueError with the same text; unknown ids answer 404; nothing ever answers 500.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import agentcost.feedback as feedback_module
from agentcost.feedback import FeedbackService, get_feedback_service
from agentcost.services import cursors
from agentcost.settings import get_settings

pytestmark = pytest.mark.anyio

SCORE = "must be one of the integers -1, 0, 1"
GOOD_FEEDBACK = {"trace_id": "t", "score": 1}
GOOD_EVENT = {"trace_id": "t", "model": "gpt-4.1", "cost": 0.01}

# (what is wrong, the body, the field named, a phrase of the reason)
BAD_FEEDBACK: list[tuple[str, dict[str, Any], str, str]] = [
    ("score true", {"trace_id": "t", "score": True}, "score", SCORE),
    ("score false", {"trace_id": "t", "score": False}, "score", SCORE),
    ("score 1.0", {"trace_id": "t", "score": 1.0}, "score", SCORE),
    ("score '1'", {"trace_id": "t", "score": "1"}, "score", SCORE),
    ("score 2", {"trace_id": "t", "score": 2}, "score", SCORE),
    ("score -2", {"trace_id": "t", "score": -2}, "score", SCORE),
    ("score null", {"trace_id": "t", "score": None}, "score", SCORE),
    ("score missing", {"trace_id": "t"}, "score", "Field required"),
    ("unknown source", {**GOOD_FEEDBACK, "source": "robot"}, "source", "'human-review'"),
    ("missing trace_id", {"score": 1}, "trace_id", "Field required"),
    ("empty trace_id", {"trace_id": "", "score": 1}, "trace_id", "at least 1 character"),
    ("blank trace_id", {"trace_id": "  \t", "score": 1}, "trace_id", "must not be blank"),
    ("trace_id 201", {"trace_id": "x" * 201, "score": 1}, "trace_id", "at most 200"),
    ("trace_id not text", {"trace_id": 7, "score": 1}, "trace_id", "valid string"),
    ("NUL trace_id", {"trace_id": "a\x00b", "score": 1}, "trace_id", "NUL"),
    ("empty comment", {**GOOD_FEEDBACK, "comment": ""}, "comment", "at least 1 character"),
    ("comment 10001", {**GOOD_FEEDBACK, "comment": "c" * 10_001}, "comment", "at most 10000"),
    ("NUL comment", {**GOOD_FEEDBACK, "comment": "ok\x00"}, "comment", "NUL"),
    ("blank user_id", {**GOOD_FEEDBACK, "user_id": " "}, "user_id", "must not be blank"),
    ("21 tags", {**GOOD_FEEDBACK, "tags": [f"t{i}" for i in range(21)]}, "tags", "at most 20"),
    ("tag 65", {**GOOD_FEEDBACK, "tags": ["ok", "g" * 65]}, "tags.1", "at most 64"),
    ("empty tag", {**GOOD_FEEDBACK, "tags": [""]}, "tags.0", "at least 1 character"),
    ("blank tag", {**GOOD_FEEDBACK, "tags": ["  "]}, "tags.0", "must not be blank"),
    ("NUL tag", {**GOOD_FEEDBACK, "tags": ["a\x00"]}, "tags.0", "NUL"),
    ("tags not a list", {**GOOD_FEEDBACK, "tags": "hallucination"}, "tags", "valid list"),
    (
        "metadata > 16 KiB",
        {**GOOD_FEEDBACK, "metadata": {"blob": "m" * (16 * 1024)}},
        "metadata",
        "16 KiB",
    ),
    ("metadata a list", {**GOOD_FEEDBACK, "metadata": [1, 2]}, "metadata", "dictionary"),
    ("NUL in metadata", {**GOOD_FEEDBACK, "metadata": {"k": "v\x00"}}, "metadata", "NUL"),
    ("NUL metadata key", {**GOOD_FEEDBACK, "metadata": {"k\x00": 1}}, "metadata", "NUL"),
    ("empty id", {**GOOD_FEEDBACK, "id": ""}, "id", "at least 1 character"),
    ("id 201", {**GOOD_FEEDBACK, "id": "i" * 201}, "id", "at most 200"),
    ("blank call_id", {**GOOD_FEEDBACK, "call_id": " "}, "call_id", "must not be blank"),
]
UNKNOWN_FIELDS = [
    ("unknown field", {**GOOD_FEEDBACK, "rating": 5}, "rating", "unknown field"),
    ("unknown field org", {**GOOD_FEEDBACK, "org_id": "other"}, "org_id", "unknown field"),
    ("created_at", {**GOOD_FEEDBACK, "created_at": "2020-01-01"}, "created_at", "unknown field"),
]

BAD_EVENTS: list[tuple[str, dict[str, Any], str, str]] = [
    ("missing trace_id", {"model": "m"}, "trace_id", "Field required"),
    ("missing model", {"trace_id": "t"}, "model", "Field required"),
    ("empty trace_id", {**GOOD_EVENT, "trace_id": ""}, "trace_id", "at least 1 character"),
    ("blank model", {**GOOD_EVENT, "model": " "}, "model", "must not be blank"),
    ("trace_id 201", {**GOOD_EVENT, "trace_id": "x" * 201}, "trace_id", "at most 200"),
    ("NUL model", {**GOOD_EVENT, "model": "gpt\x00"}, "model", "NUL"),
    ("negative input", {**GOOD_EVENT, "input_tokens": -1}, "input_tokens", "greater than"),
    ("negative output", {**GOOD_EVENT, "output_tokens": -5}, "output_tokens", "greater than"),
    ("fractional tokens", {**GOOD_EVENT, "input_tokens": 1.5}, "input_tokens", "integer"),
    ("tokens as text", {**GOOD_EVENT, "input_tokens": "12"}, "input_tokens", "integer"),
    ("tokens true", {**GOOD_EVENT, "output_tokens": True}, "output_tokens", "integer"),
    ("negative cost", {**GOOD_EVENT, "cost": -0.01}, "cost", "greater than"),
    ("cost true", {**GOOD_EVENT, "cost": True}, "cost", "number"),
    ("cost as text", {**GOOD_EVENT, "cost": "0.5"}, "cost", "number"),
    ("negative latency", {**GOOD_EVENT, "latency_ms": -3}, "latency_ms", "greater than"),
    ("bad timestamp", {**GOOD_EVENT, "timestamp": "yesterday"}, "timestamp", "datetime"),
    (
        "before 1970",
        {**GOOD_EVENT, "timestamp": "1969-12-31T23:59:59Z"},
        "timestamp",
        "before 1970",
    ),
    ("bad version", {**GOOD_EVENT, "prompt_version": "latest"}, "prompt_version", "integer"),
    ("negative version", {**GOOD_EVENT, "prompt_version": -1}, "prompt_version", "integer"),
    ("empty status", {**GOOD_EVENT, "status": ""}, "status", "at least 1 character"),
    (
        "metadata > 16 KiB",
        {**GOOD_EVENT, "metadata": {"blob": "m" * (16 * 1024)}},
        "metadata",
        "16 KiB",
    ),
    ("metadata a list", {**GOOD_EVENT, "metadata": ["x"]}, "metadata", "dictionary"),
]
# Raw bodies, for what JSON encoders refuse to write: NaN and Infinity, malformed JSON.
RAW_EVENTS = [
    ("NaN cost", b'{"trace_id": "t", "model": "m", "cost": NaN}', "cost", "finite"),
    ("Infinity cost", b'{"trace_id": "t", "model": "m", "cost": Infinity}', "cost", "finite"),
    ("NaN latency", b'{"trace_id": "t", "model": "m", "latency_ms": NaN}', "latency_ms", "finite"),
]
MALFORMED = [
    ("truncated", b'{"trace_id": "t", "score": '),
    ("trailing comma", b'{"trace_id": "t", "score": 1,}'),
    ("single quotes", b"{'trace_id': 't', 'score': 1}"),
    ("empty", b""),
    ("not an object", b'"just a string"'),
    ("a number", b"42"),
]
JSON_HEADERS = {"Content-Type": "application/json"}


def reasons(r: httpx.Response) -> list[dict[str, Any]]:
    assert r.status_code == 422, (r.status_code, r.text)
    detail = r.json()["detail"]
    assert isinstance(detail, list) and detail
    for item in detail:
        assert item["reason"], item
    return detail


def assert_names(r: httpx.Response, field: str, phrase: str) -> None:
    detail = reasons(r)
    assert any(d["field"] == field and phrase in d["reason"] for d in detail), (
        field,
        phrase,
        detail,
    )


async def assert_nothing_stored(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/feedback", params={"limit": 1000})).json() == []
    assert (await client.get("/api/traces", params={"limit": 1000})).json() == []
    assert (await client.get("/api/feedback/summary")).json()["total_feedback"] == 0


# ---------------------------------------------------------------------------------------------
# Feedback bodies


async def test_post_feedback(client: httpx.AsyncClient) -> None:
    for case, body, field, phrase in BAD_FEEDBACK + UNKNOWN_FIELDS:
        r = await client.post("/api/feedback", json=body)
        assert r.status_code == 422, case
        assert_names(r, field, phrase)
    await assert_nothing_stored(client)


async def test_feedback_batch_reports_each_bad_item_and_stores_none(
    client: httpx.AsyncClient,
) -> None:
    for case, body, field, phrase in BAD_FEEDBACK + UNKNOWN_FIELDS:
        r = await client.post("/api/feedback/batch", json=[GOOD_FEEDBACK, body, GOOD_FEEDBACK])
        detail = reasons(r)
        assert all(d["index"] == 1 for d in detail), (case, detail)
        assert any(d["field"] == field and phrase in d["reason"] for d in detail), (case, detail)
    r = await client.post(
        "/api/feedback/batch",
        json={"items": [BAD_FEEDBACK[0][1], GOOD_FEEDBACK, BAD_FEEDBACK[9][1]]},
    )
    assert sorted((d["index"], d["field"]) for d in reasons(r)) == [(0, "score"), (2, "trace_id")]
    r = await client.post(
        "/api/feedback/batch",
        json=[{**GOOD_FEEDBACK, "id": "same"}, {**GOOD_FEEDBACK, "id": "same"}],
    )
    assert [(d["index"], d["field"]) for d in reasons(r)] == [(1, "id")]
    for body in ([], {"items": []}, {"items": "x"}, {"feedback": [GOOD_FEEDBACK]}, "x", 3):
        r = await client.post("/api/feedback/batch", json=body)
        assert reasons(r)[0]["field"] in ("body", "items"), body
    await assert_nothing_stored(client)


async def test_patch_feedback_changes_nothing_on_bad_input(client: httpx.AsyncClient) -> None:
    saved = (await client.post("/api/feedback", json={**GOOD_FEEDBACK, "tags": ["x"]})).json()
    url = f"/api/feedback/{saved['id']}"
    cases = [
        ({"score": True}, "score", SCORE),
        ({"score": "1"}, "score", SCORE),
        ({"score": 5}, "score", SCORE),
        ({"score": None}, "score", SCORE),
        ({"source": "robot"}, "source", "'eval'"),
        ({"source": None}, "source", "cleared"),
        ({"comment": "c" * 10_001}, "comment", "at most 10000"),
        ({"tags": ["t"] * 21}, "tags", "at most 20"),
        ({"metadata": {"k": "v" * 17_000}}, "metadata", "16 KiB"),
        ({"trace_id": "moved"}, "trace_id", "unknown field"),
        ({"id": "new-id"}, "id", "unknown field"),
    ]
    for body, field, phrase in cases:
        assert_names(await client.patch(url, json=body), field, phrase)
    for _, raw in MALFORMED:
        r = await client.patch(url, content=raw, headers=JSON_HEADERS)
        assert reasons(r)[0]["field"] == "body", raw
    assert (await client.get(url)).json() == saved
    # The unknown-id check does not hide a bad body, and vice versa nothing is created.
    assert (await client.patch("/api/feedback/nope", json={"score": 1})).status_code == 404
    assert (await client.get("/api/feedback/nope")).status_code == 404


@pytest.mark.parametrize(
    "path", ["/api/feedback", "/api/feedback/batch", "/api/trace", "/api/trace/batch"]
)
async def test_malformed_json(client: httpx.AsyncClient, path: str) -> None:
    for case, raw in MALFORMED:
        r = await client.post(path, content=raw, headers=JSON_HEADERS)
        detail = reasons(r)
        assert detail[0]["field"] in ("body", "events", "items"), (case, detail)
        if case in ("truncated", "trailing comma", "single quotes"):
            assert "not valid JSON" in detail[0]["reason"], (case, detail)
    await assert_nothing_stored(client)


# ---------------------------------------------------------------------------------------------
# Trace events


async def test_post_trace(client: httpx.AsyncClient) -> None:
    for case, body, field, phrase in BAD_EVENTS:
        r = await client.post("/api/trace", json=body)
        assert r.status_code == 422, case
        assert_names(r, field, phrase)
    for case, raw, field, phrase in RAW_EVENTS:
        r = await client.post("/api/trace", content=raw, headers=JSON_HEADERS)
        assert r.status_code == 422, case
        assert_names(r, field, phrase)
    await assert_nothing_stored(client)


async def test_extra_fields_that_break_the_metadata_limits_are_refused(
    client: httpx.AsyncClient,
) -> None:
    # Extra fields join the metadata, so the metadata rules hold for them too.
    for body, phrase in (
        ({**GOOD_EVENT, "huge_extra": "x" * (16 * 1024)}, "16 KiB"),
        ({**GOOD_EVENT, "odd\x00key": 1}, "NUL"),
        ({**GOOD_EVENT, "metadata": {"prompt_id": 42}}, "prompt_id"),
    ):
        detail = reasons(await client.post("/api/trace", json=body))
        assert any(phrase in d["reason"] for d in detail), detail
        assert all(d["field"] in ("body", "metadata") for d in detail), detail
        assert any("metadata" in d["field"] + d["reason"] for d in detail), detail
    await assert_nothing_stored(client)


async def test_trace_batch_reports_index_and_reason_and_stores_none(
    client: httpx.AsyncClient,
) -> None:
    batch = [
        {**GOOD_EVENT, "trace_id": "ok-1"},
        {**GOOD_EVENT, "input_tokens": -1},
        {**GOOD_EVENT, "trace_id": "ok-2"},
        {"model": "m", "cost": -2},
        {**GOOD_EVENT, "extra_is_fine": True},
    ]
    for body in (batch, {"events": batch}):
        detail = reasons(await client.post("/api/trace/batch", json=body))
        got = sorted((d["index"], d["field"]) for d in detail)
        assert got == [(1, "input_tokens"), (3, "cost"), (3, "trace_id")], detail
        assert all(d["msg"].startswith(f"[{d['index']}].") for d in detail)
    for body in ([], {"events": []}, {"events": {}}, {"calls": [GOOD_EVENT]}, "x"):
        r = await client.post("/api/trace/batch", json=body)
        assert reasons(r)[0]["field"] in ("body", "events"), body
    await assert_nothing_stored(client)


async def test_unknown_and_sdk_fields_are_kept_not_refused(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/api/trace", json={**GOOD_EVENT, "goal_id": "g", "framework": "crewai", "retries": 2}
    )
    assert r.status_code == 201
    meta = (await client.get("/api/traces/t")).json()["metadata"]
    assert meta == {"goal_id": "g", "framework": "crewai", "retries": 2}


# ---------------------------------------------------------------------------------------------
# Query strings and paths


# Cursors whose time, moved to UTC, falls outside the calendar: a 500 from the driver before.
OUT_OF_CALENDAR = cursors.encode("feedback", "9999-12-31T23:00:00-05:00", "f")
BEFORE_CALENDAR = cursors.encode("trace", "0001-01-01T00:00:00+05:00", "t")
QUERY_CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("/api/feedback", {"score": 2}, "score", "less than or equal to 1"),
    ("/api/feedback", {"score": "abc"}, "score", "integer"),
    ("/api/feedback", {"source": "robot"}, "source", "'eval'"),
    ("/api/feedback", {"limit": 0}, "limit", "greater than"),
    ("/api/feedback", {"limit": 1001}, "limit", "less than"),
    ("/api/feedback", {"cursor": "not-a-cursor"}, "cursor", "not a cursor"),
    ("/api/feedback", {"cursor": OUT_OF_CALENDAR}, "cursor", "not a cursor"),
    ("/api/feedback", {"since": "last week"}, "since", "datetime"),
    ("/api/feedback", {"tag": "t" * 65}, "tag", "at most 64"),
    ("/api/feedback", {"trace_id": ""}, "trace_id", "at least 1 character"),
    ("/api/feedback", {"trace_id": "x" * 201}, "trace_id", "at most 200"),
    ("/api/feedback", {"page": 2}, "page", "unknown field"),
    ("/api/traces", {"limit": 0}, "limit", "greater than"),
    ("/api/traces", {"cursor": "%%%"}, "cursor", "not a cursor"),
    ("/api/traces", {"cursor": BEFORE_CALENDAR}, "cursor", "not a cursor"),
    ("/api/traces", {"prompt_version": -1}, "prompt_version", "greater than"),
    # Past what ingestion takes; beyond the columns' integers it was a 500 on both databases.
    ("/api/traces", {"prompt_version": 10**9}, "prompt_version", "less than 1000000000"),
    ("/api/traces", {"prompt_version": 10**20}, "prompt_version", "less than 1000000000"),
    ("/api/traces", {"score": 1}, "score", "unknown field"),
    ("/api/feedback/summary", {"model": "gpt-4.1"}, "model", "unknown field"),
    ("/api/feedback/summary", {"source": "robot"}, "source", "'eval'"),
    ("/api/feedback/summary", {"until": "soon"}, "until", "datetime"),
    ("/api/feedback/quality/models", {"source": "nobody"}, "source", "'user'"),
    ("/api/feedback/quality/models", {"limit": 5}, "limit", "unknown field"),
    ("/api/feedback/quality/model/gpt-4.1", {"project": ""}, "project", "at least 1"),
    ("/api/feedback/quality/model/gpt-4.1", {"bogus": 1}, "bogus", "unknown field"),
    ("/api/feedback/quality/prompt/bot", {"version": 1}, "version", "unknown field"),
    ("/api/feedback/quality/prompt/bot", {"since": "x"}, "since", "datetime"),
    ("/api/feedback/summary", {"since": "9999-12-31T23:55:00Z"}, "since", "before 9999-12-31"),
    ("/api/feedback", {"until": "9999-12-31T00:00:00Z"}, "until", "before 9999-12-31"),
]
WINDOW_ROUTES = [
    "/api/feedback",
    "/api/traces",
    "/api/feedback/summary",
    "/api/feedback/quality/models",
    "/api/feedback/quality/model/gpt-4.1",
    "/api/feedback/quality/prompt/bot",
]


async def test_bad_query_strings(client: httpx.AsyncClient) -> None:
    await client.post("/api/trace", json={**GOOD_EVENT, "prompt_id": "bot"})
    for path, params, field, phrase in QUERY_CASES:
        assert_names(await client.get(path, params=params), field, phrase)
    for path in WINDOW_ROUTES:
        for since, until in (
            ("2025-02-01T00:00:00Z", "2025-01-01T00:00:00Z"),
            ("2025-01-01T00:00:00Z", "2025-01-01T00:00:00Z"),
        ):
            detail = reasons(await client.get(path, params={"since": since, "until": until}))
            assert detail[0]["field"] in ("since", "until"), (path, detail)
            assert "since must be earlier than until" in detail[0]["reason"]


async def test_cursor_of_another_listing_is_refused(client: httpx.AsyncClient) -> None:
    await client.post(
        "/api/trace/batch", json=[{**GOOD_EVENT, "trace_id": f"t{i}"} for i in range(3)]
    )
    await client.post("/api/feedback/batch", json=[GOOD_FEEDBACK] * 3)
    trace_cursor = (await client.get("/api/traces", params={"limit": 1})).headers["X-Next-Cursor"]
    fb_cursor = (await client.get("/api/feedback", params={"limit": 1})).headers["X-Next-Cursor"]
    assert_names(
        await client.get("/api/feedback", params={"cursor": trace_cursor}), "cursor", "not a"
    )
    assert_names(await client.get("/api/traces", params={"cursor": fb_cursor}), "cursor", "not a")
    # A damaged cursor as well.
    assert_names(
        await client.get("/api/feedback", params={"cursor": fb_cursor[:-3]}), "cursor", "not a"
    )


async def test_over_long_path_ids(client: httpx.AsyncClient) -> None:
    long = "x" * 201
    for path in (
        f"/api/traces/{long}",
        f"/api/feedback/{long}",
        f"/api/feedback/trace/{long}",
        f"/api/feedback/trace/{long}/score",
        f"/api/feedback/quality/model/{long}",
        f"/api/feedback/quality/prompt/{long}",
    ):
        detail = reasons(await client.get(path))
        assert "at most 200" in detail[0]["reason"], path
    assert reasons(await client.delete(f"/api/feedback/{long}"))[0]["field"] == "feedback_id"


async def test_unknown_ids_are_404(client: httpx.AsyncClient) -> None:
    for method, path in (
        ("GET", "/api/traces/nope"),
        ("GET", "/api/feedback/nope"),
        ("PATCH", "/api/feedback/nope"),
        ("DELETE", "/api/feedback/nope"),
        ("GET", "/api/feedback/trace/nope"),
        ("GET", "/api/feedback/trace/nope/score"),
        ("GET", "/api/feedback/quality/model/nope"),
        ("GET", "/api/feedback/quality/model/vendor/nope"),
        ("GET", "/api/feedback/quality/prompt/nope"),
    ):
        r = await client.request(method, path, json={"score": 1} if method == "PATCH" else None)
        assert r.status_code == 404, (method, path, r.text)
        assert "not found" in r.json()["detail"]


# ---------------------------------------------------------------------------------------------
# The Python API raises ValueError with the same text


@pytest.fixture
def svc(monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path) -> Iterator[Any]:
    monkeypatch.setenv("AGENTCOST_DATABASE_URL", database_url)
    monkeypatch.setenv("AGENTCOST_DATA_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    service = get_feedback_service()
    yield service
    for each in feedback_module._services.values():
        each.close()
    feedback_module._services.clear()
    get_settings.cache_clear()


def python_submit(svc: FeedbackService, body: dict[str, Any]) -> None:
    body = dict(body)
    svc.submit(body.pop("trace_id", None), **body)  # type: ignore[arg-type]


async def test_python_api_raises_value_error_with_the_rest_reason(
    svc: FeedbackService, client: httpx.AsyncClient
) -> None:
    for case, body, _, _ in BAD_FEEDBACK:
        if case == "score missing":
            continue  # a required argument in Python: a TypeError, not a value problem
        rest = reasons(await client.post("/api/feedback", json=body))
        if case == "missing trace_id":
            body = {**body, "trace_id": None}
            rest = [{"msg": "trace_id: Input should be a valid string"}]
        with pytest.raises(ValueError) as info:
            python_submit(svc, body)
        assert str(info.value) == "; ".join(d["msg"] for d in rest), case
    for case, body, field, phrase in BAD_EVENTS:
        rest = reasons(await client.post("/api/trace/batch", json=[GOOD_EVENT, body]))
        with pytest.raises(ValueError) as info:
            svc.record_calls([GOOD_EVENT, body])
        assert str(info.value) == "; ".join(d["msg"] for d in rest), case
        assert f"[1].{field}: " in str(info.value)
        assert phrase in str(info.value)
    with pytest.raises(ValueError, match="since must be earlier than until"):
        svc.get_summary(since="2025-02-01T00:00:00Z", until="2025-01-01T00:00:00Z")
    with pytest.raises(ValueError, match="source"):
        svc.get_quality_by_model(source="robot")
    with pytest.raises(ValueError, match="unknown field"):
        svc.get_summary(model="gpt-4.1")
    with pytest.raises(ValueError, match="cursor"):
        svc.list_feedback(cursor="garbage")
    with pytest.raises(ValueError, match="limit"):
        svc.list_feedback(limit=0)
    with pytest.raises(ValueError, match="score"):
        svc.list_feedback(score=3)
    saved = svc.submit("t", score=1)
    with pytest.raises(ValueError, match="score: " + SCORE):
        svc.update_feedback(saved.id, score=True)
    with pytest.raises(ValueError, match="unknown field"):
        svc.update_feedback(saved.id, trace_id="elsewhere")
    assert svc.get_feedback(saved.id) == saved
    assert len(svc.list_feedback()) == 1
    assert (await client.get("/api/traces")).json() == []
