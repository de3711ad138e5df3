"""Dependencies every route shares: the database and the authenticated caller."""

import time
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Header, Request

from agentcost.db import Database
from agentcost.errors import Unauthorized
from agentcost.models import Scope
from agentcost.rate_limit import RateLimiter
from agentcost.services import auth
from agentcost.services.auth import Principal
from agentcost.settings import Settings


@dataclass
class AuthState:
    """Per-app auth facts worth caching: whether keys exist, the token secret, the limiter.

    "Keys exist" is cached for good once true (keys are never deleted, only revoked); while
    false it is re-read at most every ``open_mode_recheck_seconds``, so a key created from the
    CLI ends open access within that time without a query on every request.
    """

    settings: Settings
    _keys_exist: bool = False
    _checked_at: float = field(default=-1e9)
    _token_secret: bytes | None = None
    limiter: RateLimiter | None = None
    keys: auth.KeyCache = field(init=False)

    def __post_init__(self) -> None:
        self.keys = auth.KeyCache(self.settings.key_recheck_seconds)
        if self.settings.rate_limit_per_minute:
            self.limiter = RateLimiter(self.settings.rate_limit_per_minute)

    async def keys_exist(self, db: Database) -> bool:
        now = time.monotonic()
        recheck = self.settings.open_mode_recheck_seconds
        if not self._keys_exist and now - self._checked_at >= recheck:
            # Marked before the query, so concurrent requests do not all run it at once.
            self._checked_at = now
            self._keys_exist = await auth.any_key_exists(db)
        return self._keys_exist

    async def token_secret(self, db: Database) -> bytes:
        if self._token_secret is None:
            self._token_secret = await auth.token_secret(db, self.settings.secret)
        return self._token_secret


# Async although they never await: FastAPI runs plain-def dependencies in a worker thread, a
# thread hop per request on the write hot path.
async def get_db(request: Request) -> Database:
    return request.app.state.db


async def get_auth(request: Request) -> AuthState:
    return request.app.state.auth


async def authenticate(db: Database, state: AuthState, authorization: str | None) -> Principal:
    """The caller of a REST or GraphQL request, from its Authorization header."""
    if authorization is None:
        if await state.keys_exist(db):
            raise Unauthorized("this service requires an API key: Authorization: Bearer <key>")
        return auth.open_principal(state.settings.default_org)
    scheme, _, credential = authorization.strip().partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        raise Unauthorized("expected the header Authorization: Bearer <key or feedback token>")
    if credential.startswith(auth.TOKEN_PREFIX):
        claims = auth.verify_feedback_token(await state.token_secret(db), credential)
        principal = Principal(org_id=claims.org_id, scope=None, feedback=claims)
        caller = f"token:{claims.nonce}"
    else:
        principal = await state.keys.authenticate(db, credential)
        caller = f"key:{principal.key_id}"
    if state.limiter is not None:
        state.limiter.check(caller)
    return principal


Authorization = Annotated[str | None, Header()]


async def get_principal(request: Request, authorization: Authorization = None) -> Principal:
    """A dependency of most routes. The two single writes (``POST /api/feedback`` and ``POST
    /api/trace``) read the database and the caller by plain calls instead (this, or
    ``authenticate`` where the route holds the auth state anyway), and declare
    ``authorization`` as a parameter of their own so OpenAPI describes the header as on every
    route: FastAPI's solving of two dependencies per request was 13 % of a single vote's CPU,
    on the routes that carry the service's throughput target. FastAPI checks their body before
    they run, so there a malformed body is answered 422 before the caller is checked."""
    return await authenticate(await get_db(request), await get_auth(request), authorization)


def requires(scope: Scope):  # type: ignore[no-untyped-def]
    async def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        principal.require(scope)
        return principal

    return check


DbDep = Annotated[Database, Depends(get_db)]
AuthDep = Annotated[AuthState, Depends(get_auth)]
Caller = Annotated[Principal, Depends(get_principal)]
Reader = Annotated[Principal, Depends(requires(Scope.READ))]
Writer = Annotated[Principal, Depends(requires(Scope.INGEST))]
Admin = Annotated[Principal, Depends(requires(Scope.ADMIN))]
