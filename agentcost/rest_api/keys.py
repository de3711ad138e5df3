"""Key management for admins of an organisation, the same operations as `agentcost keys`."""

from typing import Annotated

from fastapi import APIRouter, Path, status

from agentcost.models import ApiKeyCreate, ApiKeyCreated, ApiKeyPublic
from agentcost.rest_api.deps import Admin, AuthDep, DbDep
from agentcost.services import access, auth

router = APIRouter(prefix="/keys", tags=["keys"])

KeyId = Annotated[str, Path(min_length=1, max_length=32)]


@router.get("")
async def list_keys(db: DbDep, caller: Admin) -> list[ApiKeyPublic]:
    """The organisation's keys (a project admin sees its project's), never their secrets."""
    keys = await auth.list_keys(db, org_id=caller.org_id)
    return [k for k in keys if caller.project is None or k.project == caller.project]


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_key(body: ApiKeyCreate, db: DbDep, caller: Admin) -> ApiKeyCreated:
    """A new key in the caller's organisation; the key is in this answer only."""
    body = access.scoped_key_request(caller, body)
    key, info = await auth.create_key(
        db, org_id=caller.org_id, scope=body.scope, project=body.project, name=body.name
    )
    return ApiKeyCreated(key=key, **info.model_dump())


@router.delete("/{key_id}")
async def revoke_key(key_id: KeyId, db: DbDep, caller: Admin, state: AuthDep) -> ApiKeyPublic:
    """Revoke at once; another organisation's (or project's) key is reported as unknown."""
    revoked = await auth.revoke_key(db, key_id=key_id, org_id=caller.org_id, project=caller.project)
    state.keys.forget(key_id)
    return revoked
