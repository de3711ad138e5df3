"""API keys, the caller they identify, and signed end-user feedback tokens.

Keys look like ``ack_<id>_<secret>``: the id finds the row, only a SHA-256 of the high-entropy
secret is stored, and the comparison is constant-time. Feedback tokens are HMAC-signed claims
(org, trace, end user, expiry) that let a browser vote on one trace without holding a key.
"""

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import SecretStr
from sqlalchemy import Table, exists, select, update

from agentcost.db import Database
from agentcost.errors import Forbidden, NotFound, Unauthorized
from agentcost.models import (
    ApiKey,
    ApiKeyPublic,
    Organization,
    Scope,
    ServerSecret,
    utcnow,
)
from agentcost.services import ids
from agentcost.services.cursors import compact_json
from agentcost.services.sql import insert_for

api_keys: Table = ApiKey.__table__  # type: ignore[attr-defined]
organizations: Table = Organization.__table__  # type: ignore[attr-defined]
server_secrets: Table = ServerSecret.__table__  # type: ignore[attr-defined]

KEY_PREFIX = "ack_"
TOKEN_PREFIX = "aft_"
_TOKEN_SECRET_NAME = "feedback-token-hmac"
_DUMMY_HASH = hashlib.sha256(b"no such key").hexdigest()

# Which scopes satisfy a requirement: admin can do everything ingest and read can.
_GRANTS = {
    Scope.READ: {Scope.READ, Scope.ADMIN},
    Scope.INGEST: {Scope.INGEST, Scope.ADMIN},
    Scope.ADMIN: {Scope.ADMIN},
}


@dataclass(frozen=True, slots=True)
class FeedbackClaims:
    org_id: str
    trace_id: str
    user_id: str | None
    nonce: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an open local service, an API key, or an end user's feedback token."""

    org_id: str
    scope: Scope | None
    project: str | None = None
    key_id: str | None = None
    feedback: FeedbackClaims | None = None

    def require(self, needed: Scope) -> None:
        if self.feedback is not None:
            raise Forbidden("a feedback token may only submit user feedback on its own trace")
        if self.scope not in _GRANTS[needed]:
            raise Forbidden(f"this key has scope '{self.scope}'; this action needs '{needed}'")


def open_principal(org_id: str) -> Principal:
    """The caller when no key exists yet: the local, single-tenant setup of the guide."""
    return Principal(org_id=org_id, scope=Scope.ADMIN)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_key(
    db: Database, *, org_id: str, scope: Scope, project: str | None = None, name: str | None = None
) -> tuple[str, ApiKeyPublic]:
    """A new key for the org (created if new); the plain key is returned here and never again."""
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    now = utcnow()
    row = {
        "id": key_id,
        "org_id": org_id,
        "scope": scope.value,
        "project": project,
        "name": name,
        "secret_hash": _hash(secret),
        "created_at": now,
        "revoked_at": None,
    }
    async with db.write() as conn:
        await conn.execute(
            insert_for(db.dialect, organizations)
            .values(id=org_id, created_at=now)
            .on_conflict_do_nothing(index_elements=[organizations.c.id])
        )
        await conn.execute(api_keys.insert().values(**row))
    return f"{KEY_PREFIX}{key_id}_{secret}", ApiKeyPublic.model_validate(row)


async def list_keys(db: Database, *, org_id: str | None = None) -> list[ApiKeyPublic]:
    stmt = select(api_keys).order_by(api_keys.c.org_id, api_keys.c.created_at)
    if org_id is not None:
        stmt = stmt.where(api_keys.c.org_id == org_id)
    async with db.read() as conn:
        return [ApiKeyPublic.model_validate(r) for r in (await conn.execute(stmt)).mappings()]


