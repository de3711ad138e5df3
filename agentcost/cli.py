"""`agentcost serve | migrate | demo | import | export-openapi | export-schema | keys`."""

import asyncio
import codecs
import ipaddress
import json
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel, ValidationError

from agentcost.db import Database
from agentcost.errors import FieldError, InvalidInput, NotFound, field_errors
from agentcost.migrate import upgrade
from agentcost.models import FeedbackImport, Scope, TraceEvent
from agentcost.services import auth
from agentcost.settings import get_settings

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address [default: settings.host]")] = None,
    port: Annotated[int | None, typer.Option(help="Port [default: settings.port]")] = None,
    log_level: Annotated[str, typer.Option()] = "info",
    insecure: Annotated[
        bool, typer.Option(help="Serve without API keys on a non-loopback address.")
    ] = False,
) -> None:
    """Run the service (REST under /api, GraphQL at /graphql); migrates the database first.

    With no API key created the service is open, which is safe only on a loopback address: on
    any other address it refuses to start unless told --insecure.
    """
    import uvicorn

    settings = get_settings()
    host = host or settings.host
    keys_exist = _run(_keys_exist())
    if keys_exist:
        typer.echo("API keys exist: every request needs Authorization: Bearer <key>.", err=True)
    elif _is_loopback(host):
        typer.echo(
            f"No API key yet: open access, bound to loopback ({host}) only. "
            "Create one with `agentcost keys create`.",
            err=True,
        )
    elif insecure:
        typer.echo(f"WARNING: no API key and bound to {host}: anyone can read and write.", err=True)
    else:
        typer.echo(
            f"Refusing to serve on {host} without API keys: create one with "
            "`agentcost keys create --org ORG --scope admin`, bind to 127.0.0.1, "
            "or pass --insecure.",
            err=True,
        )
        raise typer.Exit(2)
    uvicorn.run(
        "agentcost.app:create_app",
        factory=True,
        host=host,
        port=port or settings.port,
        log_level=log_level,
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def _with_db(work: Callable[[Database], Awaitable[T]]) -> T:
    """Run against the configured database, migrated first, and release it afterwards."""
    db = Database.from_settings(get_settings())
    try:
        await upgrade(db)
        return await work(db)
    finally:
        await db.dispose()


async def _keys_exist() -> bool:
    return await _with_db(auth.any_key_exists)


@app.command()
def migrate(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Upgrade the configured database to a revision (the service does this on start too)."""

    async def run() -> None:
        db = Database.from_settings(get_settings())
        try:
            await upgrade(db, revision)
        finally:
            await db.dispose()

    _run(run())
    typer.echo(f"database at {revision}")


@app.command()
def demo(
    traces: Annotated[int, typer.Option(min=1, max=1_000_000, help="Traces to create.")] = 2000,
    seed: Annotated[int, typer.Option(help="The same seed gives the same data set.")] = 42,
) -> None:
    """Fill the configured database with a realistic demo data set (migrates first)."""
    from agentcost.demo import seed_demo

    settings = get_settings()
    stats = _run(
        _with_db(lambda db: seed_demo(db, org_id=settings.default_org, traces=traces, seed=seed))
    )
    typer.echo(stats.describe())
    typer.echo(f"Try: curl localhost:{settings.port}/api/feedback/quality/models")


@app.command("import")
def import_(
    traces: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="AgentCost events, JSON Lines.")
    ] = None,
    feedback: Annotated[
        Path | None,
        typer.Option(
            exists=True, dir_okay=False, help="Feedback items (may hold created_at), JSON Lines."
        ),
    ] = None,
    org: Annotated[str | None, typer.Option(help="Organisation [default: settings]")] = None,
) -> None:
    """Import history in one transaction: all lines or, on any bad line, none (migrates first).

    Each line is one object, as POST /api/trace or POST /api/feedback takes it; feedback may
    also say when it was given (created_at). Roll-ups are computed once for the whole import,
    so this is much faster than the batch routes for a backfill.
    """
    from agentcost.services.imports import import_history

    if traces is None and feedback is None:
        typer.echo("nothing to import: give --traces, --feedback or both", err=True)
        raise typer.Exit(2)
    org_id = org if org is not None else get_settings().default_org
    if not org_id.strip() or len(org_id) > 64:
        typer.echo("--org must be 1 to 64 characters, not blank", err=True)
        raise typer.Exit(2)
    try:
        result = _run(
            _with_db(
                lambda db: import_history(
                    db,
                    org_id=org_id,
                    events=_lines(traces, TraceEvent),
                    feedback=_lines(feedback, FeedbackImport),
                )
            )
        )
    except InvalidInput as exc:
        for error in exc.errors:
            typer.echo(f"error: {error.field}: {error.reason}", err=True)
        typer.echo("nothing was imported", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"imported {result.calls:,} calls ({result.duplicate_calls:,} already stored) and "
        f"{result.feedback:,} feedback items into org {org_id}"
    )


def _lines(path: Path | None, model: type[M]) -> Iterator[M]:
    """The file's objects, read as the import goes; a bad line stops it, named by number."""
    if path is None:
        return
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if number == 1:  # editors on Windows may start a UTF-8 file with a byte-order mark
                line = line.removeprefix(codecs.BOM_UTF8)
            if not line.strip():
                continue
            try:
                yield model.model_validate_json(line)
            except ValidationError as exc:
                where = f"{path.name} line {number}"
                raise InvalidInput(
                    [
                        FieldError(f"{where}: {e.field}" if e.field else where, e.reason)
                        for e in field_errors(exc)
                    ]
                ) from None


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


keys_app = typer.Typer(no_args_is_help=True, help="API keys: create, list, revoke.")
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def keys_create(
    org: Annotated[str, typer.Option(help="Organisation (tenant) the key belongs to.")],
    scope: Annotated[Scope, typer.Option(help="ingest: write; read: query; admin: everything.")],
    project: Annotated[str | None, typer.Option(help="Restrict the key to one project.")] = None,
    name: Annotated[str | None, typer.Option(help="A label to recognise the key by.")] = None,
) -> None:
    """Print a new key alone on stdout, once; only its hash is stored."""
    key, info = _run(
        _with_db(
            lambda db: auth.create_key(db, org_id=org, scope=scope, project=project, name=name)
        )
    )
    typer.echo(f"created key {info.id} (org {info.org_id}, scope {info.scope})", err=True)
    typer.echo(key)


@keys_app.command("list")
def keys_list(org: Annotated[str | None, typer.Option()] = None) -> None:
    """Keys with their id, org, scope, project and state (never the secret)."""
    for key in _run(_with_db(lambda db: auth.list_keys(db, org_id=org))):
        state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
        typer.echo(
            f"{key.id}  org={key.org_id}  scope={key.scope}  project={key.project or '-'}  "
            f"name={key.name or '-'}  {state}"
        )


@keys_app.command("revoke")
def keys_revoke(key_id: str) -> None:
    """Revoke a key at once; requests with it answer 401 from then on."""
    try:
        info = _run(_with_db(lambda db: auth.revoke_key(db, key_id=key_id)))
    except NotFound:
        typer.echo(f"no key with id {key_id}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"revoked {info.id} (org {info.org_id})")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
