"""/graphql: queries (POST, and GET without side effects) and GraphiQL, served by Strawberry's
plain ASGI app mounted as a Starlette route, and GraphiQL's vendored assets beside it."""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, HTMLResponse, Response
from graphql import (
    DocumentNode,
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
    execute,
    get_operation_ast,
)
from pydantic_core import from_json, to_json
from starlette.requests import Request
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.execution import optimized_is_awaitable
from strawberry.http import GraphQLRequestData

# The view's own names: its answer to this exception is the 400 of a bad request.
from strawberry.http.async_base_view import AsyncHTTPRequestAdapter, HTTPException
from strawberry.http.parse_content_type import parse_content_type
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET
from strawberry.utils.await_maybe import await_maybe

from agentcost.graphql_api.context import Context, get_context
from agentcost.graphql_api.errors import reported
from agentcost.graphql_api.schema import checked_document, schema
from agentcost.web import graphiql

PATH = "/graphql"
ASSETS = f"{PATH}/assets"


class AgentCostGraphQL(GraphQL[Context, None]):
    """Strawberry's ASGI app rather than its FastAPI router: the router is a FastAPI route whose
    dependencies FastAPI solves for every request, a third of a small query's time. Plain
    operations, nearly every request a client sends, skip the view's and ``Schema.execute``'s
    machinery too (``run``); tests/graphql_api/test_gql_direct.py holds both paths' answers
    equal.

    GraphiQL comes from the package's vendored assets instead of a CDN.
    """

    def __init__(self, *, vendor_dir: Path) -> None:
        super().__init__(schema, graphql_ide="graphiql")
        self.vendor_dir = vendor_dir

    async def get_context(self, request: Request | WebSocket, response: object) -> Context:
        # Only HTTP reaches it: the app mounts it as a Starlette Route, never a WebSocket one.
        return await get_context(cast(Request, request))

    async def run(
        self,
        request: Request | WebSocket,
        context: Context | None = UNSET,
        root_value: None = UNSET,
    ) -> Any:
        """A plain operation (below) runs directly; everything else through Strawberry's view.
        A POST is authenticated (and rate-limited) first, as the view does before it reads
        the body, so no caller without credentials gets a document parsed or cached."""
        if (
            isinstance(request, Request)
            and request.method == "POST"
            and context is UNSET
            and root_value is UNSET
        ):
            context = await self.get_context(request, response=None)
            plain = await self._plain_operation(request)
            if plain is not None:
                return await self._run_plain(request, context, plain)
        return await super().run(request, context, root_value)

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        """Strawberry's, and a request error for a document of several operations without
        ``operationName``, as the GraphQL spec's GetOperation requires (Strawberry ran the
        first), in the words and status Strawberry gives an unknown operation name."""
        data = await super().parse_http_body(request)
        for item in data if isinstance(data, list) else [data]:
            if item.operation_name is None and item.query and _operations(item.query) > 1:
                raise HTTPException(400, MULTIPLE_OPERATIONS)
        return data

    async def _plain_operation(self, request: Request) -> "_Plain | None":
        """The request when it is a plain operation: a POSTed JSON object of ``query``,
        ``variables`` and ``operationName`` only, whose cached document is valid and holds that
        query or mutation, or whose errors of syntax or validation Strawberry would answer
        with. Anything else is Strawberry's to answer, so every refusal keeps Strawberry's
        status and wording; the body stays cached on the request for it."""
        if not _is_json(request.headers.get("content-type", "")) or (
            self._get_stream_transport_from_headers(request.headers)
        ):
            return None
        try:
            data = from_json(await request.body())
        except ValueError:
            return None
        if not isinstance(data, dict) or not data.keys() <= _PLAIN_KEYS:
            return None
        query, variables, name = data.get("query"), data.get("variables"), data.get("operationName")
        if not (
            isinstance(query, str)
            and query  # Strawberry's 400: no query
            and isinstance(variables, dict | None)
            and isinstance(name, str | None)
        ):
            return None
        try:
            document, errors = checked_document(query)
        except Exception as error:  # Strawberry answers any failure here
            return _Plain(None, [_coerced(error)], variables, name)
        operation = get_operation_ast(document, name)
        if operation is None:  # no operation of that name, or several and no name
            return None
        if errors:  # the type is checked before validation, but POST allows every type
            return _Plain(None, errors, variables, name)
        if operation.operation not in _PLAIN_TYPES:
            return None
        return _Plain(document, [], variables, name)

    async def _run_plain(self, request: Request, context: Context, plain: "_Plain") -> Response:
        """What Strawberry's view and ``Schema.execute`` do for a plain operation, without
        their per-request machinery (request adapters, an extension runner and its context
        managers), about a third of a small query's time. The schema extension's work is
        done above by the same function, ``checked_document``."""
        data, errors = None, plain.errors
        if plain.document is not None:
            try:
                result = await await_maybe(
                    execute(
                        self.schema._schema,
                        plain.document,
                        context_value=context,
                        variable_values=plain.variables,
                        operation_name=plain.operation_name,
                        is_awaitable=optimized_is_awaitable,
                        executor_class=self.schema.execution_context_class,
                        operation_extensions=None,
                    )
                )
                data, errors = result.data, result.errors
            except Exception as error:  # as ``Schema.execute``: an error in the answer
                errors = [_coerced(error)]
        if errors:
            self.schema._process_errors(errors)
        answer = await self.process_result(request, ExecutionResult(data=data, errors=errors))
        return self.create_response(answer, await self.get_sub_response(request))

    async def process_result(self, request: Request, result: ExecutionResult) -> Any:
        """Every answer's errors as clients may see them (``reported``), on both paths, also
        those of an exception that escaped Strawberry's extension hooks."""
        if result.errors:
            result.errors = reported(result.errors)
        return await super().process_result(request, result)

    def decode_json(self, data: str | bytes) -> object:
        """pydantic's parser, as the direct path's, then ``json.loads`` for what it refuses.
        Every failure becomes the ``JSONDecodeError`` Strawberry answers 400 for: a body that
        is not text raised a ``UnicodeDecodeError``, which Strawberry let through as a 500."""
        try:
            return from_json(data)
        except ValueError:
            pass
        try:  # other encodings (UTF-16, a byte-order mark), deeper nesting
            value = json.loads(data)
            # A lone surrogate (an escape JSON allows) cannot be stored or answered in UTF-8.
            json.dumps(value, ensure_ascii=False).encode()
        except (ValueError, RecursionError) as error:
            raise json.JSONDecodeError(str(error), "", 0) from error
        return value

    def encode_json(self, data: object) -> bytes:
        """pydantic's encoder (Rust) instead of ``json.dumps``, the same JSON: a 50-trace page
        of about 1,500 values encodes in 77 µs instead of 243."""
        return to_json(data)

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        page = graphiql.render_page(self.vendor_dir, assets_url=ASSETS)
        return HTMLResponse(page.html, status_code=200 if page.complete else 503)


