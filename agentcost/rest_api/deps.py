"""Dependencies every route shares: the database and the caller's organisation."""

from typing import Annotated

from fastapi import Depends, Request

from agentcost.db import Database


def get_db(request: Request) -> Database:
    return request.app.state.db


def get_org(request: Request) -> str:
    """Without auth everything lives in one organisation (DESIGN.md: ``default``)."""
    return request.app.state.settings.default_org


DbDep = Annotated[Database, Depends(get_db)]
OrgDep = Annotated[str, Depends(get_org)]
