"""GraphQL under keys and tokens: the same authentication, scopes and isolation as REST,
checked field by field, including node(id) with another organisation's global id."""

from typing import Any

import httpx
import pytest
from strawberry.relay import to_base64

from agentcost.db import Database
from agentcost.models import Scope
from agentcost.services import auth

pytestmark = pytest.mark.anyio


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def gql(
    client: httpx.AsyncClient, key: str, query: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    r = await client.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=bearer(key)
    )
    assert r.status_code == 200, r.text
    return r.json()


SEED = """
mutation($events: [TraceEventInput!]!, $votes: [FeedbackInput!]!) {
  ingestTraces(inputs: $events) { ... on IngestResult { accepted } }
  submitFeedbackBatch(inputs: $votes) {
    ... on FeedbackBatchPayload { feedback { id feedbackId } }
  }
}
"""


async def seed(client: httpx.AsyncClient, key: str, model: str, score: int) -> list[dict[str, str]]:
    events = [
        {
            "traceId": t,
            "model": model,
            "cost": 0.01,
            "promptId": "bot",
            "promptVersion": 1,
            "callId": "c1",
        }
        for t in ("shared-1", "shared-2")
    ]
    votes = [{"traceId": t, "score": score, "tags": ["t"]} for t in ("shared-1", "shared-2")]
    data = (await gql(client, key, SEED, {"events": events, "votes": votes}))["data"]
    assert data["ingestTraces"]["accepted"] == 2
    return data["submitFeedbackBatch"]["feedback"]


async def test_graphql_fields_are_confined_to_the_callers_org(
    client: httpx.AsyncClient, db: Database
) -> None:
    a, _ = await auth.create_key(db, org_id="org-a", scope=Scope.ADMIN)
    b, _ = await auth.create_key(db, org_id="org-b", scope=Scope.ADMIN)
    await seed(client, a, "model-a", 1)
    b_votes = await seed(client, b, "model-b", -1)
    b_feedback_global, b_feedback_own = b_votes[0]["id"], b_votes[0]["feedbackId"]

    data = (
        await gql(
            client,
            a,
            """{
              traces(first: 100) { edges { node { traceId model feedback { score } score { total negative } calls { model } } } }
              trace(traceId: "shared-1") { model feedback { score trace { model } } }
              feedbacks(first: 100) { edges { node { score trace { model } } } }
              feedbackSummary { totalFeedback negative totalCost }
              qualityByModel { model totalFeedback }
              modelQuality(model: "model-b") { model }
              promptQuality(promptId: "bot") { version totalFeedback positive }
              traceScore(traceId: "shared-1") { total positive negative }
            }""",
        )
    )["data"]
    nodes = [e["node"] for e in data["traces"]["edges"]]
    assert {n["model"] for n in nodes} == {"model-a"}
    assert all(
        n["feedback"] == [{"score": 1}] and n["score"] == {"total": 1, "negative": 0} for n in nodes
    )
    assert all(n["calls"] == [{"model": "model-a"}] for n in nodes)
    assert data["trace"] == {
        "model": "model-a",
        "feedback": [{"score": 1, "trace": {"model": "model-a"}}],
    }
    assert [e["node"]["score"] for e in data["feedbacks"]["edges"]] == [1, 1]
    assert data["feedbackSummary"] == {
        "totalFeedback": 2,
        "negative": 0,
        "totalCost": pytest.approx(0.02),
    }
    assert data["qualityByModel"] == [{"model": "model-a", "totalFeedback": 2}]
    assert data["modelQuality"] is None
    assert data["promptQuality"] == [{"version": 1, "totalFeedback": 2, "positive": 2}]
    assert data["traceScore"] == {"total": 1, "positive": 1, "negative": 0}

    # B's global ids and own ids find nothing for A, and A cannot change or delete them.
    b_trace_global = to_base64("Trace", "shared-1")
    b_call_global = to_base64("Call", '["shared-1","c1"]')
    found = (
        await gql(
            client,
            a,
            """query($f: ID!, $t: ID!, $c: ID!, $own: ID!) {
              f: node(id: $f) { id } t: node(id: $t) { ... on Trace { model } }
              c: node(id: $c) { ... on Call { model } } own: feedback(id: $own) { score }
            }""",
            {
                "f": b_feedback_global,
                "t": b_trace_global,
                "c": b_call_global,
                "own": b_feedback_own,
            },
        )
    )["data"]
    assert found["f"] is None and found["own"] is None
    assert found["t"] == {"model": "model-a"}  # the same trace id in A's own org
    assert found["c"] == {"model": "model-a"}
    changed = (
        await gql(
            client,
            a,
            """mutation($id: ID!) {
              u: updateFeedback(id: $id, input: {score: 1}) { __typename ... on NotFoundError { kind } }
              d: deleteFeedback(id: $id) { __typename }
            }""",
            {"id": b_feedback_global},
        )
    )["data"]
    assert changed == {
        "u": {"__typename": "NotFoundError", "kind": "feedback"},
        "d": {"__typename": "NotFoundError"},
    }
    b_view = await gql(
        client, b, "query($id: ID!) { feedback(id: $id) { score } }", {"id": b_feedback_global}
    )
    assert b_view["data"]["feedback"] == {"score": -1}


