"""Adapter-neutral errors: services raise these, REST/GraphQL/Python each render them their way."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class FieldError:
    """One reason an input was refused; ``index`` is set for items of a batch."""

    field: str
    reason: str
    index: int | None = None

    def __str__(self) -> str:
        where = self.field if self.index is None else f"[{self.index}].{self.field}"
        return f"{where}: {self.reason}" if where else self.reason


class AgentCostError(Exception):
    """Base of every expected failure; anything else is a bug and is masked by the adapters."""


class InvalidInput(AgentCostError, ValueError):
    """Subclasses ValueError so the Python API raises what the guide's users expect."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(str(e) for e in self.errors))

    @classmethod
    def single(cls, field: str, reason: str) -> "InvalidInput":
        return cls([FieldError(field, reason)])


class NotFound(AgentCostError, LookupError):
    def __init__(self, kind: str, key: str) -> None:
        self.kind = kind
        self.key = key
        super().__init__(f"{kind} {key!r} not found")


def field_errors(exc: ValidationError, *, index: int | None = None) -> list[FieldError]:
    """Turn pydantic's errors into field/reason pairs with the messages our validators wrote."""
    return field_errors_from_list(exc.errors(include_url=False, include_input=False), index=index)


def field_errors_from_list(errors: Sequence[Any], *, index: int | None = None) -> list[FieldError]:
    return [FieldError(_dotted(err["loc"]), _reason(err), index) for err in errors]


def _dotted(loc: Iterable[str | int]) -> str:
    return ".".join(str(part) for part in loc)


def _reason(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown field"
    if err["type"] == "json_invalid":
        return f"body is not valid JSON ({err.get('ctx', {}).get('error', 'malformed')})"
    msg: str = err["msg"]
    # Our own validators raise ValueError; pydantic prefixes those with "Value error, ".
    return msg.removeprefix("Value error, ")


def parse(model: type[M], data: Any, *, index: int | None = None) -> M:
    """Validate input for any adapter; failures become InvalidInput with field/reason pairs."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(field_errors(exc, index=index)) from None


MAX_BATCH = 10_000


@cache
def _list_adapter(model: type[M]) -> TypeAdapter[list[M]]:
    return TypeAdapter(list[model])  # type: ignore[valid-type]


def parse_batch(model: type[M], raw: Any, *, wrapper: str) -> list[M]:
    """A batch body, a list or ``{wrapper: [...]}``; every bad item is reported with its index."""
    if isinstance(raw, dict) and set(raw) == {wrapper}:
        raw = raw[wrapper]
    if not isinstance(raw, list):
        raise InvalidInput.single(wrapper, f'must be a list or {{"{wrapper}": [...]}}')
    if not 1 <= len(raw) <= MAX_BATCH:
        raise InvalidInput.single(wrapper, f"must hold between 1 and {MAX_BATCH} items")
    try:  # one pass in pydantic's core; a third faster than item by item
        return _list_adapter(model).validate_python(raw)
    except ValidationError:
        pass  # validate item by item below, so every reason names its item as it always has
    items: list[M] = []
    errors: list[FieldError] = []
    for index, item in enumerate(raw):
        try:
            items.append(parse(model, item, index=index))
        except InvalidInput as exc:
            errors += exc.errors
    if errors:
        raise InvalidInput(errors)
    return items


class Unauthorized(AgentCostError):
    """No usable credential (missing, malformed, unknown, revoked, expired, tampered)."""


class Forbidden(AgentCostError):
    """A valid credential that does not allow this action."""


class RateLimited(AgentCostError):
    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(f"rate limit exceeded; retry after {retry_after} s")
