"""A real Redis Cluster for the tests: three masters on free loopback ports, no replicas.

Each node is a :class:`~tests.servers.redis.RedisServer` started with ``--cluster-enabled yes``;
the slots are split in three and the nodes introduced to each other with ``CLUSTER ADDSLOTS`` and
``CLUSTER MEET`` (what ``redis-cli --cluster create`` does), then we wait for ``cluster_state:ok``
on every node. The service reaches it with ``REDIS_URL`` listing all three nodes.
"""

from __future__ import annotations

import time
from pathlib import Path

import redis

from tests.servers.redis import RedisServer

SLOTS = 16384
NODES = 3
FORM_TIMEOUT = 30.0


def _command(host: str, port: int, *args: str) -> object:
    with redis.Redis(host=host, port=port, socket_timeout=5, decode_responses=True) as conn:
        return conn.execute_command(*args)


class ClusterNode(RedisServer):
    def _args(self) -> list[str]:
        return [
            *super()._args(),
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            str(self.base / "nodes.conf"),
            "--cluster-node-timeout",
            "2000",
        ]


class RedisCluster:
    """Three cluster-mode masters owning a third of the slots each."""

    def __init__(self, base: Path) -> None:
        self.base = Path(base)
        self.nodes = [ClusterNode(self.base / f"node{i}") for i in range(NODES)]

    @property
    def host(self) -> str:
        return self.nodes[0].host

    @property
    def port(self) -> int:
        return self.nodes[0].port

    @property
    def url(self) -> str:
        """``REDIS_URL`` for the service: every node, comma-separated."""
        return ",".join(f"redis://{n.host}:{n.port}" for n in self.nodes)

    def start(self) -> RedisCluster:
        for node in self.nodes:
            node.start()
        first = self.nodes[0]
        step = SLOTS // NODES
        for index, node in enumerate(self.nodes):
            low = index * step
            high = SLOTS - 1 if index == NODES - 1 else (index + 1) * step - 1
            slots = map(str, range(low, high + 1))
            _command(node.host, node.port, "CLUSTER", "ADDSLOTS", *slots)
        for node in self.nodes[1:]:
            _command(first.host, first.port, "CLUSTER", "MEET", node.host, str(node.port))
        deadline = time.monotonic() + FORM_TIMEOUT
        while time.monotonic() < deadline:
            if all(self._ok(node) for node in self.nodes):
                return self
            time.sleep(0.1)
        logs = "\n".join(f"--- :{n.port} ---\n{n.log_tail()}" for n in self.nodes)
        self.stop()
        raise RuntimeError(f"the Redis Cluster did not reach cluster_state:ok\n{logs}")

    @staticmethod
    def _ok(node: RedisServer) -> bool:
        info = str(_command(node.host, node.port, "CLUSTER", "INFO"))
        return "cluster_state:ok" in info and f"cluster_known_nodes:{NODES}" in info

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def log_tail(self, lines: int = 15) -> str:
        return "\n".join(f"--- node :{n.port} ---\n{n.log_tail(lines)}" for n in self.nodes)


def start_redis_cluster(base: Path) -> RedisCluster:
    return RedisCluster(base).start()