@dataclass(frozen=True, slots=True)
class _Plain:
    document: DocumentNode | None
    """None when the errors are the answer."""
    errors: list[GraphQLError]
    variables: dict[str, Any] | None
    operation_name: str | None


def _is_json(content_type: str) -> bool:
    """The bare type, what clients send, skips ``email``'s slow header parser. A body in
    another encoding fails ``from_json`` and goes to Strawberry."""
    return (
        content_type == "application/json"
        or parse_content_type(content_type)[0] == "application/json"
    )


MULTIPLE_OPERATIONS = "Must provide operation name if query contains multiple operations."


def _operations(query: str) -> int:
    """How many operations the document defines; 0 when it does not parse (Strawberry then
    answers with the syntax error)."""
    try:
        document, _ = checked_document(query)
    except Exception:
        return 0
    return sum(isinstance(node, OperationDefinitionNode) for node in document.definitions)


def _coerced(error: Exception) -> GraphQLError:
    """An exception as ``Schema.execute`` answers it, an error of the result."""
    return (
        error if isinstance(error, GraphQLError) else GraphQLError(str(error), original_error=error)
    )


_PLAIN_KEYS = frozenset({"query", "variables", "operationName"})
_PLAIN_TYPES = (OperationType.QUERY, OperationType.MUTATION)


def install_graphql(app: FastAPI, vendor_dir: Path = graphiql.VENDOR_DIR) -> None:
    """/graphql and its assets on ``app``; the context reads the app's database and settings
    per request."""
    app.add_route(PATH, AgentCostGraphQL(vendor_dir=vendor_dir), include_in_schema=False)
    assets = APIRouter(include_in_schema=False)

    @assets.get(f"{ASSETS}/{{asset:path}}")
    async def asset(asset: str) -> Response:
        """Only the files the page references, so no other path of the disk is reachable."""
        path = graphiql.asset_file(vendor_dir, asset)
        if path is None:
            return Response("not found", status_code=404, media_type="text/plain")
        return FileResponse(path, headers={"Cache-Control": "public, max-age=31536000, immutable"})

    app.include_router(assets)