async def revoke_key(
    db: Database, *, key_id: str, org_id: str | None = None, project: str | None = None
) -> ApiKeyPublic:
    """Revoke at once; a key outside the given org (or project) is reported as unknown."""
    where = [api_keys.c.id == key_id]
    if org_id is not None:
        where.append(api_keys.c.org_id == org_id)
    if project is not None:
        where.append(api_keys.c.project == project)
    async with db.write() as conn:
        await conn.execute(
            update(api_keys)
            .where(*where, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        row = (await conn.execute(select(api_keys).where(*where))).mappings().first()
    if row is None:
        raise NotFound("key", key_id)
    return ApiKeyPublic.model_validate(row)


async def any_key_exists(db: Database) -> bool:
    """Keys ever created, revoked ones included: revoking the last key must not open the door."""
    async with db.read() as conn:
        return bool((await conn.execute(select(exists().select_from(api_keys)))).scalar())


async def _verify(db: Database, key_id: str, digest: str) -> tuple[str, Principal]:
    """The key's stored hash and its caller, when the secret's digest matches and it is live."""
    async with db.read() as conn:
        row = (
            (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).mappings().first()
        )
    # Compare even for an unknown id, so timing does not tell which ids exist.
    matches = hmac.compare_digest(row["secret_hash"] if row else _DUMMY_HASH, digest)
    if row is None or not matches:
        raise Unauthorized("unknown API key")
    if row["revoked_at"] is not None:
        raise Unauthorized("this API key has been revoked")
    principal = Principal(
        org_id=row["org_id"], scope=Scope(row["scope"]), project=row["project"], key_id=key_id
    )
    return row["secret_hash"], principal


@dataclass(slots=True)
class _Verified:
    secret_hash: str
    principal: Principal
    checked_at: float


class KeyCache:
    """Keys verified against the database, trusted for ``recheck_seconds`` after each check.

    Without it every keyed request reads its key's row first, a round trip as costly as the
    request's share of its group commit. Each request still proves its secret (compared in
    constant time with the stored hash). A key revoked through this process is forgotten at
    once; one revoked elsewhere (the CLI, another worker) stops working within
    ``recheck_seconds``.
    """

    def __init__(self, recheck_seconds: float) -> None:
        self.recheck_seconds = recheck_seconds
        self._verified: dict[str, _Verified] = {}

    async def authenticate(self, db: Database, key: str) -> Principal:
        key_id, secret = _split_key(key)
        digest = _hash(secret)
        now = time.monotonic()
        known = self._verified.get(key_id)
        if known is not None and now - known.checked_at < self.recheck_seconds:
            if not hmac.compare_digest(known.secret_hash, digest):
                raise Unauthorized("unknown API key")
            return known.principal
        self._verified.pop(key_id, None)
        secret_hash, principal = await _verify(db, key_id, digest)
        self._verified[key_id] = _Verified(secret_hash, principal, now)
        return principal

    def forget(self, key_id: str) -> None:
        self._verified.pop(key_id, None)


def _split_key(key: str) -> tuple[str, str]:
    if not key.startswith(KEY_PREFIX):
        raise Unauthorized(f"malformed API key (expected {KEY_PREFIX}...)")
    key_id, sep, secret = key.removeprefix(KEY_PREFIX).partition("_")
    if not sep or len(key_id) != 16 or not secret or len(secret) > 100:
        raise Unauthorized(f"malformed API key (expected {KEY_PREFIX}...)")
    return key_id, secret


# ---------------------------------------------------------------------------------------------
# Feedback tokens


async def token_secret(db: Database, configured: SecretStr | None) -> bytes:
    """The configured secret, or one generated once and stored so every worker agrees."""
    if configured is not None:
        return configured.get_secret_value().encode()
    async with db.write() as conn:
        await conn.execute(
            insert_for(db.dialect, server_secrets)
            .values(name=_TOKEN_SECRET_NAME, value=secrets.token_urlsafe(48), created_at=utcnow())
            .on_conflict_do_nothing(index_elements=[server_secrets.c.name])
        )
        value = (
            await conn.execute(
                select(server_secrets.c.value).where(server_secrets.c.name == _TOKEN_SECRET_NAME)
            )
        ).scalar_one()
    return value.encode()


def issue_feedback_token(
    secret: bytes, *, org_id: str, trace_id: str, user_id: str | None, ttl_seconds: int
) -> tuple[str, datetime]:
    expires_at = (utcnow() + timedelta(seconds=ttl_seconds)).replace(microsecond=0)
    claims = {
        "o": org_id,
        "t": trace_id,
        "u": user_id,
        "n": ids.random_hex(8),
        "e": int(expires_at.timestamp()),
    }
    payload = _b64(compact_json(claims).encode())
    return f"{TOKEN_PREFIX}{payload}.{_sign(secret, payload)}", expires_at


def verify_feedback_token(secret: bytes, token: str) -> FeedbackClaims:
    payload, sep, signature = token.removeprefix(TOKEN_PREFIX).partition(".")
    if not sep or not hmac.compare_digest(_sign(secret, payload), signature):
        raise Unauthorized("feedback token is malformed or its signature does not match")
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        parsed = FeedbackClaims(
            org_id=str(claims["o"]),
            trace_id=str(claims["t"]),
            user_id=None if claims["u"] is None else str(claims["u"]),
            nonce=str(claims["n"]),
            expires_at=datetime.fromtimestamp(int(claims["e"]), tz=utcnow().tzinfo),
        )
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise Unauthorized("feedback token is malformed") from None
    if parsed.expires_at <= utcnow():
        raise Unauthorized("feedback token has expired")
    return parsed


def _sign(secret: bytes, payload: str) -> str:
    return _b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def vote_id(claims: FeedbackClaims) -> str:
    """One vote per (trace, end user): the same voter's next vote replaces this id's row.

    A token without an end-user id stands for one anonymous voter, identified by its nonce.
    """
    voter = f"user:{claims.user_id}" if claims.user_id is not None else f"token:{claims.nonce}"
    digest = hashlib.sha256(f"{claims.trace_id}\x00{voter}".encode()).hexdigest()[:32]
    return f"vote-{digest}"
