"""``ModelBodyRoute``: the same answers as FastAPI's handler for every body, valid or not, the
same OpenAPI description, and FastAPI's parameter solving skipped only for valid bodies.

Each case is sent to two routes with the same endpoint, one a ``ModelBodyRoute`` and one a
plain FastAPI route, and the two answers are compared whole."""

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

import fastapi.routing
import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from agentcost.rest_api import feedback as feedback_routes
from agentcost.rest_api import model_body
from agentcost.rest_api import traces as trace_routes
from agentcost.rest_api.errors import install_error_handlers

pytestmark = pytest.mark.anyio


class Vote(BaseModel):
    trace_id: str = Field(min_length=1)
    score: int = Field(ge=-1, le=1)
    tags: list[str] | None = None


async def record(
    vote: Vote, request: Request, authorization: Annotated[str | None, Header()] = None
) -> Response:
    body = {"vote": vote.model_dump(), "path": request.url.path, "authorization": authorization}
    return JSONResponse(body, status_code=201)


def twin_app(prefix_dependencies: list[Any] | None = None) -> FastAPI:
    router = APIRouter()
    model_body.post(router, "/fast", status_code=201, response_model=Vote)(record)
    router.post("/plain", status_code=201, response_model=Vote)(record)
    app = FastAPI()
    install_error_handlers(app)  # the service's 422 (FastAPI's own fails on NaN in an input)
    app.include_router(router, prefix="/api", dependencies=prefix_dependencies or [])
    return app


@pytest.fixture
async def twins() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=twin_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


JSON = {"content-type": "application/json"}
# (what it is, the raw body, its headers)
CASES: list[tuple[str, bytes, dict[str, str]]] = [
    ("valid", b'{"trace_id": "t", "score": 1}', JSON),
    ("valid with a key", b'{"trace_id": "t", "score": -1}', {**JSON, "authorization": "Bearer k"}),
    (
        "charset parameter",
        b'{"trace_id": "t", "score": 0}',
        {"content-type": "application/json; charset=utf-8"},
    ),
    ("+json subtype", b'{"trace_id": "t", "score": 1}', {"content-type": "application/vote+json"}),
    ("duplicate key", b'{"trace_id": "t", "score": 1, "score": 0}', JSON),
    ("byte order mark", b'\xef\xbb\xbf{"trace_id": "t", "score": 1}', JSON),
    ("unicode escape", b'{"trace_id": "\\u00e9", "score": 1}', JSON),
    ("lone surrogate", b'{"trace_id": "a\\ud800", "score": 1}', JSON),
    ("NaN", b'{"trace_id": "t", "score": NaN}', JSON),
    ("invalid field", b'{"trace_id": "", "score": 2}', JSON),
    ("wrong type", b'{"trace_id": "t", "score": "high"}', JSON),
    ("missing field", b'{"score": 1}', JSON),
    ("malformed", b'{"trace_id": "t", "score": 1', JSON),
    ("trailing comma", b'{"trace_id": "t", "score": 1,}', JSON),
    ("raw newline in a string", b'{"trace_id": "a\nb", "score": 1}', JSON),
    ("a list", b'[{"trace_id": "t", "score": 1}]', JSON),
    ("null", b"null", JSON),
    ("empty", b"", JSON),
    ("text/plain", b'{"trace_id": "t", "score": 1}', {"content-type": "text/plain"}),
    ("no content type", b'{"trace_id": "t", "score": 1}', {}),
]


@pytest.mark.parametrize(("case", "raw", "headers"), CASES, ids=[c[0] for c in CASES])
async def test_answers_as_fastapi_does(
    twins: httpx.AsyncClient, case: str, raw: bytes, headers: dict[str, str]
) -> None:
    fast = await twins.post("/api/fast", content=raw, headers=headers)
    plain = await twins.post("/api/plain", content=raw, headers=headers)
    assert (fast.status_code, fast.headers.get("content-type")) == (
        plain.status_code,
        plain.headers.get("content-type"),
    )
    assert fast.text == plain.text.replace("/api/plain", "/api/fast")
    if case.startswith("valid"):
        assert fast.json() == {
            "vote": {**json.loads(raw), "tags": None},
            "path": "/api/fast",
            "authorization": headers.get("authorization"),
        }


async def test_skips_fastapi_solving_only_for_valid_bodies(
    twins: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    solved: list[str] = []
    original = fastapi.routing.solve_dependencies

    async def counting(*args: Any, **kwargs: Any) -> Any:
        solved.append(kwargs["request"].url.path)
        return await original(*args, **kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counting)
    valid, invalid = b'{"trace_id": "t", "score": 1}', b'{"trace_id": "t", "score": 5}'
    for path in ("/api/fast", "/api/plain"):
        for raw, status in ((valid, 201), (invalid, 422)):
            assert (await twins.post(path, content=raw, headers=JSON)).status_code == status
    assert solved == ["/api/fast", "/api/plain", "/api/plain"]


def test_describes_the_route_as_fastapi_does() -> None:
    paths = twin_app().openapi()["paths"]
    fast, plain = paths["/api/fast"]["post"], paths["/api/plain"]["post"]
    for operation in (fast, plain):
        del operation["operationId"], operation["summary"]
    assert fast == plain
    assert fast["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Vote"
    }
    assert [p["name"] for p in fast["parameters"]] == ["authorization"]


async def needs_key() -> None:
    """A dependency the route could not honour without FastAPI's solving."""


async def with_query(vote: Vote, request: Request, page: int = 1) -> Response:
    return Response(status_code=201)


async def without_header(vote: Vote, request: Request) -> Response:
    return Response(status_code=201)


async def returning_a_model(
    vote: Vote, request: Request, authorization: Annotated[str | None, Header()] = None
) -> Vote:
    return vote


@pytest.mark.parametrize("endpoint", [with_query, without_header, returning_a_model])
def test_refuses_endpoints_it_cannot_serve(endpoint: Any) -> None:
    router = APIRouter()
    with pytest.raises(TypeError, match="takes a body model, Request, authorization"):
        model_body.post(router, "/x")(endpoint)


async def test_refuses_dependencies_added_by_include_router() -> None:
    """FastAPI builds the handlers of an included router on its first request."""
    transport = httpx.ASGITransport(app=twin_app(prefix_dependencies=[Depends(needs_key)]))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        with pytest.raises(TypeError, match="/fast: a ModelBodyRoute"):
            await client.post("/api/plain", json={"trace_id": "t", "score": 1})


def test_the_single_writes_use_it() -> None:
    """The routes that carry the write-throughput target; the batches keep FastAPI's."""
    served = {
        (route.path, method): type(route)
        for router in (feedback_routes.router, trace_routes.router)
        for route in router.routes
        if isinstance(route, fastapi.routing.APIRoute)
        for method in route.methods
    }
    assert served[("/feedback", "POST")] is model_body.ModelBodyRoute
    assert served[("/trace", "POST")] is model_body.ModelBodyRoute
    assert served[("/feedback/batch", "POST")] is fastapi.routing.APIRoute
    assert served[("/trace/batch", "POST")] is fastapi.routing.APIRoute
