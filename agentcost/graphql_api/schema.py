"""The schema and its protection: depth, alias and token limits, parser and validation caches,
error policy.

The limit rules are built once at import: the validation cache keys on the rule classes, and
Strawberry's limiter extensions create new classes per instance, which per request would make
every request a cache miss.
"""

from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.types import ExecutionContext

from agentcost.graphql_api.errors import EXCEPTION_HANDLERS, ErrorPolicy, log_unexpected
from agentcost.graphql_api.mutations import Mutation
from agentcost.graphql_api.queries import Query
from agentcost.graphql_api.types import Call, Feedback, Trace

MAX_DEPTH = 10
MAX_ALIASES = 15
MAX_TOKENS = 2000
CACHE_SIZE = 256

_LIMIT_RULES = [
    *QueryDepthLimiter(max_depth=MAX_DEPTH).validation_rules,
    *MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules,
]


class AgentCostSchema(strawberry.Schema):
    """Logs only unexpected errors (with traceback); client mistakes are not log noise."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        log_unexpected(errors)


def _extensions() -> list[Any]:
    return [
        lambda: AddValidationRules(_LIMIT_RULES),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: ParserCache(maxsize=CACHE_SIZE),
        lambda: ValidationCache(maxsize=CACHE_SIZE),
        ErrorPolicy,
    ]


schema = AgentCostSchema(
    query=Query,
    mutation=Mutation,
    types=[Trace, Call, Feedback],
    extensions=_extensions(),
    exception_handlers=EXCEPTION_HANDLERS,
)
