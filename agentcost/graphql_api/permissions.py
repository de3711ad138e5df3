"""Who may run which field: the same scopes as REST (read, ingest, admin), checked before the
resolver runs. Failures come back as GraphQL errors with code UNAUTHENTICATED or FORBIDDEN."""

from typing import Any

from strawberry.permission import BasePermission

from agentcost.models import Scope


class _Requires(BasePermission):
    scope: Scope

    def has_permission(self, source: Any, info: Any, **kwargs: Any) -> bool:
        info.context.caller.require(self.scope)  # raises Unauthorized or Forbidden with a reason
        return True


class CanRead(_Requires):
    scope = Scope.READ


class CanIngest(_Requires):
    scope = Scope.INGEST


class CanAdmin(_Requires):
    scope = Scope.ADMIN
