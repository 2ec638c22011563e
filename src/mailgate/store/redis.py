"""Redis connections: one asyncio client per process, with timeouts for every phase."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from mailgate.errors import StoreError

SOCKET_TIMEOUT = 10.0
CONNECT_TIMEOUT = 5.0
HEALTH_CHECK_INTERVAL = 15
MAX_CONNECTIONS = 200

Redis = aioredis.Redis


def connect(url: str) -> aioredis.Redis:
    """A client for ``url``; no I/O happens until the first command."""
    return aioredis.Redis.from_url(
        url,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=CONNECT_TIMEOUT,
        health_check_interval=HEALTH_CHECK_INTERVAL,
        max_connections=MAX_CONNECTIONS,
        retry_on_timeout=True,
        decode_responses=False,
    )


async def ping(client: aioredis.Redis) -> None:
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        raise StoreError(f"Redis is not reachable: {exc}") from exc


def text(value: Any) -> str:
    """A Redis reply value as str (replies are bytes with ``decode_responses=False``)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def data(value: bytes | str) -> bytes:
    """A Redis reply value as bytes."""
    return value if isinstance(value, bytes) else value.encode()


def str_map(raw: dict[bytes | str, bytes | str] | dict[bytes, bytes]) -> dict[str, str]:
    return {text(k): text(v) for k, v in raw.items()}


RedisMapping = Mapping[
    bytes | bytearray | memoryview | str | int | float,
    bytes | bytearray | memoryview | str | int | float,
]


def mapping(values: Mapping[str, str] | Mapping[str, int]) -> RedisMapping:
    """A dict typed the way redis-py's ``hset(mapping=...)`` wants it."""
    return cast(RedisMapping, dict(values))
