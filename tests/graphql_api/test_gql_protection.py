"""Limits on what one request may ask for, the parser/validation caches, and error masking."""

import logging
import uuid
from typing import Any

import pytest
import strawberry.schema.schema as strawberry_schema
from graphql.language.parser import Parser

from agentcost.graphql_api.schema import MAX_ALIASES, MAX_DEPTH, MAX_TOKENS
from agentcost.services import feedback, quality

pytestmark = pytest.mark.anyio


def nested(depth: int) -> str:
    """traces > edges > node is depth 3; each feedback > trace pair adds 2."""
    inner = "traceId"
    for _ in range((depth - 3) // 2):
        inner = f"feedback {{ trace {{ {inner} }} }}"
    return f"{{ traces {{ edges {{ node {{ {inner} }} }} }} }}"


async def test_depth_limit(gql: Any) -> None:
    allowed = await gql(nested(MAX_DEPTH - 1))
    assert "errors" not in allowed
    body = await gql(nested(MAX_DEPTH + 2))
    assert body["errors"][0]["message"] == (
        f"'anonymous' exceeds maximum operation depth of {MAX_DEPTH}"
    )
    assert "data" not in body or body["data"] is None


async def test_alias_limit(gql: Any) -> None:
    def aliased(n: int) -> str:
        return (
            "{ " + " ".join(f'a{i}: traceScore(traceId: "x") {{ total }}' for i in range(n)) + " }"
        )

    assert "aliases" not in str(await gql(aliased(MAX_ALIASES)))
    body = await gql(aliased(MAX_ALIASES + 1))
    assert (
        body["errors"][0]["message"] == f"{MAX_ALIASES + 1} aliases found. Allowed: {MAX_ALIASES}"
    )


async def test_token_limit(gql: Any) -> None:
    fields = " ".join(["totalFeedback"] * MAX_TOKENS)
    body = await gql(f"{{ feedbackSummary {{ {fields} }} }}")
    assert body["errors"][0]["message"] == (
        f"Syntax Error: Document contains more than {MAX_TOKENS} tokens. Parsing aborted."
    )


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per document graphql-core parses during the test."""
    counted: list[int] = []
    parse_document = Parser.parse_document

    def counting_parse(self: Parser) -> Any:
        counted.append(1)
        return parse_document(self)

    monkeypatch.setattr(Parser, "parse_document", counting_parse)
    return counted


async def test_parser_and_validation_caches_skip_repeated_work(
    gql_data: Any, parses: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    validations: list[int] = []
    validate = strawberry_schema.validate

    def counting_validate(*args: Any, **kwargs: Any) -> Any:
        validations.append(1)
        return validate(*args, **kwargs)

    monkeypatch.setattr(strawberry_schema, "validate", counting_validate)
    # A text never sent before (the caches live for the process; comments are not in the AST).
    query = f'{{ feedbackSummary(project: "{uuid.uuid4()}") {{ totalFeedback }} }}'
    for _ in range(3):
        assert (await gql_data(query))["feedbackSummary"] == {"totalFeedback": 0}
    assert (len(parses), len(validations)) == (1, 1)


async def test_cached_documents_keep_reporting_their_errors(gql: Any, parses: list[int]) -> None:
    """A cached document brings its validation errors along; a syntax error is not cached, so
    each send reports it again."""
    field = f"noSuchField{uuid.uuid4().hex}"
    for _ in range(3):
        body = await gql(f"{{ {field} }}")
        [error] = body["errors"]
        assert error["message"] == f"Cannot query field '{field}' on type 'Query'."
        assert body.get("data") is None
    assert len(parses) == 1
    broken = f'{{ feedbackSummary(project: "{uuid.uuid4()}") {{ totalFeedback }}'
    for _ in range(2):
        [error] = (await gql(broken))["errors"]
        assert error["message"] == "Syntax Error: Expected Name, found <EOF>."
    assert len(parses) == 3


async def test_get_runs_queries_and_refuses_mutations(client: Any, gql_data: Any) -> None:
    """The operation type is checked between parsing and validation, cached documents or not."""
    project = str(uuid.uuid4())
    query = f'{{ feedbackSummary(project: "{project}") {{ totalFeedback }} }}'
    for _ in range(2):
        r = await client.get("/graphql", params={"query": query})
        assert r.status_code == 200, r.text
        assert r.json()["data"]["feedbackSummary"] == {"totalFeedback": 0}
    mutation = 'mutation { submitFeedback(input: {traceId: "via-get", score: 1}) { __typename } }'
    for _ in range(2):
        r = await client.get("/graphql", params={"query": mutation})
        assert (r.status_code, r.text) == (400, "mutations are not allowed when using GET")
    summary = await gql_data("{ feedbackSummary { totalFeedback } }")
    assert summary["feedbackSummary"] == {"totalFeedback": 0}


async def test_unexpected_errors_are_masked_and_logged(
    gql: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("password=hunter2 in a stack trace")

    monkeypatch.setattr(quality, "summary", broken)
    monkeypatch.setattr(feedback, "submit", broken)
    with caplog.at_level(logging.ERROR, logger="agentcost.graphql"):
        query_body = await gql("{ feedbackSummary { totalFeedback } }")
        mutation_body = await gql(
            'mutation { submitFeedback(input: {traceId: "t", score: 1}) { __typename } }'
        )
    for body in (query_body, mutation_body):
        [error] = body["errors"]
        assert error["message"] == "internal error"
        assert error["extensions"] == {"code": "INTERNAL"}
        assert "hunter2" not in str(body)
    logged = [r for r in caplog.records if r.name == "agentcost.graphql"]
    assert len(logged) == 2
    assert all(r.exc_info and "hunter2" in str(r.exc_info[1]) for r in logged)


async def test_client_mistakes_are_not_logged_as_errors(
    gql: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="agentcost.graphql"):
        await gql('{ traceScore(traceId: "nope") { total } }')
        await gql("{ noSuchField }")
    assert [r for r in caplog.records if r.name == "agentcost.graphql"] == []
