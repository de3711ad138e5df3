"""Every Mutation: stored values, idempotency, typed errors with the same field/reason as REST,
and nothing written when the input is refused."""

from typing import Any

import httpx
import pytest
from strawberry.relay import to_base64

pytestmark = pytest.mark.anyio

SUBMIT = """
mutation($input: FeedbackInput!) {
  submitFeedback(input: $input) {
    __typename
    ... on SubmitFeedbackPayload {
      created
      feedback { id feedbackId traceId callId score comment source userId tags metadata }
    }
    ... on InvalidInputError { message errors { field reason index } }
  }
}
"""

BATCH = """
mutation($inputs: [FeedbackInput!]!) {
  submitFeedbackBatch(inputs: $inputs) {
    __typename
    ... on FeedbackBatchPayload { created feedback { feedbackId score } }
    ... on InvalidInputError { errors { field reason index } }
  }
}
"""

UPDATE = """
mutation($id: ID!, $input: FeedbackUpdateInput!) {
  updateFeedback(id: $id, input: $input) {
    __typename
    ... on Feedback { feedbackId score comment source tags metadata userId }
    ... on InvalidInputError { errors { field reason } }
    ... on NotFoundError { message kind key }
  }
}
"""

DELETE = """
mutation($id: ID!) {
  deleteFeedback(id: $id) {
    __typename
    ... on DeleteFeedbackPayload { feedbackId }
    ... on InvalidInputError { errors { field reason } }
    ... on NotFoundError { message kind key }
  }
}
"""

INGEST = """
mutation($input: TraceEventInput!) {
  ingestTrace(input: $input) {
    __typename
    ... on IngestResult { accepted duplicates traceIds callIds }
    ... on InvalidInputError { errors { field reason index } }
  }
}
"""

INGEST_MANY = """
mutation($inputs: [TraceEventInput!]!) {
  ingestTraces(inputs: $inputs) {
    __typename
    ... on IngestResult { accepted duplicates traceIds callIds }
    ... on InvalidInputError { errors { field reason index } }
  }
}
"""

COUNT = "{ feedbacks(first: 100) { edges { node { feedbackId } } } }"

SOURCES = {"user": "USER", "human-review": "HUMAN_REVIEW", "automated": "AUTOMATED", "eval": "EVAL"}


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def as_input(body: dict[str, Any]) -> dict[str, Any]:
    """A REST JSON body as GraphQL variables: camelCase keys, enum names for source."""
    return {camel(k): SOURCES.get(v, v) if k == "source" else v for k, v in body.items()}


