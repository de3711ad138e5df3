"""Every Query field against the seeded data set (see conftest.py), on SQLite and PostgreSQL."""

from typing import Any

import httpx
import pytest
from strawberry.relay import to_base64

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("seeded")]

TRACES = """
query($first: Int, $after: String, $filter: TraceFilter, $orderBy: TraceOrder) {
  traces(first: $first, after: $after, filter: $filter, orderBy: $orderBy) {
    edges { cursor node { traceId } }
    pageInfo { hasNextPage hasPreviousPage endCursor }
  }
}
"""

FEEDBACKS = """
query($first: Int, $after: String, $filter: FeedbackFilter) {
  feedbacks(first: $first, after: $after, filter: $filter) {
    edges { cursor node { feedbackId } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


async def trace_ids(gql_data: Any, **variables: Any) -> list[str]:
    found = (await gql_data(TRACES, variables))["traces"]
    return [edge["node"]["traceId"] for edge in found["edges"]]


async def test_trace_has_its_rollups_calls_feedback_and_score(gql_data: Any) -> None:
    trace = (
        await gql_data(
            """{ trace(traceId: "t1") {
                id traceId project model cost inputTokens outputTokens latencyMs
                promptId promptVersion callCount status startedAt endedAt
                calls { callId model cost trace { traceId } }
                feedback { feedbackId score source trace { traceId } }
                score { traceId total positive negative neutral score }
            } }"""
        )
    )["trace"]
    assert trace["id"] == to_base64("Trace", "t1")
    assert trace["project"] == "alpha"
    assert trace["model"] == "gpt-4.1"  # the costliest call's model
    assert trace["cost"] == pytest.approx(0.005)
    assert (trace["inputTokens"], trace["outputTokens"]) == (140, 60)
    assert trace["latencyMs"] == 1000.0
    assert (trace["promptId"], trace["promptVersion"]) == ("support", 1)
    assert trace["callCount"] == 2
    assert trace["startedAt"] == "2025-01-01T10:00:00+00:00"
    assert trace["endedAt"] == "2025-01-01T10:01:00+00:00"
    assert [(c["callId"], c["model"]) for c in trace["calls"]] == [
        ("c1", "gpt-4.1"),
        ("c2", "gpt-4.1-mini"),
    ]
    assert {c["trace"]["traceId"] for c in trace["calls"]} == {"t1"}
    assert sorted((f["feedbackId"], f["score"], f["source"]) for f in trace["feedback"]) == [
        ("f1", 1, "USER"),
        ("f2", -1, "HUMAN_REVIEW"),
        ("f3", 1, "EVAL"),
    ]
    assert trace["score"] == {
        "traceId": "t1",
        "total": 3,
        "positive": 2,
        "negative": 1,
        "neutral": 0,
        "score": 0.333,
    }


async def test_unknown_trace_is_null(gql_data: Any) -> None:
    assert (await gql_data('{ trace(traceId: "nope") { traceId } }'))["trace"] is None


async def test_traces_newest_first_with_keyset_pages(gql_data: Any) -> None:
    first = (await gql_data(TRACES, {"first": 3}))["traces"]
    assert [e["node"]["traceId"] for e in first["edges"]] == ["t4", "t3", "t2"]
    assert first["pageInfo"]["hasNextPage"] is True
    assert first["pageInfo"]["hasPreviousPage"] is False
    assert first["pageInfo"]["endCursor"] == first["edges"][-1]["cursor"]
    rest = (await gql_data(TRACES, {"first": 3, "after": first["pageInfo"]["endCursor"]}))["traces"]
    assert [e["node"]["traceId"] for e in rest["edges"]] == ["t1"]
    assert rest["pageInfo"]["hasNextPage"] is False
    assert rest["pageInfo"]["hasPreviousPage"] is True
    # Any edge's cursor continues after that edge.
    after_t3 = await trace_ids(gql_data, first=10, after=first["edges"][1]["cursor"])
    assert after_t3 == ["t2", "t1"]


async def test_traces_by_cost_put_unknown_cost_last_and_page(gql_data: Any) -> None:
    assert await trace_ids(gql_data, orderBy="COST") == ["t3", "t1", "t2", "t4"]
    page = (await gql_data(TRACES, {"orderBy": "COST", "first": 2}))["traces"]
    assert [e["node"]["traceId"] for e in page["edges"]] == ["t3", "t1"]
    cursor = page["pageInfo"]["endCursor"]
    assert await trace_ids(gql_data, orderBy="COST", first=1, after=cursor) == ["t2"]
    last = (await gql_data(TRACES, {"orderBy": "COST", "first": 3, "after": cursor}))["traces"]
    assert [e["node"]["traceId"] for e in last["edges"]] == ["t2", "t4"]
    after_null = await trace_ids(gql_data, orderBy="COST", after=last["edges"][-1]["cursor"])
    assert after_null == []


@pytest.mark.parametrize(
    ("filter_", "expected"),
    [
        ({"project": "alpha"}, ["t2", "t1"]),
        ({"model": "gpt-4.1-mini"}, ["t2"]),
        ({"promptId": "support"}, ["t2", "t1"]),
        ({"promptId": "support", "promptVersion": 1}, ["t1"]),
        ({"minScore": 0.5}, ["t2"]),
        ({"maxScore": 0.4}, ["t4", "t1"]),
        ({"minScore": 0, "maxScore": 0.5}, ["t4", "t1"]),
        ({"hasFeedback": True}, ["t4", "t2", "t1"]),
        ({"hasFeedback": False}, ["t3"]),
        ({"since": "2025-01-02T00:00:00Z", "until": "2025-01-04T00:00:00Z"}, ["t3", "t2"]),
        ({"project": "beta", "hasFeedback": True}, ["t4"]),
    ],
)
async def test_trace_filters(gql_data: Any, filter_: dict[str, Any], expected: list[str]) -> None:
    assert await trace_ids(gql_data, filter=filter_) == expected


@pytest.mark.parametrize(
    ("variables", "field", "reason"),
    [
        ({"first": 101}, "first", "Input should be less than or equal to 100"),
        ({"first": 0}, "first", "Input should be greater than or equal to 1"),
        ({"after": "bogus"}, "cursor", "is not a cursor issued by this service for this listing"),
        ({"filter": {"minScore": 2}}, "min_score", "Input should be less than or equal to 1"),
        (
            {"filter": {"minScore": 0.5, "maxScore": 0}},
            "max_score",
            "must not be below min_score",
        ),
        (
            {"filter": {"since": "2025-01-02T00:00:00Z", "until": "2025-01-01T00:00:00Z"}},
            "until",
            "since must be earlier than until",
        ),
        ({"filter": {"project": ""}}, "project", "String should have at least 1 character"),
        (
            {"filter": {"promptVersion": 1_000_000_000}},
            "prompt_version",
            "Input should be less than 1000000000",
        ),
    ],
)
async def test_bad_trace_arguments_are_user_errors(
    gql: Any, variables: dict[str, Any], field: str, reason: str
) -> None:
    body = await gql(TRACES, variables)
    [error] = body["errors"]
    assert body["data"] is None
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["errors"] == [{"field": field, "reason": reason}]


async def test_a_time_cursor_does_not_page_the_cost_order(gql: Any, gql_data: Any) -> None:
    page = (await gql_data(TRACES, {"first": 1}))["traces"]
    body = await gql(TRACES, {"orderBy": "COST", "after": page["pageInfo"]["endCursor"]})
    assert body["errors"][0]["extensions"]["errors"][0]["field"] == "cursor"


async def test_feedback_by_own_id_and_by_global_id(gql_data: Any) -> None:
    query = "query($id: ID!) { feedback(id: $id) { id feedbackId traceId score comment source } }"
    own = (await gql_data(query, {"id": "f2"}))["feedback"]
    assert own == {
        "id": to_base64("Feedback", "f2"),
        "feedbackId": "f2",
        "traceId": "t1",
        "score": -1,
        "comment": "wrong",
        "source": "HUMAN_REVIEW",
    }
    assert (await gql_data(query, {"id": own["id"]}))["feedback"] == own
    assert (await gql_data(query, {"id": "missing"}))["feedback"] is None


async def test_feedback_on_unknown_trace_has_null_trace(gql_data: Any) -> None:
    found = (await gql_data('{ feedback(id: "f6") { traceId trace { traceId } } }'))["feedback"]
    assert found == {"traceId": "ghost", "trace": None}
    nested = (await gql_data('{ feedback(id: "f4") { trace { traceId cost } } }'))["feedback"]
    assert nested["trace"] == {"traceId": "t2", "cost": 0.0006}


async def test_feedback_by_a_trace_global_id_is_refused(gql: Any) -> None:
    body = await gql(
        "query($id: ID!) { feedback(id: $id) { id } }", {"id": to_base64("Trace", "t1")}
    )
    assert body["errors"][0]["extensions"]["errors"] == [
        {"field": "id", "reason": "is the id of a Trace, not of feedback"}
    ]


async def test_node_resolves_each_type_and_null_for_unknown(gql_data: Any) -> None:
    node_query = """query($id: ID!) { node(id: $id) {
        __typename
        ... on Trace { traceId cost }
        ... on Call { callId model trace { traceId } }
        ... on Feedback { feedbackId score }
    } }"""
    call_id = (await gql_data('{ trace(traceId: "t1") { calls { id } } }'))["trace"]["calls"][0][
        "id"
    ]
    assert (await gql_data(node_query, {"id": to_base64("Trace", "t3")}))["node"] == {
        "__typename": "Trace",
        "traceId": "t3",
        "cost": 0.02,
    }
    assert (await gql_data(node_query, {"id": call_id}))["node"] == {
        "__typename": "Call",
        "callId": "c1",
        "model": "gpt-4.1",
        "trace": {"traceId": "t1"},
    }
    assert (await gql_data(node_query, {"id": to_base64("Feedback", "f5")}))["node"] == {
        "__typename": "Feedback",
        "feedbackId": "f5",
        "score": 0,
    }
    assert (await gql_data(node_query, {"id": to_base64("Trace", "nope")}))["node"] is None


async def test_node_with_a_malformed_id_is_an_error_not_a_crash(gql: Any) -> None:
    body = await gql('{ node(id: "not-a-global-id") { id } }')
    assert body["data"] == {"node": None}
    assert "internal error" not in body["errors"][0]["message"]


async def test_feedbacks_newest_first_filtered_and_paged(gql_data: Any) -> None:
    async def ids(**variables: Any) -> list[str]:
        found = (await gql_data(FEEDBACKS, variables))["feedbacks"]["edges"]
        return [e["node"]["feedbackId"] for e in found]

    # One batch shares created_at, so the id breaks the tie.
    assert await ids() == ["f6", "f5", "f4", "f3", "f2", "f1"]
    assert await ids(filter={"traceId": "t1"}) == ["f3", "f2", "f1"]
    assert await ids(filter={"score": 1}) == ["f6", "f4", "f3", "f1"]
    assert await ids(filter={"source": "HUMAN_REVIEW"}) == ["f2"]
    assert await ids(filter={"userId": "u1"}) == ["f1"]
    assert await ids(filter={"tag": "good"}) == ["f4", "f1"]
    assert await ids(filter={"project": "beta"}) == ["f5"]
    assert await ids(filter={"model": "gpt-4.1-mini"}) == ["f4"]
    assert await ids(filter={"until": "2000-01-01T00:00:00Z"}) == []
    page = (await gql_data(FEEDBACKS, {"first": 4}))["feedbacks"]
    assert page["pageInfo"]["hasNextPage"] is True
    assert await ids(first=4, after=page["pageInfo"]["endCursor"]) == ["f2", "f1"]


async def test_feedbacks_bad_filter_has_rest_reason(gql: Any) -> None:
    body = await gql(FEEDBACKS, {"filter": {"score": 2}})
    assert body["errors"][0]["extensions"]["errors"] == [
        {"field": "score", "reason": "Input should be less than or equal to 1"}
    ]


METRICS = """totalFeedback positive negative neutral positivePct negativePct neutralPct avgScore
ratedTraces positiveTraces totalCost avgCost costPerPositive positivePctLow positivePctHigh"""


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


async def test_analytics_equal_rest_exactly(gql_data: Any, client: httpx.AsyncClient) -> None:
    found = await gql_data(
        f"""{{
        feedbackSummary {{ {METRICS} unknownTraceFeedback bySource {{ source count }} }}
        qualityByModel {{ model {METRICS} }}
        promptQuality(promptId: "support") {{ promptId version {METRICS} }}
        modelQuality(model: "gpt-4.1") {{ model {METRICS} }}
    }}"""
    )
    rest_summary = (await client.get("/api/feedback/summary")).json()
    rest_models = (await client.get("/api/feedback/quality/models")).json()
    rest_prompt = (await client.get("/api/feedback/quality/prompt/support")).json()
    rest_model = (await client.get("/api/feedback/quality/model/gpt-4.1")).json()

    def same(gql_item: dict[str, Any], rest_item: dict[str, Any]) -> None:
        for key, value in rest_item.items():
            if key != "by_source":
                assert gql_item[camel(key)] == value, key

    same(found["feedbackSummary"], rest_summary)
    assert len(found["qualityByModel"]) == len(rest_models)
    for g, r in zip(found["qualityByModel"], rest_models, strict=True):
        same(g, r)
    for g, r in zip(found["promptQuality"], rest_prompt, strict=True):
        same(g, r)
    same(found["modelQuality"], rest_model)
    # And the values themselves, from conftest's table.
    summary = found["feedbackSummary"]
    assert (summary["totalFeedback"], summary["positive"], summary["negative"]) == (6, 4, 1)
    assert summary["unknownTraceFeedback"] == 1
    assert summary["bySource"] == [
        {"source": "AUTOMATED", "count": 1},
        {"source": "EVAL", "count": 1},
        {"source": "HUMAN_REVIEW", "count": 1},
        {"source": "USER", "count": 3},
    ]
    by_model = {m["model"]: m for m in found["qualityByModel"]}
    assert by_model["gpt-4.1"]["totalFeedback"] == 3
    assert by_model["gpt-4.1"]["avgCost"] == 0.005
    assert by_model["gpt-4.1"]["costPerPositive"] == 0.005
    assert by_model["mystery-model"]["costPerPositive"] is None
    assert [(p["version"], p["totalFeedback"]) for p in found["promptQuality"]] == [(1, 3), (2, 1)]


async def test_analytics_filters(gql_data: Any) -> None:
    found = await gql_data(
        """{
        alpha: feedbackSummary(project: "alpha") { totalFeedback unknownTraceFeedback }
        users: qualityByModel(source: USER) { model totalFeedback }
        tagged: qualityByModel(tag: "fast") { model totalFeedback }
        window: qualityByModel(since: "2025-01-02T00:00:00Z") { model totalFeedback }
        u1: feedbackSummary(userId: "u1") { totalFeedback }
    }"""
    )
    assert found["alpha"] == {"totalFeedback": 4, "unknownTraceFeedback": 0}
    assert found["users"] == [
        {"model": "gpt-4.1", "totalFeedback": 1},
        {"model": "gpt-4.1-mini", "totalFeedback": 1},
    ]
    assert found["tagged"] == [{"model": "gpt-4.1-mini", "totalFeedback": 1}]
    assert found["window"] == [
        {"model": "gpt-4.1-mini", "totalFeedback": 1},
        {"model": "mystery-model", "totalFeedback": 1},
    ]
    assert found["u1"] == {"totalFeedback": 1}


async def test_model_quality_zero_null_and_prompt_not_found(gql: Any, gql_data: Any) -> None:
    found = await gql_data(
        """{
        quiet: modelQuality(model: "claude-sonnet-4") {
            model totalFeedback avgScore costPerPositive
        }
        never: modelQuality(model: "never-seen") { model }
    }"""
    )
    assert found["quiet"] == {
        "model": "claude-sonnet-4",
        "totalFeedback": 0,
        "avgScore": None,
        "costPerPositive": None,
    }
    assert found["never"] is None
    body = await gql('{ promptQuality(promptId: "nope") { version } }')
    assert body["errors"][0]["extensions"] == {"code": "NOT_FOUND", "kind": "prompt", "key": "nope"}


@pytest.mark.parametrize(
    ("window", "phrase"),
    [
        ({"since": "2025-01-02T00:00:00Z", "until": "2025-01-01T00:00:00Z"}, "earlier than"),
        ({"since": "9999-12-31T23:55:00Z"}, "before 9999-12-31"),
    ],
)
async def test_analytics_bad_window_has_rest_reason(
    gql: Any, client: httpx.AsyncClient, window: dict[str, str], phrase: str
) -> None:
    body = await gql(
        """query($since: DateTime, $until: DateTime) {
            qualityByModel(since: $since, until: $until) { model }
        }""",
        window,
    )
    rest = (await client.get("/api/feedback/quality/models", params=window)).json()["detail"]
    assert phrase in rest[0]["reason"]
    assert body["errors"][0]["extensions"]["errors"] == [
        {"field": e["field"], "reason": e["reason"]} for e in rest
    ]


async def test_trace_score(gql: Any, gql_data: Any) -> None:
    query = """query($id: String!) {
        traceScore(traceId: $id) { traceId total positive negative neutral score }
    }"""
    assert (await gql_data(query, {"id": "t2"}))["traceScore"] == {
        "traceId": "t2",
        "total": 1,
        "positive": 1,
        "negative": 0,
        "neutral": 0,
        "score": 1.0,
    }
    assert (await gql_data(query, {"id": "t3"}))["traceScore"]["score"] is None
    assert (await gql_data(query, {"id": "ghost"}))["traceScore"]["total"] == 1
    body = await gql(query, {"id": "nope"})
    assert body["data"] is None
    assert body["errors"][0]["message"] == "trace 'nope' not found"
    assert body["errors"][0]["extensions"] == {"code": "NOT_FOUND", "kind": "trace", "key": "nope"}
