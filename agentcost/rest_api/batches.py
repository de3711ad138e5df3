"""The OpenAPI description of batch bodies.

Batch routes parse their body themselves (errors.parse_batch, so every bad item is reported with
its index), so FastAPI cannot describe it; this states the two accepted shapes once for both.
"""

from typing import Any


def batch_body(schema: str, wrapper: str) -> dict[str, Any]:
    """A list of ``schema`` items, or ``{wrapper: [...]}``."""
    items = {"type": "array", "items": {"$ref": f"#/components/schemas/{schema}"}}
    wrapped = {"type": "object", "properties": {wrapper: items}, "required": [wrapper]}
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"oneOf": [items, wrapped]}}},
        }
    }
