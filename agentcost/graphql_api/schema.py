"""The schema and its protection: depth, alias and token limits, one cache of checked
documents, the logging of unexpected errors (the router masks them).

One extension parses and validates, both cached by the query's text, in place of four of
Strawberry's (``AddValidationRules``, ``MaxTokensLimiter``, ``ParserCache``, ``ValidationCache``):
Strawberry builds every extension and wraps each of its hooks in a context manager per request,
which on a small query cost more than the parse they cached.
"""

from collections.abc import Iterator
from functools import lru_cache

import strawberry
from graphql import DocumentNode, GraphQLError, parse, specified_rules
from strawberry.extensions import MaxAliasesLimiter, QueryDepthLimiter, SchemaExtension
from strawberry.schema.schema import validate_document
from strawberry.types import ExecutionContext

from agentcost.graphql_api.errors import EXCEPTION_HANDLERS, log_unexpected
from agentcost.graphql_api.fragment_limits import fragment_reach
from agentcost.graphql_api.mutations import Mutation
from agentcost.graphql_api.queries import Query
from agentcost.graphql_api.types import Call, Feedback, Trace

MAX_DEPTH = 10
MAX_ALIASES = 15
MAX_TOKENS = 2000
CACHE_SIZE = 256
TOO_NESTED = "the document nests too deeply to be checked"

_RULES = (
    *specified_rules,
    *QueryDepthLimiter(max_depth=MAX_DEPTH).validation_rules,
    *MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules,
)


@lru_cache(maxsize=CACHE_SIZE)
def checked_document(query: str) -> tuple[DocumentNode, list[GraphQLError]]:
    """The parsed document and its validation errors, or the one error of a document that
    reaches too far once its fragments are expanded (``fragment_limits``), checked first; one
    with unknown fragments or a cycle goes to graphql-core's rules only. A syntax error (too
    many tokens included) raises, and is not cached, as with Strawberry's ``ParserCache``."""
    document = parse(query, max_tokens=MAX_TOKENS)
    reach = fragment_reach(document)
    if reach.errors:
        return document, reach.errors
    rules = _RULES if reach.closed else specified_rules  # which refuse it, in their words
    try:
        return document, validate_document(schema._schema, document, rules)
    except RecursionError:  # the rules recurse along the document; a backstop
        return document, [GraphQLError(TOO_NESTED)]


class CheckedDocuments(SchemaExtension):
    """Parsing and validation from ``checked_document``; the operation type is checked in
    between, by Strawberry, as before."""

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        assert context.query is not None  # Strawberry refuses a request without one before
        context.graphql_document, self._errors = checked_document(context.query)
        yield

    def on_validate(self) -> Iterator[None]:
        self.execution_context.pre_execution_errors = self._errors
        yield


class AgentCostSchema(strawberry.Schema):
    """Logs only unexpected errors (with traceback); client mistakes are not log noise."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        log_unexpected(errors)


EXTENSIONS = (CheckedDocuments,)
"""The router's direct path does this extension's work itself; a new one must be added there
too (a test holds this list)."""

schema = AgentCostSchema(
    query=Query,
    mutation=Mutation,
    types=[Trace, Call, Feedback],
    extensions=list(EXTENSIONS),
    exception_handlers=EXCEPTION_HANDLERS,
)
