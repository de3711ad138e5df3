"""The typed per-request context every resolver receives."""

from collections.abc import Iterable
from dataclasses import dataclass

import strawberry
from fastapi import Request
from strawberry.types.nodes import SelectedField, Selection

from agentcost.db import Database
from agentcost.errors import Unauthorized
from agentcost.graphql_api.dataloaders import Loaders
from agentcost.rest_api.deps import authenticate, get_auth, get_db
from agentcost.services.auth import Principal


@dataclass
class Context:
    """The database, the authenticated caller, and this request's own DataLoaders."""

    db: Database
    principal: Principal | None
    token_secret: bytes | None = None
    token_ttl: int = 0
    _loaders: Loaders | None = None

    @property
    def caller(self) -> Principal:
        if self.principal is None:  # only the GraphiQL page is served without a caller
            raise Unauthorized("this request carries no credentials")
        return self.principal

    @property
    def org_id(self) -> str:
        return self.caller.org_id

    @property
    def loaders(self) -> Loaders:
        if self._loaders is None:
            self._loaders = Loaders(self.db, self.caller)
        return self._loaders

    @classmethod
    def create(cls, db: Database, principal: Principal) -> "Context":
        return cls(db=db, principal=principal)


Info = strawberry.Info[Context, None]


def _is_ide_page(request: Request) -> bool:
    """GraphiQL's own page holds no data, so a browser may load it before choosing a key."""
    return (
        request.method == "GET"
        and "query" not in request.query_params
        and "text/html" in request.headers.get("accept", "")
    )


async def get_context(request: Request) -> Context:
    """The same authentication as REST; failures answer 401 like REST (the app's error
    handlers see the exception)."""
    db = await get_db(request)
    if _is_ide_page(request):
        return Context(db=db, principal=None)
    state = await get_auth(request)
    principal = await authenticate(db, state, request.headers.get("authorization"))
    return Context(
        db=db,
        principal=principal,
        token_secret=await state.token_secret(db),
        token_ttl=state.settings.feedback_token_ttl,
    )


def selected_under(info: Info, *path: str) -> set[str]:
    """Names of the fields the query asks for under ``path`` of the current field (fragments
    and inline fragments included), so a resolver can load ahead what its children will need."""
    level = [
        child for field in _fields(info.selected_fields) for child in _fields(field.selections)
    ]
    for name in path:
        level = [
            child for field in level if field.name == name for child in _fields(field.selections)
        ]
    return {field.name for field in level}


def _fields(selections: Iterable[Selection]) -> list[SelectedField]:
    found: list[SelectedField] = []
    for selection in selections:
        if isinstance(selection, SelectedField):
            found.append(selection)
        else:
            found += _fields(selection.selections)
    return found
