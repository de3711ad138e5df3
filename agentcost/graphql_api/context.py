"""The typed per-request context every resolver receives."""

from dataclasses import dataclass

import strawberry
from fastapi import Request
from strawberry.fastapi import BaseContext

from agentcost.db import Database
from agentcost.graphql_api.dataloaders import Loaders, create_loaders


@dataclass
class Context(BaseContext):
    """The database, the caller's organisation, and this request's own DataLoaders."""

    db: Database
    org_id: str
    loaders: Loaders

    @classmethod
    def create(cls, db: Database, org_id: str) -> "Context":
        return cls(db=db, org_id=org_id, loaders=create_loaders(db, org_id))


Info = strawberry.Info[Context, None]


async def get_context(request: Request) -> Context:
    """FastAPI dependency: without auth everything lives in the default organisation."""
    return Context.create(request.app.state.db, request.app.state.settings.default_org)
