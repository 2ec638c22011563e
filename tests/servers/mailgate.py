"""The mailgate service as a real subprocess for integration tests.

    mg = MailgateProcess(data_dir, redis_url=redis.url).start()
    with mg.client() as http:
        http.get("/v1/...")
    mg.stop()

Runs ``python -m mailgate serve --host 127.0.0.1 --port PORT --data DIR``; its output goes to
``DIR/mailgate.log`` (``log_tail()`` for failure reports).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

from tests.servers.ports import HOST, free_port

START_TIMEOUT = 30.0


class MailgateProcess:
    def __init__(
        self,
        data: Path,
        *,
        redis_url: str | None = None,
        secret: str | None = None,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        issue_token: bool = True,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.data: Path = Path(data)
        self.host: str = HOST
        self.port: int = port or free_port()
        self.base_url: str = f"http://{self.host}:{self.port}"
        self.log_path: Path = self.data / "mailgate.log"
        self.extra_args = extra_args
        self.env: dict[str, str] = {
            k: v for k, v in os.environ.items() if not k.startswith(("MAILGATE_", "REDIS_URL"))
        }
        self.env.update(
            {
                "MAILGATE_SECRET": secret or secrets.token_hex(32),
                "MAILGATE_LOG_LEVEL": "debug",
                "PYTHONUNBUFFERED": "1",
            }
        )
        if redis_url is not None:
            self.env["REDIS_URL"] = redis_url
        if env:
            self.env.update(env)
        self._want_token = issue_token
        self.token: str = ""
        self._proc: subprocess.Popen[bytes] | None = None

    # ---- lifecycle ------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc is not None else None

    def start(self) -> MailgateProcess:
        """Start and wait until GET /health answers 200 (RuntimeError with the log tail else).

        Issues an API token (scope ``*``) after the first start unless ``issue_token=False``.
        """
        if self.running:
            return self
        self.data.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"\n===== mailgate start {time.strftime('%H:%M:%S')} =====\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "mailgate",
                    "serve",
                    "--host",
                    self.host,
                    "--port",
                    str(self.port),
                    "--data",
                    str(self.data),
                    *self.extra_args,
                ],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_healthy()
        if self._want_token and not self.token:
            self.token = self.issue_token("--scope", "*")
        return self

    def _wait_healthy(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        last = ""
        with httpx.Client(base_url=self.base_url, timeout=2.0) as http:
            while True:
                code = self._proc.poll()
                if code is not None:
                    raise RuntimeError(
                        f"mailgate exited with code {code} during start.\n"
                        f"--- {self.log_path} ---\n{self.log_tail()}"
                    )
                try:
                    resp = http.get("/health")
                    if resp.status_code == 200:
                        return
                    last = f"HTTP {resp.status_code}: {resp.text[:200]}"
                except httpx.HTTPError as exc:
                    last = repr(exc)
                if time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError(
                        f"mailgate did not become healthy at {self.base_url}/health within "
                        f"{START_TIMEOUT:.0f} s (last: {last}).\n"
                        f"--- {self.log_path} ---\n{self.log_tail()}"
                    )
                time.sleep(0.1)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM and wait (SIGKILL after ``timeout``); returns the exit code."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self._reap_group(proc.pid)
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL the service (and its process group, e.g. an embedded Redis)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def kill_service_only(self) -> None:
        """SIGKILL only the service process, leaving children such as an embedded Redis."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.kill()
        proc.wait(timeout=10)

    @staticmethod
    def _reap_group(pgid: int) -> None:
        # children left in the service's process group (e.g. an embedded redis-server)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)

    def restart(self) -> None:
        """Graceful stop, then start on the same port with the same data and env."""
        self.stop()
        self.start()

    def __enter__(self) -> MailgateProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- helpers --------------------------------------------------------------------------

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``python -m mailgate ARGS`` with the service's env."""
        proc = subprocess.run(
            [sys.executable, "-m", "mailgate", *args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"`mailgate {' '.join(args)}` failed ({proc.returncode}):\n"
                f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
            )
        return proc

    def issue_token(self, *args: str) -> str:
        """``mailgate tokens issue --data DIR ARGS`` -> the 64-hex token it prints."""
        out = self.cli("tokens", "issue", "--data", str(self.data), *args).stdout.strip()
        token = out.splitlines()[-1].strip() if out else ""
        if len(token) != 64 or any(c not in "0123456789abcdef" for c in token.lower()):
            raise RuntimeError(f"`mailgate tokens issue` printed no 64-hex token: {out!r}")
        return token

    def client(self, token: str | None = None, timeout: float = 30.0) -> httpx.Client:
        """An httpx.Client on base_url with the bearer token (the session's unless given)."""
        tok = token if token is not None else self.token
        headers = {"Authorization": f"Bearer {tok}"} if tok else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def async_client(self, token: str | None = None, timeout: float = 30.0) -> httpx.AsyncClient:
        tok = token if token is not None else self.token
        headers = {"Authorization": f"Bearer {tok}"} if tok else {}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=timeout)

    def log_tail(self, lines: int = 80) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def start_mailgate(
    data: Path, *, redis_url: str | None = None, env: Mapping[str, str] | None = None
) -> MailgateProcess:
    return MailgateProcess(data, redis_url=redis_url, env=env).start()
