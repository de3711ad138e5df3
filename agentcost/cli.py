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


def main() -> None:
    app()
