"""Settings read once from the environment (prefix ``AGENTCOST_``) or a ``.env`` file.

The service, the CLI and the Python API all read the same settings, so a script using
``get_feedback_service()`` talks to the same database as ``agentcost serve`` without extra setup.
"""

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_DATA_DIR = Path.home() / ".agentcost"

# Users paste the URL their other tools use; the service needs an async driver for it.
_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENTCOST_", env_file=".env", extra="ignore")

    data_dir: Path = Field(
        default=DEFAULT_DATA_DIR, description="Where the embedded SQLite database lives."
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; SQLite file in data_dir when unset. "
        "postgresql+asyncpg:// and postgresql+psycopg:// select PostgreSQL.",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8100, ge=1, le=65535)
    default_org: str = "default"
    sql_echo: bool = False
    db_pool_size: int = Field(default=10, ge=1)
    secret: SecretStr | None = Field(
        default=None,
        description="Key that signs end-user feedback tokens; generated and stored when unset.",
    )
    feedback_token_ttl: int = Field(default=24 * 3600, ge=60, le=30 * 24 * 3600)
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Origins allowed to call the API from a browser."
    )
    open_mode_recheck_seconds: float = Field(
        default=1.0,
        ge=0,
        description="While no API key exists, how often to re-check; a key created from the "
        "CLI ends open access within this time.",
    )
    key_recheck_seconds: float = Field(
        default=1.0,
        ge=0,
        description="How long a verified API key is trusted before its row is read again; a key "
        "revoked from the CLI or another worker stops working within this time.",
    )
    rate_limit_per_minute: int | None = Field(
        default=None, ge=1, description="Requests per minute per API key; unset means no limit."
    )

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, url: str | None) -> str | None:
        if url is None:
            return None
        scheme, sep, rest = url.partition("://")
        if not sep:
            raise ValueError("must look like scheme://..., e.g. postgresql+asyncpg://user@host/db")
        return f"{_ASYNC_DRIVERS.get(scheme, scheme)}://{rest}"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir.expanduser() / 'agentcost.db'}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
