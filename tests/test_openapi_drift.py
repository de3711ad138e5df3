"""The committed REST contract matches the app, and nothing shadows graphql-core."""

import json
from pathlib import Path

from agentcost.cli import openapi_json

ROOT = Path(__file__).resolve().parents[1]


def test_committed_openapi_matches_the_app() -> None:
    committed = (ROOT / "rest" / "openapi.json").read_text()
    generated = openapi_json()
    # Compare as data first for a readable diff, then byte for byte (the file is generated).
    assert json.loads(committed) == json.loads(generated), (
        "rest/openapi.json is stale: run `agentcost export-openapi`"
    )
    assert committed == generated


def test_openapi_documents_every_route_of_the_guide() -> None:
    paths = json.loads(openapi_json())["paths"]
    for path, method in [
        ("/api/feedback", "post"),
        ("/api/feedback", "get"),
        ("/api/feedback/batch", "post"),
        ("/api/feedback/summary", "get"),
        ("/api/feedback/quality/models", "get"),
        ("/api/feedback/quality/model/{model}", "get"),
        ("/api/feedback/quality/prompt/{prompt_id}", "get"),
        ("/api/feedback/trace/{trace_id}", "get"),
        ("/api/feedback/trace/{trace_id}/score", "get"),
        ("/api/feedback/{feedback_id}", "get"),
        ("/api/feedback/{feedback_id}", "patch"),
        ("/api/feedback/{feedback_id}", "delete"),
        ("/api/trace", "post"),
        ("/api/trace/batch", "post"),
        ("/api/traces", "get"),
        ("/api/traces/{trace_id}", "get"),
        ("/api/health", "get"),
        ("/api/ready", "get"),
    ]:
        assert method in paths.get(path, {}), (method, path)


def test_no_python_package_named_graphql() -> None:
    graphql_dir = ROOT / "graphql"
    assert not (graphql_dir / "__init__.py").exists()
    assert list(graphql_dir.rglob("*.py")) == []
    assert not (ROOT / "agentcost" / "graphql").exists()
    assert not (ROOT / "agentcost" / "graphql.py").exists()
