"""Alembic environment: runs on the connection the service hands over (see agentcost.migrate)."""

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import agentcost.models  # noqa: F401  (registers the tables on SQLModel.metadata)

target_metadata = SQLModel.metadata


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_with_own_engine() -> None:
    """For `alembic revision --autogenerate` run by developers against AGENTCOST_DATABASE_URL."""
    import asyncio

    from agentcost.db import Database
    from agentcost.settings import get_settings

    async def run() -> None:
        db = Database.from_settings(get_settings())
        async with db.write() as conn:
            await conn.run_sync(run_migrations)
        await db.dispose()

    asyncio.run(run())


connection = context.config.attributes.get("connection")
if connection is None:
    run_with_own_engine()
else:
    run_migrations(connection)
