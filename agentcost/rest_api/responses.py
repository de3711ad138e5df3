"""JSON answers serialised by pydantic in one pass (Rust), for the write hot path.

A route that returns a model makes FastAPI validate it again against the response model and then
encode it with ``json.dumps``; the services' outputs are already valid, so the write routes hand
over bytes instead. Their ``response_model`` still documents the shape in the OpenAPI schema.
"""

from collections.abc import Sequence

from fastapi import Response
from pydantic import BaseModel, TypeAdapter

from agentcost.models import FeedbackPublic

_FEEDBACK_LIST = TypeAdapter(list[FeedbackPublic])


def model_response(model: BaseModel, status_code: int) -> Response:
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json")


def feedback_list_response(items: Sequence[FeedbackPublic], status_code: int) -> Response:
    return Response(
        _FEEDBACK_LIST.dump_json(list(items)),
        status_code=status_code,
        media_type="application/json",
    )
