"""The router's direct path for plain operations answers exactly as Strawberry's view does.

Plain requests are sent twice, once down each path, and both answers must match in status,
headers and body. Which path ran is observed, not assumed: plain operations must take the
direct one; everything else must be declined to Strawberry and get Strawberry's status.
"""

import json
import logging
import uuid
from typing import Any

import httpx
import pytest
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from agentcost.db import Database
from agentcost.graphql_api import errors, fragment_limits, router
from agentcost.graphql_api.router import AgentCostGraphQL
from agentcost.graphql_api.schema import EXTENSIONS, CheckedDocuments, checked_document, schema
from agentcost.models import Scope
from agentcost.services import auth, quality

pytestmark = pytest.mark.anyio

ORG = "default"  # the seeded data set's organisation, the one open access serves

JSON = {"Content-Type": "application/json"}

PAGE = """{ traces(first: 3, filter: {project: "alpha"}) {
  edges { cursor node { traceId cost model calls { callId cost } feedback { score source tags }
                        score { total positive score } } }
  pageInfo { hasNextPage endCursor } } }"""

TWO_OPERATIONS = """
query Cheap { trace(traceId: "t2") { traceId cost } }
query Score { traceScore(traceId: "t1") { total score } }
"""

PLAIN: dict[str, dict[str, Any]] = {
    "small query": {"query": '{ trace(traceId: "t1") { traceId cost model } }'},
    "nested page": {"query": PAGE},
    "variables": {
        "query": "query($id: String!) { trace(traceId: $id) { traceId callCount } }",
        "variables": {"id": "t1"},
    },
    "chosen operation": {"query": TWO_OPERATIONS, "operationName": "Score"},
    "resolver error": {"query": '{ traceScore(traceId: "nope") { total } }'},
    "variable of the wrong type": {
        "query": "query($id: String!) { trace(traceId: $id) { traceId } }",
        "variables": {"id": 5},
    },
    "variable missing": {"query": "query($id: String!) { trace(traceId: $id) { traceId } }"},
    "refused input": {
        "query": 'mutation { submitFeedback(input: {traceId: "t2", score: 7}) { __typename '
        "... on InvalidInputError { message errors { field reason } } } }"
    },
    "syntax error": {"query": "{ trace("},
    "validation error": {"query": "{ noSuchField }"},
    "subscription": {"query": "subscription { feedbackSummary { totalFeedback } }"},
    "null variables and name": {
        "query": '{ trace(traceId: "t3") { traceId } }',
        "variables": None,
        "operationName": None,
    },
}

SUMMARY = b'"query": "{ feedbackSummary { totalFeedback } }"'
FORM = {"Content-Type": "application/x-www-form-urlencoded"}

# Requests the direct path leaves to Strawberry, with the status Strawberry answers them with.
DECLINED: dict[str, tuple[bytes, dict[str, str], int]] = {
    "unknown operation name": (
        json.dumps({"query": TWO_OPERATIONS, "operationName": "Nope"}).encode(), JSON, 400
    ),
    "no operation name among two": (json.dumps({"query": TWO_OPERATIONS}).encode(), JSON, 400),
    "extensions": (b"{" + SUMMARY + b', "extensions": {}}', JSON, 200),
    "UTF-16": (
        ("{" + SUMMARY.decode() + "}").encode("utf-16"),
        {"Content-Type": "application/json; charset=utf-16"},
        200,
    ),
    "UTF-8 with a byte-order mark": (b"\xef\xbb\xbf{" + SUMMARY + b"}", JSON, 200),
    "a lone surrogate": (b"{" + SUMMARY + b', "variables": {"x": "\\ud800"}}', JSON, 400),
    "a lone surrogate in the name": (b"{" + SUMMARY + b', "operationName": "\\ud800"}', JSON, 400),
    "variables nested 250 deep": (
        b"{" + SUMMARY + b', "variables": {"x": ' + b"[" * 250 + b"]" * 250 + b"}}", JSON, 200
    ),
    "batch": (b"[{" + SUMMARY + b"}]", JSON, 400),
    "empty query": (b'{"query": ""}', JSON, 400),
    "null query": (b'{"query": null}', JSON, 400),
    "query not a string": (b'{"query": 5}', JSON, 400),
    "variables not an object": (b"{" + SUMMARY + b', "variables": [1]}', JSON, 400),
    "operation name not a string": (b"{" + SUMMARY + b', "operationName": 1}', JSON, 400),
    "invalid JSON": (b'{"query": ', JSON, 400),
    "not text": (b'{"query": "\xff"}', JSON, 400),
    "form body": (b"query=%7B%20feedbackSummary%20%7B%20totalFeedback%20%7D%20%7D", FORM, 400),
}  # fmt: skip


