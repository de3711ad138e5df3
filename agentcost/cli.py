"""`agentcost serve | migrate | demo | export-openapi | export-schema`."""

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer

from agentcost.settings import get_settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address [default: settings.host]")] = None,
    port: Annotated[int | None, typer.Option(help="Port [default: settings.port]")] = None,
    log_level: Annotated[str, typer.Option()] = "info",
) -> None:
    """Run the service (REST under /api, GraphQL at /graphql); migrates the database first."""
    import uvicorn

    settings = get_settings()
    uvicorn.run(
        "agentcost.app:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        log_level=log_level,
    )


@app.command()
def migrate(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Upgrade the configured database to a revision (the service does this on start too)."""
    from agentcost.db import Database
    from agentcost.migrate import upgrade

    async def run() -> None:
        db = Database.from_settings(get_settings())
        try:
            await upgrade(db, revision)
        finally:
            await db.dispose()

    asyncio.run(run())
    typer.echo(f"database at {revision}")


@app.command()
def demo(
    traces: Annotated[int, typer.Option(min=1, max=1_000_000, help="Traces to create.")] = 2000,
    seed: Annotated[int, typer.Option(help="The same seed gives the same data set.")] = 42,
) -> None:
    """Fill the configured database with a realistic demo data set (migrates first)."""
    from agentcost.db import Database
    from agentcost.demo import DemoStats, seed_demo
    from agentcost.migrate import upgrade

    settings = get_settings()

    async def run() -> DemoStats:
        db = Database.from_settings(settings)
        try:
            await upgrade(db)
            return await seed_demo(db, org_id=settings.default_org, traces=traces, seed=seed)
        finally:
            await db.dispose()

    typer.echo(asyncio.run(run()).describe())
    typer.echo(f"Try: curl localhost:{settings.port}/api/feedback/quality/models")


@app.command("export-openapi")
def export_openapi(
    path: Annotated[Path, typer.Option(help="Where to write the OpenAPI document.")] = Path(
        "rest/openapi.json"
    ),
) -> None:
    """Write the REST contract generated from the app (committed as rest/openapi.json)."""
    path.write_text(openapi_json())
    typer.echo(f"wrote {path}")


def openapi_json() -> str:
    from agentcost.app import create_app

    return json.dumps(create_app().openapi(), indent=2, sort_keys=True) + "\n"


@app.command("export-schema")
def export_schema(
    path: Annotated[Path, typer.Option(help="Where to write the GraphQL SDL.")] = Path(
        "schema.graphql"
    ),
) -> None:
    """Write the GraphQL SDL generated from the code-first schema (committed as schema.graphql)."""
    path.write_text(schema_sdl())
    typer.echo(f"wrote {path}")


def schema_sdl() -> str:
    from strawberry.printer import print_schema

    from agentcost.graphql_api import schema

    return print_schema(schema) + "\n"


def main() -> None:
    app()