async def test_graphql_requires_a_key_and_respects_scopes(
    client: httpx.AsyncClient, db: Database
) -> None:
    read, _ = await auth.create_key(db, org_id="acme", scope=Scope.READ)
    ingest, _ = await auth.create_key(db, org_id="acme", scope=Scope.INGEST)

    r = await client.post("/graphql", json={"query": "{ feedbackSummary { totalFeedback } }"})
    assert r.status_code == 401
    assert "requires an API key" in r.json()["detail"]
    r = await client.post(
        "/graphql",
        json={"query": "{ feedbackSummary { totalFeedback } }"},
        headers=bearer("ack_0123456789abcdef_x"),
    )
    assert r.status_code == 401
    # GraphiQL's page itself holds no data and still loads in a browser.
    assert (await client.get("/graphql", headers={"Accept": "text/html"})).status_code in (200, 503)

    submit = 'mutation { submitFeedback(input: {traceId: "t", score: 1}) { __typename } }'
    refused = await gql(client, read, submit)
    assert refused["data"] is None
    [error] = refused["errors"]
    assert error["message"] == "this key has scope 'read'; this action needs 'ingest'"
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert (await gql(client, ingest, submit))["data"]["submitFeedback"][
        "__typename"
    ] == "SubmitFeedbackPayload"
    listing = await gql(client, ingest, "{ feedbacks { edges { node { score } } } }")
    assert listing["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    deleting = await gql(client, ingest, 'mutation { deleteFeedback(id: "x") { __typename } }')
    assert (
        deleting["errors"][0]["message"] == "this key has scope 'ingest'; this action needs 'admin'"
    )
    summary = await gql(client, read, "{ feedbackSummary(source: USER) { totalFeedback } }")
    assert summary["data"]["feedbackSummary"]["totalFeedback"] == 1


async def test_feedback_token_in_graphql(client: httpx.AsyncClient, db: Database) -> None:
    ingest, _ = await auth.create_key(db, org_id="acme", scope=Scope.INGEST)
    read, _ = await auth.create_key(db, org_id="acme", scope=Scope.READ)
    made = await gql(
        client,
        ingest,
        'mutation { ingestTrace(input: {traceId: "t-1", model: "m", cost: 0.1, userId: "u-1"}) { ... on IngestResult { feedbackToken } } }',
    )
    token = made["data"]["ingestTrace"]["feedbackToken"]
    vote = "mutation($t: String!, $s: Int!) { submitFeedback(input: {traceId: $t, score: $s}) { ... on SubmitFeedbackPayload { created feedback { userId source } } } }"
    first = await gql(client, token, vote, {"t": "t-1", "s": 1})
    assert first["data"]["submitFeedback"] == {
        "created": True,
        "feedback": {"userId": "u-1", "source": "USER"},
    }
    again = await gql(client, token, vote, {"t": "t-1", "s": -1})
    assert again["data"]["submitFeedback"]["created"] is False
    other = await gql(client, token, vote, {"t": "t-2", "s": 1})
    assert other["errors"][0]["message"] == "this feedback token is for another trace"
    assert other["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    reading = await gql(client, token, "{ feedbackSummary { totalFeedback } }")
    assert reading["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    score = await gql(client, read, '{ traceScore(traceId: "t-1") { total negative } }')
    assert score["data"]["traceScore"] == {"total": 1, "negative": 1}


async def test_project_key_in_graphql(client: httpx.AsyncClient, db: Database) -> None:
    admin, _ = await auth.create_key(db, org_id="acme", scope=Scope.ADMIN)
    web, _ = await auth.create_key(db, org_id="acme", scope=Scope.READ, project="web")
    events = [
        {"traceId": "w-1", "model": "m", "cost": 0.1, "project": "web"},
        {"traceId": "b-1", "model": "m", "cost": 0.2, "project": "batch"},
    ]
    votes = [{"traceId": "w-1", "score": 1}, {"traceId": "b-1", "score": -1}]
    seeded = (await gql(client, admin, SEED, {"events": events, "votes": votes}))["data"]
    batch_vote = seeded["submitFeedbackBatch"]["feedback"][1]["id"]
    data = (
        await gql(
            client,
            web,
            """query($v: ID!, $t: ID!) {
              traces { edges { node { traceId } } }
              feedbacks { edges { node { traceId } } }
              trace(traceId: "b-1") { traceId }
              vote: node(id: $v) { id }
              other: node(id: $t) { id }
              feedbackSummary { totalFeedback totalCost }
            }""",
            {"v": batch_vote, "t": to_base64("Trace", "b-1")},
        )
    )["data"]
    assert [e["node"]["traceId"] for e in data["traces"]["edges"]] == ["w-1"]
    assert [e["node"]["traceId"] for e in data["feedbacks"]["edges"]] == ["w-1"]
    assert data["trace"] is None and data["vote"] is None and data["other"] is None
    assert data["feedbackSummary"] == {"totalFeedback": 1, "totalCost": pytest.approx(0.1)}
    hidden = await gql(client, web, '{ traceScore(traceId: "b-1") { total } }')
    assert hidden["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    named = await gql(client, web, '{ qualityByModel(project: "batch") { model } }')
    assert named["errors"][0]["message"] == "this key is restricted to project 'web'"
