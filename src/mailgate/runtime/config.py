"""Process configuration: environment variables ``MAILGATE_*`` (and ``REDIS_URL``) plus CLI flags.

These are the settings a process needs before it can reach Redis. Runtime settings that every
process shares (webhooks, indexer default, ...) live in Redis behind ``/v1/settings``
(see :mod:`mailgate.services.settings`).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Role(StrEnum):
    ALL = "all"
    API = "api"
    SYNC = "sync"
    WORKER = "worker"


DEFAULT_PORT = 3000
DEFAULT_HOST = "127.0.0.1"


class Config(BaseSettings):
    """Everything a mailgate process reads from its environment and command line."""

    model_config = SettingsConfigDict(env_prefix="MAILGATE_", extra="ignore")

    host: str = DEFAULT_HOST
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    data: Path = Path("./data")
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_URL", "MAILGATE_REDIS_URL")
    )
    secret: str | None = None
    log_level: str = "info"
    log_format: str = "json"
    roles: frozenset[Role] = frozenset({Role.ALL})
    max_accounts: int = Field(default=10_000, ge=0)
    node_id: str | None = None
    shutdown_timeout: float = Field(default=8.0, gt=0)
    logins_per_second: float = Field(default=100.0, ge=0)  # new IMAP logins per host (0: no limit)
    index_chunk: int = Field(default=5_000, ge=1, le=1_000_000)  # UIDs per first-index step
    graph_subscription_lifetime: float | None = Field(default=None, gt=0)  # seconds; None: 2 days

    def has_role(self, role: Role) -> bool:
        return Role.ALL in self.roles or role in self.roles
