"""Bring a database to the current schema with Alembic, from the service, the CLI or a script.

Migrations (not ``create_all``) build every schema, so an existing database of an older version is
upgraded in place. Concurrent starters (several workers, a script beside the server) serialise on
the write lock: SQLite's ``BEGIN IMMEDIATE`` or a PostgreSQL advisory lock.
"""

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

from agentcost.db import Database

_SCRIPTS = Path(__file__).parent / "migrations"
_LOCK_KEY = 0x61676E74  # any constant shared by all agentcost processes


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    return config


async def upgrade(db: Database, revision: str = "head") -> None:
    async with db.write() as conn:
        if not db.is_sqlite:
            await conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_LOCK_KEY})")
        await conn.run_sync(_upgrade, revision)


def _upgrade(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)
