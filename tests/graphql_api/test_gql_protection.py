"""Limits on what one request may ask for, the parser/validation caches, and error masking."""

import importlib
import logging
import uuid
from typing import Any

import pytest
import strawberry.schema.schema as strawberry_schema
from graphql import parse
from graphql.language.parser import Parser

from agentcost.graphql_api import fragment_limits
from agentcost.graphql_api.schema import MAX_ALIASES, MAX_DEPTH, MAX_TOKENS
from agentcost.services import feedback, quality

pytestmark = pytest.mark.anyio

# The module itself: the package's ``schema`` attribute is the schema object.
schema_module = importlib.import_module("agentcost.graphql_api.schema")


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


def chain(levels: int, spreads_per_level: int = 1) -> str:
    """Fragments F0..F{levels}: each spreads the next ``spreads_per_level`` times. Spread from
    the operation, it nests ``levels + 2`` deep: the operation's spread, each fragment's, and
    the last fragment's field."""
    unique = uuid.uuid4()  # a text never sent before: the cache is per text
    spreads = " ".join(["...F{next}"] * spreads_per_level)
    body = " ".join(
        f"fragment F{i} on Query {{ {spreads.format(next=i + 1)} }}" for i in range(levels)
    )
    return f"{{ ...F0 }} {body} fragment F{levels} on Query {{ __typename }} # {unique}"


def spreading_each_other(count: int) -> str:
    """Fragments A1..A{count}, each spreading every other one: cycles with fan-out."""
    names = [f"A{i}" for i in range(1, count + 1)]
    body = " ".join(
        f"fragment {name} on Query {{ __typename {' '.join(f'...{o}' for o in names if o != name)} }}"
        for name in names
    )
    return f"{{ ...A1 }} {body} # {uuid.uuid4()}"


NESTED_INLINE = "{ " + "... on Query { " * 150 + "__typename" + " }" * 150 + " }"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (chain(fragment_limits.MAX_NESTING - 1), fragment_limits.TOO_DEEP),
        (chain(245), fragment_limits.TOO_DEEP),  # ran the depth rule out of stack
        (NESTED_INLINE, fragment_limits.TOO_DEEP),  # no fragment, and as deep for the rule
        # 2 + 2 * (2 + 2 * ...): 5,001 selections; the rule walked each of the 2¹¹ paths
        (chain(11, 2), fragment_limits.TOO_MANY),
        (chain(40, 2), fragment_limits.TOO_MANY),  # 2⁴⁰ paths: the rule would never end
        (spreading_each_other(10), fragment_limits.TOO_MANY),  # every path: 14 s
    ],
    ids=["limit", "chain of 245", "nested inline", "doubling 11", "doubling 40", "cycles"],
)
async def test_documents_that_reach_too_far_are_refused_before_validation(
    gql: Any, query: str, message: str
) -> None:
    body = await gql(query)
    assert body["data"] is None
    assert [error["message"] for error in body["errors"]] == [message]


@pytest.mark.parametrize(
    "query", [chain(fragment_limits.MAX_NESTING - 2), chain(10, 2)], ids=["deep", "wide"]
)
async def test_fragments_within_the_limits_run(gql_data: Any, query: str) -> None:
    assert await gql_data(query) == {"__typename": "Query"}


async def test_unknown_fragments_and_cycles_are_graphql_cores_to_report(gql: Any) -> None:
    """Strawberry's rules raised ``KeyError`` on an unknown fragment (an internal error, not
    cached, parsed again on every send) and walk every path of a cycle; graphql-core's own
    rules refuse both in their words, and Strawberry's never see them."""
    for query in ("{ ...Nope }", "{ __typename ... on Query { ...Nope } }"):
        [error] = (await gql(query))["errors"]
        assert error["message"] == "Unknown fragment 'Nope'."
    messages = [error["message"] for error in (await gql(spreading_each_other(4)))["errors"]]
    assert "Cannot spread fragment 'A1' within itself via 'A2'." in messages
    for query in ("{ ...Nope }", spreading_each_other(4)):
        assert not fragment_limits.fragment_reach(parse(query)).closed
    assert fragment_limits.fragment_reach(parse(chain(3, 2))).closed


async def test_a_fragment_cycle_is_validations_to_report(gql: Any) -> None:
    cycle = "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A __typename }"
    [error] = (await gql(cycle))["errors"]
    assert error["message"] == "Cannot spread fragment 'A' within itself via 'B'."


async def test_a_document_too_nested_for_the_rules_is_an_error_not_a_crash(
    gql: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stack's own limit stays a backstop behind the fragment limits."""

    def overflow(*_: Any) -> Any:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(schema_module, "validate_document", overflow)
    body = await gql(f'{{ trace(traceId: "{uuid.uuid4()}") {{ traceId }} }}')
    assert body == {"data": None, "errors": [{"message": schema_module.TOO_NESTED}]}
