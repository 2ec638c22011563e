"""Redis connections: one asyncio client per process, with timeouts for every phase.

``REDIS_URL`` names one server (``redis://host:6379/0``, ``rediss://``, ``unix://``) or a Redis
Cluster: several comma-separated nodes (``redis://a:7000,redis://b:7001``; later ones may omit
the scheme) or one node with ``?cluster=true``. A cluster is reached through redis-py's cluster
client, which follows ``MOVED`` redirects and routes each command by its key's slot; since every
key carries a hash tag (``store/keys.py``), each multi-key update stays within one slot.
The cluster client is handed out typed as :class:`Redis`: the commands mailgate uses have the
same signatures on both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, ClusterPubSub, RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from mailgate.errors import ConfigError, StoreError

SOCKET_TIMEOUT = 10.0
CONNECT_TIMEOUT = 5.0
HEALTH_CHECK_INTERVAL = 15
MAX_CONNECTIONS = 200

Redis = aioredis.Redis


TRUE_WORDS = frozenset({"1", "true", "yes", "on"})


@dataclass(frozen=True)
class RedisTarget:
    """Where ``REDIS_URL`` points: one server's URL, or the nodes of a cluster."""

    url: str  # the first (or only) node's URL, without the cluster option
    nodes: tuple[tuple[str, int], ...]  # cluster startup nodes (empty for one server)

    @property
    def cluster(self) -> bool:
        return bool(self.nodes)


def parse_redis_url(value: str) -> RedisTarget:
    """Split ``REDIS_URL`` into one server or cluster startup nodes (see the module doc)."""
    parts = [p.strip() for p in value.split(",") if p.strip()]
    if not parts:
        raise ValueError("REDIS_URL is empty")
    first = urlsplit(parts[0] if "://" in parts[0] else f"redis://{parts[0]}")
    query = parse_qsl(first.query, keep_blank_values=True)
    flag = [v for k, v in query if k == "cluster"]
    rest = urlencode([(k, v) for k, v in query if k != "cluster"])
    url = parts[0]
    if flag:  # the option is ours, not redis-py's
        url = urlunsplit((first.scheme, first.netloc, first.path, rest, first.fragment))
    if len(parts) == 1 and not (flag and flag[-1].lower() in TRUE_WORDS):
        return RedisTarget(url=url, nodes=())
    nodes = []
    for part in parts:
        node = urlsplit(part if "://" in part else f"{first.scheme}://{part}")
        if not node.hostname:
            raise ValueError(f"REDIS_URL names a cluster node without a host: {part!r}")
        nodes.append((node.hostname, node.port or 6379))
    return RedisTarget(url=url, nodes=tuple(nodes))


def is_cluster(client: object) -> bool:
    return isinstance(client, RedisCluster)


def connect(url: str) -> aioredis.Redis:
    """A client for ``REDIS_URL``; no I/O happens until the first command."""
    try:
        target = parse_redis_url(url)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    if target.cluster:
        return _connect_cluster(target)
    return aioredis.Redis.from_url(
        url,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=CONNECT_TIMEOUT,
        health_check_interval=HEALTH_CHECK_INTERVAL,
        max_connections=MAX_CONNECTIONS,
        retry_on_timeout=True,
        decode_responses=False,
    )


class _ClusterPubSub(ClusterPubSub):
    """A cluster subscription that works as a client's first command: redis-py picks the node
    from the slot map, which is only loaded by the first ordinary command."""

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        await self.cluster.initialize()
        return await super().execute_command(*args, **kwargs)


class _Cluster(RedisCluster):
    def pubsub(
        self,
        node: ClusterNode | None = None,
        host: str | None = None,
        port: int | None = None,
        **kwargs: Any,
    ) -> ClusterPubSub:
        return _ClusterPubSub(self, node=node, host=host, port=port, **kwargs)


def _connect_cluster(target: RedisTarget) -> aioredis.Redis:
    first = urlsplit(target.url)
    client = _Cluster(
        startup_nodes=[ClusterNode(host, port) for host, port in target.nodes],
        username=first.username or None,
        password=first.password or None,
        ssl=first.scheme == "rediss",
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=CONNECT_TIMEOUT,
        health_check_interval=HEALTH_CHECK_INTERVAL,
        max_connections=MAX_CONNECTIONS,
        decode_responses=False,
    )
    return cast(aioredis.Redis, client)


async def stage_script(pipe: Any, script: AsyncScript, keys: list[str], args: list[Any]) -> None:
    """Queue a Lua script on a pipeline.

    EVALSHA (with the script loaded at execute time) on one server; EVAL with the source in a
    cluster pipeline, where redis-py refuses EVALSHA. Either way the keys pick the slot.
    """
    if isinstance(pipe, ClusterPipeline):
        pipe.eval(text(script.script), len(keys), *keys, *args)
    else:
        await script(keys=keys, args=args, client=pipe)


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
