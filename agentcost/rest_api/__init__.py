"""REST adapter: the guide's routes and AgentCost-compatible ingestion, thin over services."""

from fastapi import APIRouter

from agentcost.rest_api import feedback, health, keys, traces
from agentcost.rest_api.errors import install_error_handlers

router = APIRouter(prefix="/api")
router.include_router(health.router)
router.include_router(traces.router)
router.include_router(feedback.router)
router.include_router(keys.router)

__all__ = ["install_error_handlers", "router"]
