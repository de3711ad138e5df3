"""The two single writes (``POST /api/feedback``, ``POST /api/trace``) without FastAPI's
per-request parameter machinery, for the bodies that are valid.

For each request FastAPI decodes the JSON with the ``json`` module, validates the result against
the body model, then walks the route's parameters to look up, validate and convert the
Authorization header and the (empty) query string. On these two routes, which carry the
service's write-throughput target, that was a fifth of the event loop's time per request. A
``ModelBodyRoute`` keeps the endpoint's signature, so OpenAPI describes the route as before, and
calls the endpoint with the body validated by pydantic from the bytes in one pass (Rust) and the
header read as it is. Any body that pass does not accept (not JSON by its content type, empty,
malformed, or invalid) goes to FastAPI's own handler instead, which answers it exactly as it
always has: pydantic's JSON parser refuses everything the ``json`` module refuses, so nothing
FastAPI would refuse gets through.
"""

import email.message
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar, get_type_hints

from fastapi import Request, Response
from fastapi.datastructures import DefaultPlaceholder
from fastapi.routing import (
    APIRoute,
    APIRouter,
    _effective_route_context_var,  # what include_router adds; no API
)
from pydantic import BaseModel, ValidationError

HEADER = "authorization"

Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])
Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class ModelBodyRoute(APIRoute):
    """A route whose endpoint takes exactly a JSON body model, the Request and an optional
    ``authorization`` header, and returns a Response; any other shape is refused when the route
    is built (it would need FastAPI's solving, or its serialising, after all)."""

    def get_route_handler(self) -> Handler:
        solved = super().get_route_handler()  # FastAPI's: the judge of every refused body
        route = _as_included(self)
        dependant, body = route.dependant, route.body_field
        model = body.field_info.annotation if body is not None else None
        extra = dependant.path_params or dependant.query_params or dependant.cookie_params
        if (
            body is None
            or not (isinstance(model, type) and issubclass(model, BaseModel))
            or extra
            or dependant.dependencies
            or [param.alias for param in dependant.header_params] != [HEADER]
            or dependant.request_param_name is None
            or not _returns_response(self.endpoint)
        ):
            raise TypeError(
                f"{self.path}: a ModelBodyRoute takes a body model, Request, {HEADER}"
                " and returns a Response"
            )
        names = (body.name, dependant.request_param_name, dependant.header_params[0].name)
        policy = route.strict_content_type
        strict = bool(policy.value if isinstance(policy, DefaultPlaceholder) else policy)
        endpoint: Callable[..., Coroutine[Any, Any, Response]] = self.endpoint

        async def handle(request: Request) -> Response:
            raw = await request.body()  # kept by the request for ``solved`` to read again
            if raw and _is_json(request.headers.get("content-type"), strict=strict):
                try:
                    parsed = model.model_validate_json(raw)
                except ValidationError:
                    return await solved(request)
                values = (parsed, request, request.headers.get(HEADER))
                return await endpoint(**dict(zip(names, values, strict=True)))
            return await solved(request)

        return handle


def _returns_response(endpoint: Callable[..., Any]) -> bool:
    """The fast path hands the endpoint's result to the server as it is, with no serialising."""
    returned = get_type_hints(endpoint).get("return")
    return isinstance(returned, type) and issubclass(returned, Response)


def _as_included(route: APIRoute) -> Any:
    """The route with what ``include_router`` adds (dependencies, content-type policy), as
    ``APIRoute.get_route_handler`` sees it, so a dependency added there refuses this route."""
    context = _effective_route_context_var.get()
    return context if context is not None and context.original_route is route else route


def post(router: APIRouter, path: str, **options: Any) -> Callable[[Endpoint], Endpoint]:
    """``router.post(path, **options)`` with a ``ModelBodyRoute``."""

    def register(endpoint: Endpoint) -> Endpoint:
        router.add_api_route(
            path, endpoint, methods=["POST"], route_class_override=ModelBodyRoute, **options
        )
        return endpoint

    return register


def _is_json(content_type: str | None, *, strict: bool) -> bool:
    """Whether FastAPI would decode the body as JSON (``fastapi.routing``'s test)."""
    if not content_type:
        return not strict
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )
