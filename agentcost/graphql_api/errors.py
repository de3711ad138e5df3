"""How failures reach GraphQL clients.

Mutations return expected failures as typed members of their result union (``InvalidInputError``,
``NotFoundError``), converted from the services' exceptions by Strawberry exception handlers, so
resolvers never catch anything. Queries report them as GraphQL errors whose ``extensions`` carry a
``code`` and the same ``field``/``reason`` pairs REST answers with. Anything else is a bug: it is
logged with its traceback and the client only sees "internal error".
"""

import logging
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.relay import GlobalIDValueError
from strawberry.types.field import StrawberryField

from agentcost.errors import AgentCostError, Forbidden, InvalidInput, NotFound, Unauthorized

log = logging.getLogger("agentcost.graphql")

INTERNAL_ERROR = "internal error"


@strawberry.type(description="One reason an input was refused, as the REST API words it.")
class FieldError:
    field: str = strawberry.field(
        description="The input field as REST and Python name it (snake_case, dotted for nesting)."
    )
    reason: str
    index: int | None = strawberry.field(
        default=None, description="Position of the bad item in a batch."
    )


@strawberry.type(description="The input was refused; nothing was written.")
class InvalidInputError:
    message: str
    errors: list[FieldError]


@strawberry.type(description="The thing named does not exist in this organisation.")
class NotFoundError:
    message: str
    kind: str = strawberry.field(description="What was looked for: feedback, trace, ...")
    key: str


def invalid_input_error(exc: InvalidInput) -> InvalidInputError:
    return InvalidInputError(
        message=str(exc),
        errors=[FieldError(field=e.field, reason=e.reason, index=e.index) for e in exc.errors],
    )


class InvalidInputHandler(strawberry.ExceptionHandler[InvalidInput, InvalidInputError]):
    def handle(
        self, exception: InvalidInput, *, field: StrawberryField, info: strawberry.Info
    ) -> InvalidInputError:
        return invalid_input_error(exception)


class NotFoundHandler(strawberry.ExceptionHandler[NotFound, NotFoundError]):
    def handle(
        self, exception: NotFound, *, field: StrawberryField, info: strawberry.Info
    ) -> NotFoundError:
        return NotFoundError(message=str(exception), kind=exception.kind, key=exception.key)


EXCEPTION_HANDLERS = (InvalidInputHandler(), NotFoundHandler())


def _extensions(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, InvalidInput):
        return {
            "code": "BAD_USER_INPUT",
            "errors": [
                {"field": e.field, "reason": e.reason}
                | ({} if e.index is None else {"index": e.index})
                for e in exc.errors
            ],
        }
    if isinstance(exc, NotFound):
        return {"code": "NOT_FOUND", "kind": exc.kind, "key": exc.key}
    if isinstance(exc, Unauthorized):
        return {"code": "UNAUTHENTICATED"}
    if isinstance(exc, Forbidden):
        return {"code": "FORBIDDEN"}
    return {"code": "BAD_USER_INPUT"}


def is_expected(exc: BaseException | None) -> bool:
    """Client mistakes (and GraphQL's own validation errors) are reported as they are."""
    return exc is None or isinstance(exc, AgentCostError | GlobalIDValueError | GraphQLError)


def reported(errors: list[GraphQLError]) -> list[GraphQLError]:
    """The errors as clients see them: expected ones raised by resolvers with their ``code``
    (and field/reason pairs), every other exception masked; GraphQL's own errors (syntax,
    validation) pass as they are. Strawberry's ``MaskErrors`` extension does the same rewrite,
    but it checks every result against a runtime protocol, and misses errors that escape an
    extension's hooks."""
    return [_reported(error) for error in errors]


def _reported(error: GraphQLError) -> GraphQLError:
    original = error.original_error
    if original is None or isinstance(original, GraphQLError):
        return error
    expected = is_expected(original)
    return GraphQLError(
        message=str(original) if expected else INTERNAL_ERROR,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions=_extensions(original) if expected else {"code": "INTERNAL"},
    )


def log_unexpected(errors: list[GraphQLError]) -> None:
    """Log bugs with their traceback; expected errors are the client's business, not the log's."""
    for error in errors:
        if not is_expected(error.original_error):
            log.error(
                "unhandled error in GraphQL resolver %s", error.path, exc_info=error.original_error
            )
