"""`agentcost import`: JSON Lines history in, all of it or, on a bad line, none of it."""

import asyncio
import codecs
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner, Result

from agentcost.cli import app
from agentcost.db import Database
from agentcost.services.sql import calls, feedback, traces


@pytest.fixture
def env(user_env: str) -> str:
    return user_env


def write_lines(path: Path, *objects: Any) -> Path:
    path.write_text("".join(o if isinstance(o, str) else json.dumps(o) + "\n" for o in objects))
    return path


def counts(url: str) -> dict[str, int]:
    async def count() -> dict[str, int]:
        db = Database(url)
        try:
            async with db.read() as conn:
                return {
                    table.name: (
                        await conn.execute(select(func.count()).select_from(table))
                    ).scalar_one()
                    for table in (traces, calls, feedback)
                }
        finally:
            await db.dispose()

    return asyncio.run(count())


EVENTS = (
    {"trace_id": "t1", "call_id": "c1", "model": "gpt-4.1-mini", "cost": 0.002},
    {"trace_id": "t1", "call_id": "c2", "model": "gpt-4.1", "cost": 0.01},
)


def import_events_and(tmp_path: Path, *feedback_lines: Any) -> Result:
    """`agentcost import` of EVENTS and these feedback lines, as files in ``tmp_path``."""
    return CliRunner().invoke(
        app,
        [
            "import",
            "--traces",
            str(write_lines(tmp_path / "traces.jsonl", *EVENTS)),
            "--feedback",
            str(write_lines(tmp_path / "feedback.jsonl", *feedback_lines)),
        ],
    )


def test_import_stores_every_line(env: str, tmp_path: Path) -> None:
    given_at = "2024-03-05T12:30:00Z"
    result = import_events_and(
        tmp_path,
        {"id": "f1", "trace_id": "t1", "score": 1, "created_at": given_at},
        "\n",  # blank lines are skipped
        {"trace_id": "t1", "score": -1, "tags": ["backfill"]},
    )
    assert result.exit_code == 0, result.output
    assert "imported 2 calls (0 already stored) and 2 feedback items into org default" in (
        result.output
    )
    assert counts(env) == {"traces": 1, "calls": 2, "feedback": 2}

    async def dated() -> datetime:
        db = Database(env)
        try:
            async with db.read() as conn:
                found = await conn.execute(
                    select(feedback.c.created_at).where(feedback.c.id == "f1")
                )
                return found.scalar_one()
        finally:
            await db.dispose()

    stored = asyncio.run(dated())
    assert stored.replace(tzinfo=stored.tzinfo or UTC) == datetime(2024, 3, 5, 12, 30, tzinfo=UTC)

    again = CliRunner().invoke(
        app, ["import", "--traces", str(tmp_path / "traces.jsonl"), "--org", "default"]
    )
    assert again.exit_code == 0, again.output
    assert "imported 0 calls (2 already stored)" in again.output
    assert counts(env) == {"traces": 1, "calls": 2, "feedback": 2}


def test_a_byte_order_mark_is_not_part_of_the_first_line(env: str, tmp_path: Path) -> None:
    path = tmp_path / "traces.jsonl"
    path.write_bytes(codecs.BOM_UTF8 + "".join(json.dumps(e) + "\n" for e in EVENTS).encode())
    result = CliRunner().invoke(app, ["import", "--traces", str(path)])
    assert result.exit_code == 0, result.output
    assert counts(env) == {"traces": 1, "calls": 2, "feedback": 0}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            {"trace_id": "t1", "score": 2},
            "feedback.jsonl line 2: score: must be one of the integers",
        ),
        ("{not json\n", "feedback.jsonl line 2: body is not valid JSON"),
        (
            {"trace_id": "t1", "score": 1, "created_at": "2999-01-01T00:00:00Z"},
            "feedback.jsonl line 2: created_at: must not be in the future",
        ),
        ({"trace_id": "t1", "score": 1, "stars": 5}, "feedback.jsonl line 2: stars: unknown field"),
    ],
)
def test_a_bad_line_imports_nothing(env: str, tmp_path: Path, line: Any, message: str) -> None:
    result = import_events_and(tmp_path, {"trace_id": "t1", "score": 1}, line)
    assert result.exit_code == 1
    assert message in result.output
    assert "nothing was imported" in result.output
    assert counts(env) == {"traces": 0, "calls": 0, "feedback": 0}


def test_an_import_needs_a_file_and_a_valid_org(env: str, tmp_path: Path) -> None:
    nothing = CliRunner().invoke(app, ["import"])
    assert nothing.exit_code == 2
    assert "give --traces, --feedback or both" in nothing.output
    path = str(write_lines(tmp_path / "traces.jsonl", *EVENTS))
    blank = CliRunner().invoke(app, ["import", "--traces", path, "--org", " "])
    assert blank.exit_code == 2
    assert "--org must be 1 to 64 characters" in blank.output
    missing = CliRunner().invoke(app, ["import", "--traces", str(tmp_path / "nope.jsonl")])
    assert missing.exit_code == 2
    assert "does not exist" in missing.output