@pytest.fixture
def direct_runs(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The bodies of the requests the direct path answered."""
    runs: list[bytes] = []
    original = AgentCostGraphQL._run_plain

    async def counted(self: AgentCostGraphQL, request: Any, context: Any, plain: Any) -> Any:
        runs.append(await request.body())
        return await original(self, request, context, plain)

    monkeypatch.setattr(AgentCostGraphQL, "_run_plain", counted)
    return runs


async def decline(self: AgentCostGraphQL, request: Any) -> None:
    """In place of ``_plain_operation``: every request goes through Strawberry's view."""
    return None


async def answer(client: httpx.AsyncClient, body: bytes, headers: dict[str, str]) -> tuple:
    """Status, every header, and the body (parsed when JSON)."""
    r = await client.post("/graphql", content=body, headers=headers)
    json_body = r.headers.get("content-type") == "application/json"
    return r.status_code, dict(r.headers), r.json() if json_body else r.text


async def both_paths(
    client: httpx.AsyncClient, body: bytes, headers: dict[str, str], monkeypatch: Any
) -> tuple[tuple, tuple]:
    direct = await answer(client, body, headers)
    with monkeypatch.context() as patch:
        patch.setattr(AgentCostGraphQL, "_plain_operation", decline)
        via_strawberry = await answer(client, body, headers)
    return direct, via_strawberry


@pytest.mark.parametrize("case", PLAIN)
async def test_plain_operations_run_directly_with_strawberrys_answer(
    case: str,
    client: httpx.AsyncClient,
    seeded: Database,
    direct_runs: list[bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    body = json.dumps(PLAIN[case]).encode()
    direct, via_strawberry = await both_paths(client, body, JSON, monkeypatch)
    assert direct_runs == [body]
    assert direct == via_strawberry
    status, headers, data = direct
    assert (status, headers["content-type"]) == (200, "application/json")
    assert set(data) <= {"data", "errors"}


async def test_plain_answers_hold_the_data(
    client: httpx.AsyncClient, seeded: Database, direct_runs: list[bytes]
) -> None:
    """The twin comparison above would pass if both paths were wrong alike; these are the
    values of the seeded data set."""
    _, _, chosen = await answer(client, json.dumps(PLAIN["chosen operation"]).encode(), JSON)
    assert chosen == {"data": {"traceScore": {"total": 3, "score": 0.333}}}
    _, _, missing = await answer(client, json.dumps(PLAIN["resolver error"]).encode(), JSON)
    [error] = missing["errors"]
    assert error["extensions"] == {"code": "NOT_FOUND", "kind": "trace", "key": "nope"}
    _, _, page = await answer(client, json.dumps(PLAIN["nested page"]).encode(), JSON)
    nodes = [edge["node"] for edge in page["data"]["traces"]["edges"]]
    assert sorted(node["traceId"] for node in nodes) == ["t1", "t2"]
    assert {n["traceId"]: n["score"]["total"] for n in nodes} == {"t1": 3, "t2": 1}
    assert len(direct_runs) == 3


@pytest.mark.parametrize("case", DECLINED)
async def test_other_requests_are_left_to_strawberry(
    case: str, client: httpx.AsyncClient, seeded: Database, direct_runs: list[bytes]
) -> None:
    body, headers, status = DECLINED[case]
    r = await client.post("/graphql", content=body, headers=headers)
    assert direct_runs == []
    assert r.status_code == status, r.text


@pytest.mark.parametrize("name", [None, "Score"])
async def test_several_operations_need_a_name_by_post_and_get(
    name: str | None, client: httpx.AsyncClient, seeded: Database
) -> None:
    """The GraphQL spec's GetOperation: without ``operationName`` a document of several
    operations is a request error (Strawberry ran the first), with it the named one runs, here
    the second."""
    given = {} if name is None else {"operationName": name}
    for r in (
        await client.post("/graphql", json={"query": TWO_OPERATIONS, **given}),
        await client.get("/graphql", params={"query": TWO_OPERATIONS, **given}),
    ):
        if name is None:
            assert (r.status_code, r.text) == (400, router.MULTIPLE_OPERATIONS)
        else:
            assert r.json() == {"data": {"traceScore": {"total": 3, "score": 0.333}}}


async def test_a_mutation_runs_once_per_request_on_either_path(
    client: httpx.AsyncClient, seeded: Database, direct_runs: list[bytes], monkeypatch: Any
) -> None:
    vote = (
        'mutation { submitFeedback(input: {traceId: "t2", score: -1}) '
        "{ __typename ... on SubmitFeedbackPayload { created feedback { traceId score } } } }"
    )
    body = json.dumps({"query": vote}).encode()
    direct, via_strawberry = await both_paths(client, body, JSON, monkeypatch)
    assert direct == via_strawberry
    assert direct[2]["data"]["submitFeedback"] == {
        "__typename": "SubmitFeedbackPayload",
        "created": True,
        "feedback": {"traceId": "t2", "score": -1},
    }
    assert len(direct_runs) == 1
    score = await quality.trace_score(seeded, org_id=ORG, trace_id="t2")
    assert (score.total, score.negative) == (3, 2)


BROKEN: dict[str, tuple[object, str]] = {
    "in a resolver": (quality, "summary"),
    "out of the executor": (StrawberryGraphQLCoreExecutionContext, "execute_operation"),
}


@pytest.mark.parametrize("where", BROKEN)
async def test_unexpected_errors_are_masked_and_logged_once_on_either_path(
    where: str,
    client: httpx.AsyncClient,
    seeded: Database,
    direct_runs: list[bytes],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("password=hunter2 in a stack trace")

    monkeypatch.setattr(*BROKEN[where], broken)
    body = b'{"query": "{ feedbackSummary { totalFeedback } }"}'
    with caplog.at_level(logging.ERROR, logger="agentcost.graphql"):
        direct, via_strawberry = await both_paths(client, body, JSON, monkeypatch)
    assert direct == via_strawberry
    status, _, answer_body = direct
    assert (status, answer_body["data"]) == (200, None)
    assert [(e["message"], e["extensions"]) for e in answer_body["errors"]] == [
        (errors.INTERNAL_ERROR, {"code": "INTERNAL"})
    ]
    assert len(direct_runs) == 1
    logged = [r for r in caplog.records if r.name == "agentcost.graphql"]
    assert len(logged) == 2
    assert all(r.exc_info and "hunter2" in str(r.exc_info[1]) for r in logged)


async def test_both_paths_ask_for_credentials_alike(
    client: httpx.AsyncClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    await auth.create_key(db, org_id="acme", scope=Scope.READ)
    body = b'{"query": "{ feedbackSummary { totalFeedback } }"}'
    for headers in (JSON, {**JSON, "Authorization": "Bearer ack_0123456789abcdef_x"}):
        direct, via_strawberry = await both_paths(client, body, headers, monkeypatch)
        assert direct == via_strawberry
        assert direct[0] == 401


def test_the_direct_path_knows_every_schema_extension() -> None:
    """The direct path does ``CheckedDocuments``' work itself and runs no other extension: a
    new one in the schema must be taught to it (and added to EXTENSIONS)."""
    assert tuple(schema.extensions) == EXTENSIONS
    assert (CheckedDocuments,) == EXTENSIONS


@pytest.mark.parametrize("body", [b'{"query": ', b'{"query": "\xff"}', b"\xff\xfe{}"])
async def test_a_body_that_is_not_json_in_utf8_is_refused_with_400(
    body: bytes, client: httpx.AsyncClient, seeded: Database
) -> None:
    r = await client.post("/graphql", content=body, headers=JSON)
    assert (r.status_code, r.text) == (400, "Unable to parse request body as JSON")
    r = await client.get(
        "/graphql", params={"query": "{ feedbackSummary { totalFeedback } }", "variables": "{"}
    )
    assert (r.status_code, r.text) == (400, "Unable to parse request body as JSON")


async def test_callers_without_credentials_get_no_document_checked(
    client: httpx.AsyncClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Authentication comes before the body is read, as in Strawberry's view: a caller without
    a key can neither spend parsing nor fill the cache that callers with keys share."""
    checked: list[str] = []
    original = router.checked_document

    def spy(query: str) -> Any:
        checked.append(query)
        return original(query)

    monkeypatch.setattr(router, "checked_document", spy)
    await auth.create_key(db, org_id="acme", scope=Scope.READ)
    query = f'{{ feedbackSummary(project: "{uuid.uuid4()}") {{ totalFeedback }} }}'
    r = await client.post("/graphql", json={"query": query})
    assert r.status_code == 401
    assert checked == []


async def test_a_fragment_chain_too_deep_to_check_is_refused_alike(
    client: httpx.AsyncClient, seeded: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The depth rule recursed along fragments; a long chain ran out of stack (a 500 here, or
    the interpreter's message in the answer). The cache is emptied between the two paths, so
    each checks the document itself."""
    chain = " ".join(f"fragment F{i} on Query {{ ...F{i + 1} }}" for i in range(245))
    body = json.dumps({"query": f"{{ ...F0 }} {chain} fragment F245 on Query {{ __typename }}"})
    checked_document.cache_clear()
    direct = await answer(client, body.encode(), JSON)
    checked_document.cache_clear()
    with monkeypatch.context() as patch:
        patch.setattr(AgentCostGraphQL, "_plain_operation", decline)
        via_strawberry = await answer(client, body.encode(), JSON)
    assert direct == via_strawberry
    assert direct[0] == 200
    assert [error["message"] for error in direct[2]["errors"]] == [fragment_limits.TOO_DEEP]
