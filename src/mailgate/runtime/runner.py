"""One account's runner: keeps its watcher connected and reports the account's state.

Runs as a task owned by the supervisor. Connection failures back off with jitter (reset only
after the connection stayed up for a while); refused credentials are retried slowly and reported
once per failure streak, never in a tight loop. A runner never raises out of :meth:`run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any, Protocol

import structlog
from redis.exceptions import RedisError

from mailgate.backends.base import Watcher
from mailgate.domain.account import AccountState, LastError, RuntimeState
from mailgate.errors import AuthenticationError, ConfigError, ConnectError, MailgateError
from mailgate.runtime.backoff import AUTH_BASE_DELAY, AUTH_MAX_DELAY, Backoff
from mailgate.runtime.metrics import backend_label, count_connection
from mailgate.store.accounts import AccountStore
from mailgate.store.commit import LeaseLost
from mailgate.store.events import EventLog, iso_now

DEFAULT_RESYNC = 60.0  # seconds between sync passes when the server reports nothing


class AccountJournal(Protocol):
    """Where a runner writes the account's own log lines (services/account_logs.py)."""

    async def write(self, account: str, level: str, msg: str, **fields: Any) -> None: ...


class AccountRunner:
    def __init__(
        self,
        account: str,
        watcher: Watcher | None,
        accounts: AccountStore,
        events: EventLog,
        *,
        node_id: str,
        resync_delay: float = DEFAULT_RESYNC,
        on_lease_lost: Callable[[str], None] | None = None,
        journal: AccountJournal | None = None,
    ) -> None:
        self.account = account
        self.watcher = watcher
        self.accounts = accounts
        self.events = events
        self.node_id = node_id
        self.resync_delay = resync_delay
        self.on_lease_lost = on_lease_lost
        self.journal = journal
        self._sync_now = asyncio.Event()
        self.state = RuntimeState(state=AccountState.INIT, owner=node_id)
        self._reconnect = asyncio.Event()
        self._connect_backoff = Backoff()
        self._auth_backoff = Backoff(base=AUTH_BASE_DELAY, cap=AUTH_MAX_DELAY)
        self._auth_failing = False
        self.log = structlog.get_logger("mailgate.runner").bind(account=account)

    def request_reconnect(self) -> None:
        self._reconnect.set()

    def request_sync(self) -> None:
        self._sync_now.set()

    async def _set_state(self, state: AccountState, error: LastError | None = None) -> None:
        connections = self.watcher.connections if self.watcher else 0
        changed = state != self.state.state
        self.state = RuntimeState(
            state=state,
            last_error=error if error is not None else self.state.last_error,
            connections=connections,
            owner=self.node_id,
            state_changed=iso_now() if changed else self.state.state_changed,
            sync_time=self.state.sync_time,
        )
        if state == AccountState.CONNECTED:
            self.state.last_error = None
        if changed:
            self.log.info("account state", state=state.value)
        await self.accounts.set_state(self.account, self.state)
        if changed:
            await self._journal(
                "warn" if error is not None and state != AccountState.CONNECTED else "info",
                "account state",
                state=state.value,
                error=error.response if error is not None else None,
            )

    async def _journal(self, level: str, msg: str, **fields: Any) -> None:
        """One line in the account's log (when logging is on for it); never raises."""
        if self.journal is None:
            return
        try:
            await self.journal.write(self.account, level, msg, **fields)
        except (MailgateError, RedisError, OSError) as exc:
            self.log.debug("account log write failed", error=str(exc))

    async def run(self) -> None:
        try:
            if self.watcher is None:
                await self._set_state(AccountState.CONNECTED)
                await asyncio.Event().wait()  # send-only account: nothing to watch
            while True:
                await self._connect_and_watch()
        except asyncio.CancelledError:
            await self._shutdown()
            raise

    async def _shutdown(self) -> None:
        if self.watcher is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.watcher.close())
        with contextlib.suppress(Exception):
            await asyncio.shield(self._set_state(AccountState.DISCONNECTED))

    async def _connect_and_watch(self) -> None:
        assert self.watcher is not None
        await self._set_state(AccountState.CONNECTING)
        try:
            await count_connection(backend_label(self.watcher), self.watcher.open())
        except AuthenticationError as exc:
            await self.watcher.close()
            await self._on_auth_failure(exc)
            return
        except (ConnectError, ConfigError, OSError) as exc:
            await self.watcher.close()
            await self._on_connect_failure(exc)
            return
        except Exception as exc:  # e.g. a refused ENABLE/NOTIFY, or a bug: never end the runner
            self.log.warning("could not open the connection", error=repr(exc))
            await self.watcher.close()
            await self._on_connect_failure(exc)
            return
        if self._auth_failing:
            self._auth_failing = False
        await self.events.append(self.account, "authenticationSuccess", {"user": self.account})
        self._auth_backoff.attempt = 0
        connected_at = time.monotonic()
        try:
            await self._set_state(AccountState.SYNCING)
            await self.watcher.sync([])
            self.state.sync_time = iso_now()
            await self._set_state(AccountState.CONNECTED)
            await self._watch()
        except LeaseLost as exc:
            self.log.warning("lease lost: stopping", error=str(exc))
            await self.watcher.close()
            if self.on_lease_lost is not None:
                self.on_lease_lost(self.account)
            await asyncio.Event().wait()  # the supervisor cancels this runner
        except (ConnectError, OSError) as exc:
            self.log.info("connection lost", error=str(exc))
            await self.watcher.close()
            self._connect_backoff.connection_lasted(time.monotonic() - connected_at)
            await self._on_connect_failure(exc, lost=True)
        except MailgateError as exc:
            self.log.warning("runner error", error=str(exc))
            await self.watcher.close()
            self._connect_backoff.connection_lasted(time.monotonic() - connected_at)
            await self._on_connect_failure(exc, lost=True)
        except Exception as exc:  # a bug must cost one reconnect, never the account
            self.log.exception("unexpected runner error")
            await self.watcher.close()
            self._connect_backoff.connection_lasted(0.0)
            await self._on_connect_failure(exc, lost=True)

    async def _watch(self) -> None:
        assert self.watcher is not None
        while not self._reconnect.is_set():
            wait = asyncio.ensure_future(self.watcher.wait_for_changes(self.resync_delay))
            flag = asyncio.ensure_future(self._reconnect.wait())
            forced = asyncio.ensure_future(self._sync_now.wait())
            try:
                done, _ = await asyncio.wait(
                    {wait, flag, forced}, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                flag.cancel()
                forced.cancel()
                if not wait.done():
                    wait.cancel()
                    with contextlib.suppress(asyncio.CancelledError, MailgateError, OSError):
                        await wait
            if self._reconnect.is_set():
                break
            hints = wait.result() if wait in done and not wait.cancelled() else []
            self._sync_now.clear()
            # a change was reported, a pass was asked for, or the resync delay passed
            await self.watcher.sync(hints)
            self.state.sync_time = iso_now()
        self._reconnect.clear()
        self.log.info("reconnect requested")
        await self.watcher.close()

    async def _sleep(self, seconds: float) -> None:
        """Sleep, cut short by a reconnect request."""
        self._reconnect.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._reconnect.wait(), seconds)
        self._reconnect.clear()

    async def _on_auth_failure(self, exc: AuthenticationError) -> None:
        # a refused OAuth2 token request carries its facts (backends/oauth.py TokenRequestFailed)
        token_request: dict[str, object] | None = getattr(exc, "token_request", None)
        error = LastError(
            response=(str(exc) if token_request else exc.server_response) or str(exc),
            description="Authentication failed",
            server_response_code="OauthRenewError" if token_request else "AUTHENTICATIONFAILED",
            time=iso_now(),
            token_request=token_request,
        )
        await self._set_state(AccountState.AUTHENTICATION_ERROR, error)
        if not self._auth_failing:
            self._auth_failing = True
            data: dict[str, object] = {
                "response": error.response,
                "serverResponseCode": error.server_response_code,
            }
            if token_request:
                data["tokenRequest"] = token_request
            await self.events.append(self.account, "authenticationError", data)
        delay = self._auth_backoff.next_delay()
        self.log.warning("authentication failed", retry_in=round(delay, 1))
        await self._sleep(delay)

    async def _on_connect_failure(self, exc: Exception, *, lost: bool = False) -> None:
        error = LastError(
            response=str(exc),
            description="Connection lost" if lost else "Connection failed",
            server_response_code=type(exc).__name__,
            time=iso_now(),
        )
        await self._set_state(AccountState.CONNECT_ERROR, error)
        if not lost:
            await self.events.append(
                self.account,
                "connectError",
                {"response": error.response, "serverResponseCode": error.server_response_code},
            )
        delay = 0.5 if lost and self._connect_backoff.attempt == 0 else None
        if delay is None:
            delay = self._connect_backoff.next_delay()
        else:
            self._connect_backoff.attempt += 1
        self.log.info("connect failed", retry_in=round(delay, 1), error=str(exc))
        await self._sleep(delay)
