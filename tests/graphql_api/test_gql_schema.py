"""The committed SDL and the operation documents in graphql/ stay true to the code."""

from pathlib import Path
from typing import Any

import pytest
from graphql import parse, validate
from typer.testing import CliRunner

from agentcost.cli import app as cli
from agentcost.cli import schema_sdl
from agentcost.graphql_api import schema

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = ROOT / "graphql"


def test_committed_schema_matches_the_code() -> None:
    committed = (ROOT / "schema.graphql").read_text()
    assert committed == schema_sdl(), "schema.graphql is stale: run `agentcost export-schema`"


def test_export_schema_command_writes_the_sdl(tmp_path: Path) -> None:
    target = tmp_path / "schema.graphql"
    result = CliRunner().invoke(cli, ["export-schema", "--path", str(target)])
    assert result.exit_code == 0, result.output
    assert target.read_text() == schema_sdl()
    assert "type Query {" in target.read_text()


def test_schema_keeps_the_contract_names() -> None:
    sdl = schema_sdl()
    for line in (
        "node(",
        "trace(traceId: String!): Trace",
        "traceScore(traceId: String!): TraceScore!",
        "modelQuality(",
        "promptQuality(",
        "submitFeedback(input: FeedbackInput!): SubmitFeedbackResult!",
        "enum FeedbackSource {",
        "  HUMAN_REVIEW",
        "scalar DateTime",
    ):
        assert line in sdl, line
    traces = schema_sdl().split("  traces(", 1)[1].split("): ", 1)[1]
    assert traces.startswith("TraceConnection!")


def test_graphql_folder_holds_documents_only() -> None:
    files = sorted(p.name for p in DOCUMENTS.iterdir())
    assert "__init__.py" not in files
    assert [f for f in files if not f.endswith(".graphql")] == []
    assert {
        "TraceList.graphql",
        "TraceDetail.graphql",
        "QualityDashboard.graphql",
        "SubmitFeedback.graphql",
        "UpdateFeedback.graphql",
        "DeleteFeedback.graphql",
    } <= set(files)


@pytest.mark.parametrize("document", sorted(DOCUMENTS.glob("*.graphql")), ids=lambda p: p.stem)
def test_document_validates_against_the_schema(document: Path) -> None:
    errors = validate(schema._schema, parse(document.read_text()))
    assert errors == []


def check_trace_list(data: dict[str, Any]) -> None:
    edges = data["traces"]["edges"]
    assert [e["node"]["traceId"] for e in edges] == ["t2", "t1"]
    assert data["traces"]["pageInfo"]["hasNextPage"] is False
    t1 = edges[1]["node"]
    assert sorted(f["feedbackId"] for f in t1["feedback"]) == ["f1", "f2", "f3"]
    assert t1["score"] == {"total": 3, "score": 0.333}


def check_trace_detail(data: dict[str, Any]) -> None:
    trace = data["trace"]
    assert (trace["traceId"], trace["model"], trace["callCount"]) == ("t1", "gpt-4.1", 2)
    assert [c["callId"] for c in trace["calls"]] == ["c1", "c2"]
    assert len(trace["feedback"]) == 3
    assert trace["score"]["positive"] == 2


def check_dashboard(data: dict[str, Any]) -> None:
    assert data["feedbackSummary"]["totalFeedback"] == 6
    assert data["feedbackSummary"]["unknownTraceFeedback"] == 1
    assert data["qualityByModel"][0]["model"] == "gpt-4.1"
    assert sum(m["totalFeedback"] for m in data["qualityByModel"]) == 5


def check_prompt(data: dict[str, Any]) -> None:
    assert [(v["version"], v["totalFeedback"]) for v in data["promptQuality"]] == [(1, 3), (2, 1)]


def check_submit(data: dict[str, Any]) -> None:
    result = data["submitFeedback"]
    assert result["__typename"] == "SubmitFeedbackPayload"
    assert result["created"] is True
    assert (result["feedback"]["feedbackId"], result["feedback"]["score"]) == ("new", 1)


def check_update(data: dict[str, Any]) -> None:
    assert data["updateFeedback"]["__typename"] == "Feedback"
    assert (data["updateFeedback"]["score"], data["updateFeedback"]["comment"]) == (-1, "meh")


def check_delete(data: dict[str, Any]) -> None:
    assert data["deleteFeedback"] == {"__typename": "DeleteFeedbackPayload", "feedbackId": "f2"}


RUNS = {
    "TraceList": ({"first": 5, "filter": {"project": "alpha"}}, check_trace_list),
    "TraceDetail": ({"traceId": "t1"}, check_trace_detail),
    "QualityDashboard": ({}, check_dashboard),
    "PromptQuality": ({"promptId": "support"}, check_prompt),
    "SubmitFeedback": ({"input": {"traceId": "t3", "score": 1, "id": "new"}}, check_submit),
    "UpdateFeedback": ({"id": "f1", "input": {"score": -1, "comment": "meh"}}, check_update),
    "DeleteFeedback": ({"id": "f2"}, check_delete),
}


def test_every_document_has_a_run() -> None:
    assert {p.stem for p in DOCUMENTS.glob("*.graphql")} == set(RUNS)


@pytest.mark.anyio
@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize("name", sorted(RUNS))
async def test_document_runs_on_the_seeded_database(gql_data: Any, name: str) -> None:
    variables, check = RUNS[name]
    check(await gql_data((DOCUMENTS / f"{name}.graphql").read_text(), variables))
