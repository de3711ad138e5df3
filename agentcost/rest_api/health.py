"""Liveness answers without the database (a slow DB must not get the process restarted);
readiness checks the database."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from agentcost import __version__
from agentcost.rest_api.deps import DbDep

router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok", "version": __version__}


@router.get("/ready", responses={503: {"description": "The database does not answer."}})
async def ready(db: DbDep) -> JSONResponse:
    try:
        await db.ping()
    except Exception as exc:  # any driver error means "not ready", never a 500
        return JSONResponse(
            {"status": "unavailable", "database": type(exc).__name__}, status_code=503
        )
    return JSONResponse({"status": "ok", "database": db.dialect})