def rest_errors(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 422, response.text
    return [
        {"field": e["field"], "reason": e["reason"], "index": e.get("index")}
        for e in response.json()["detail"]
    ]


async def stored_ids(gql_data: Any) -> list[str]:
    return [e["node"]["feedbackId"] for e in (await gql_data(COUNT))["feedbacks"]["edges"]]


async def test_submit_stores_every_field(gql_data: Any) -> None:
    result = (
        await gql_data(
            SUBMIT,
            {
                "input": {
                    "traceId": "abc-123",
                    "score": -1,
                    "comment": "Hallucinated a date",
                    "tags": ["hallucination", "hallucination", "dates"],
                    "source": "HUMAN_REVIEW",
                    "userId": "jane",
                    "metadata": {"ui": "web", "n": 2},
                    "callId": "call-7",
                }
            },
        )
    )["submitFeedback"]
    assert result["__typename"] == "SubmitFeedbackPayload"
    assert result["created"] is True
    item = result["feedback"]
    assert item["traceId"] == "abc-123"
    assert item["callId"] == "call-7"
    assert (item["score"], item["comment"], item["source"]) == (
        -1,
        "Hallucinated a date",
        "HUMAN_REVIEW",
    )
    assert item["userId"] == "jane"
    assert item["tags"] == ["hallucination", "dates"]  # duplicates dropped, as in REST
    assert item["metadata"] == {"ui": "web", "n": 2}
    assert item["id"] == to_base64("Feedback", item["feedbackId"])
    assert await stored_ids(gql_data) == [item["feedbackId"]]


async def test_submit_with_a_known_id_replaces(gql_data: Any) -> None:
    first = await gql_data(SUBMIT, {"input": {"traceId": "t", "score": 1, "id": "vote-1"}})
    again = await gql_data(
        SUBMIT, {"input": {"traceId": "t", "score": -1, "id": "vote-1", "comment": "changed"}}
    )
    assert first["submitFeedback"]["created"] is True
    assert again["submitFeedback"]["created"] is False
    assert again["submitFeedback"]["feedback"]["score"] == -1
    assert again["submitFeedback"]["feedback"]["comment"] == "changed"
    assert again["submitFeedback"]["feedback"]["source"] == "USER"
    assert await stored_ids(gql_data) == ["vote-1"]


BAD_FEEDBACK = [
    {"trace_id": "t", "score": 2},
    {"trace_id": "t", "score": -5},
    {"trace_id": "", "score": 1},
    {"trace_id": "   ", "score": 1},
    {"trace_id": "x" * 201, "score": 1},
    {"trace_id": "t", "score": 1, "comment": "c" * 10_001},
    {"trace_id": "t", "score": 1, "tags": [f"tag{i}" for i in range(21)]},
    {"trace_id": "t", "score": 1, "tags": ["ok", "y" * 65]},
    {"trace_id": "t", "score": 1, "metadata": {"blob": "z" * 17_000}},
    {"trace_id": "t", "score": 1, "user_id": ""},
    {"trace_id": "t", "score": 1, "id": "i" * 201},
    {"trace_id": "bad\u0000id", "score": 1},
    {"trace_id": "", "score": 3, "comment": ""},
]


@pytest.mark.parametrize("body", BAD_FEEDBACK, ids=range(len(BAD_FEEDBACK)))
async def test_bad_feedback_gets_rest_reasons_and_writes_nothing(
    gql_data: Any, client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    expected = rest_errors(await client.post("/api/feedback", json=body))
    result = (await gql_data(SUBMIT, {"input": as_input(body)}))["submitFeedback"]
    assert result["__typename"] == "InvalidInputError"
    assert result["errors"] == expected
    assert result["message"] == "; ".join(f"{e['field']}: {e['reason']}" for e in expected)
    assert await stored_ids(gql_data) == []


async def test_wrongly_typed_score_is_refused_by_graphql_itself(gql: Any, gql_data: Any) -> None:
    for score in (True, "1", 1.5):
        body = await gql(SUBMIT, {"input": {"traceId": "t", "score": score}})
        assert body.get("data") is None
        assert "Int cannot represent" in body["errors"][0]["message"]
    body = await gql(SUBMIT, {"input": {"traceId": "t", "score": 1, "source": "robot"}})
    assert "FeedbackSource" in body["errors"][0]["message"]
    assert await stored_ids(gql_data) == []


async def test_batch_is_all_or_nothing_with_indexes(
    gql_data: Any, client: httpx.AsyncClient
) -> None:
    items = [
        {"trace_id": "t", "score": 1},
        {"trace_id": "t", "score": 3},
        {"trace_id": "", "score": 0},
    ]
    expected = rest_errors(await client.post("/api/feedback/batch", json=items))
    result = (await gql_data(BATCH, {"inputs": [as_input(i) for i in items]}))[
        "submitFeedbackBatch"
    ]
    assert result == {"__typename": "InvalidInputError", "errors": expected}
    assert [e["index"] for e in result["errors"]] == [1, 2]
    assert await stored_ids(gql_data) == []

    ok = [{"traceId": "t", "score": 1, "id": "a"}, {"traceId": "t", "score": -1, "id": "b"}]
    saved = (await gql_data(BATCH, {"inputs": ok}))["submitFeedbackBatch"]
    assert saved == {
        "__typename": "FeedbackBatchPayload",
        "created": 2,
        "feedback": [{"feedbackId": "a", "score": 1}, {"feedbackId": "b", "score": -1}],
    }
    repeated = [{"traceId": "t", "score": 1, "id": "c"}, {"traceId": "t", "score": 0, "id": "c"}]
    refused = (await gql_data(BATCH, {"inputs": repeated}))["submitFeedbackBatch"]
    assert refused["errors"] == [
        {"field": "id", "reason": "repeats the id of item 0 of this batch", "index": 1}
    ]
    assert sorted(await stored_ids(gql_data)) == ["a", "b"]


async def test_update_changes_only_what_is_given(gql_data: Any) -> None:
    await gql_data(
        SUBMIT,
        {"input": {"traceId": "t", "score": 1, "id": "u", "tags": ["x"], "userId": "ann"}},
    )
    changed = (
        await gql_data(
            UPDATE, {"id": "u", "input": {"score": -1, "comment": "on reflection", "tags": None}}
        )
    )["updateFeedback"]
    assert changed == {
        "__typename": "Feedback",
        "feedbackId": "u",
        "score": -1,
        "comment": "on reflection",
        "source": "USER",
        "tags": [],
        "metadata": {},
        "userId": "ann",
    }
    by_global_id = (
        await gql_data(UPDATE, {"id": to_base64("Feedback", "u"), "input": {"source": "EVAL"}})
    )["updateFeedback"]
    assert (by_global_id["source"], by_global_id["score"]) == ("EVAL", -1)


async def test_update_errors(gql_data: Any, client: httpx.AsyncClient) -> None:
    await gql_data(SUBMIT, {"input": {"traceId": "t", "score": 1, "id": "u"}})
    expected = rest_errors(await client.patch("/api/feedback/u", json={"score": None}))
    cleared = (await gql_data(UPDATE, {"id": "u", "input": {"score": None}}))["updateFeedback"]
    assert cleared["errors"] == [{"field": e["field"], "reason": e["reason"]} for e in expected]
    assert cleared["errors"] == [
        {"field": "score", "reason": "must be one of the integers -1, 0, 1"}
    ]
    kept = (await gql_data(UPDATE, {"id": "u", "input": {"source": None}}))["updateFeedback"]
    expected = rest_errors(await client.patch("/api/feedback/u", json={"source": None}))
    assert kept["errors"] == [{"field": e["field"], "reason": e["reason"]} for e in expected]
    assert "cannot be cleared" in kept["errors"][0]["reason"]
    bad = (await gql_data(UPDATE, {"id": "u", "input": {"score": 7}}))["updateFeedback"]
    assert bad["errors"] == [{"field": "score", "reason": "must be one of the integers -1, 0, 1"}]
    missing = (await gql_data(UPDATE, {"id": "nope", "input": {"score": 0}}))["updateFeedback"]
    assert missing == {
        "__typename": "NotFoundError",
        "message": "feedback 'nope' not found",
        "kind": "feedback",
        "key": "nope",
    }
    score = (await gql_data('{ feedback(id: "u") { score } }'))["feedback"]["score"]
    assert score == 1


async def test_delete_then_delete_again_is_not_found(gql_data: Any) -> None:
    await gql_data(SUBMIT, {"input": {"traceId": "t", "score": 1, "id": "gone"}})
    deleted = (await gql_data(DELETE, {"id": to_base64("Feedback", "gone")}))["deleteFeedback"]
    assert deleted == {"__typename": "DeleteFeedbackPayload", "feedbackId": "gone"}
    again = (await gql_data(DELETE, {"id": "gone"}))["deleteFeedback"]
    assert again["__typename"] == "NotFoundError"
    assert again["key"] == "gone"
    wrong_type = (await gql_data(DELETE, {"id": to_base64("Trace", "t")}))["deleteFeedback"]
    assert wrong_type["errors"] == [
        {"field": "id", "reason": "is the id of a Trace, not of feedback"}
    ]
    assert await stored_ids(gql_data) == []


async def test_ingest_trace_builds_a_trace(gql_data: Any) -> None:
    event = {
        "traceId": "g1",
        "callId": "g1-a",
        "project": "web",
        "model": "gpt-4.1",
        "provider": "openai",
        "inputTokens": 1000,
        "outputTokens": 200,
        "cost": 0.0034,
        "latencyMs": 1200.5,
        "timestamp": "2025-03-01T12:00:00Z",
        "metadata": {"prompt_id": "greeting", "prompt_version": "v3", "team": "a"},
    }
    result = (await gql_data(INGEST, {"input": event}))["ingestTrace"]
    assert result == {
        "__typename": "IngestResult",
        "accepted": 1,
        "duplicates": 0,
        "traceIds": ["g1"],
        "callIds": ["g1-a"],
    }
    again = (await gql_data(INGEST, {"input": event}))["ingestTrace"]
    assert (again["accepted"], again["duplicates"]) == (0, 1)
    trace = (
        await gql_data(
            """{ trace(traceId: "g1") { project model provider cost inputTokens outputTokens
                latencyMs promptId promptVersion metadata startedAt callCount } }"""
        )
    )["trace"]
    assert trace == {
        "project": "web",
        "model": "gpt-4.1",
        "provider": "openai",
        "cost": 0.0034,
        "inputTokens": 1000,
        "outputTokens": 200,
        "latencyMs": 1200.5,
        "promptId": "greeting",
        "promptVersion": 3,
        "metadata": {"prompt_id": "greeting", "prompt_version": "v3", "team": "a"},
        "startedAt": "2025-03-01T12:00:00+00:00",
        "callCount": 1,
    }


async def test_ingest_traces_batch_and_its_errors(gql_data: Any, client: httpx.AsyncClient) -> None:
    events = [
        {"trace_id": "b1", "model": "gpt-4.1", "cost": 0.002, "call_id": "x"},
        {"trace_id": "b1", "model": "gpt-4.1-mini", "input_tokens": -1},
        {"trace_id": "b2", "model": "", "cost": -0.5},
    ]
    expected = rest_errors(await client.post("/api/trace/batch", json=events))
    refused = (await gql_data(INGEST_MANY, {"inputs": [as_input(e) for e in events]}))[
        "ingestTraces"
    ]
    assert refused == {"__typename": "InvalidInputError", "errors": expected}
    assert {e["index"] for e in refused["errors"]} == {1, 2}
    assert (await gql_data('{ trace(traceId: "b1") { traceId } }'))["trace"] is None

    good = [
        {"traceId": "b1", "model": "gpt-4.1", "cost": 0.002, "callId": "x"},
        {"traceId": "b1", "model": "gpt-4.1-mini", "cost": 0.001, "callId": "y"},
        {"traceId": "b2", "model": "gpt-4.1-mini", "cost": 0.0005, "callId": "z"},
    ]
    stored = (await gql_data(INGEST_MANY, {"inputs": good}))["ingestTraces"]
    assert (stored["accepted"], stored["traceIds"]) == (3, ["b1", "b2"])
    b1 = (await gql_data('{ trace(traceId: "b1") { cost callCount model } }'))["trace"]
    assert b1 == {"cost": pytest.approx(0.003), "callCount": 2, "model": "gpt-4.1"}
