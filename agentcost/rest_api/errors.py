"""One error shape for REST: 422 lists ``{field, reason}`` (and ``index`` in batches), 404 says
what was not found, anything unexpected is logged and answered without internals."""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from agentcost.errors import (
    FieldError,
    Forbidden,
    InvalidInput,
    NotFound,
    RateLimited,
    Unauthorized,
    field_errors_from_list,
)

log = logging.getLogger("agentcost.rest")

_LOCATIONS = ("body", "query", "path", "header")


def _render(errors: list[FieldError]) -> JSONResponse:
    detail: list[dict[str, Any]] = []
    for e in errors:
        item: dict[str, Any] = {"field": e.field, "reason": e.reason, "msg": str(e)}
        if e.index is not None:
            item["index"] = e.index
        detail.append(item)
    return JSONResponse({"detail": detail}, status_code=422)


async def _request_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
    errors = []
    for raw, err in zip(exc.errors(), field_errors_from_list(exc.errors()), strict=True):
        location, _, field = err.field.partition(".")
        if raw["type"] == "json_invalid":
            field = "body"  # pydantic's location is a character offset, no field
        elif location not in _LOCATIONS:
            field = err.field
        elif not field:
            field = location  # the whole body (or query) is wrong: name it, never ""
        errors.append(FieldError(field, err.reason))
    return _render(errors)


async def _invalid(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidInput)
    return _render(exc.errors)


async def _not_found(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=404)


async def _unauthorized(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(
        {"detail": str(exc)},
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


async def _forbidden(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=403)


async def _rate_limited(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RateLimited)
    return JSONResponse(
        {"detail": str(exc)}, status_code=429, headers={"Retry-After": str(exc.retry_after)}
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"detail": "internal error"}, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _request_validation)  # type: ignore[arg-type]
    app.add_exception_handler(InvalidInput, _invalid)
    app.add_exception_handler(NotFound, _not_found)
    app.add_exception_handler(Unauthorized, _unauthorized)
    app.add_exception_handler(Forbidden, _forbidden)
    app.add_exception_handler(RateLimited, _rate_limited)
    app.add_exception_handler(Exception, _unexpected)
