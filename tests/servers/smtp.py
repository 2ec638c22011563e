"""An SMTP server that captures what is sent, with a programmable reply script.

    cap = start_smtp_capture()
    cap.force_reply("DATA", "451 4.3.0 Try again later")   # next DATA answers 451, then 250
    cap.force_reply("RCPT", "550 5.1.1 No such user", times=2)
    ...
    [msg] = cap.wait_for(1)
    msg.mail_from, msg.rcpt_tos, msg.data

aiosmtpd's Controller runs it in its own thread on 127.0.0.1 and a free port.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from tests.servers.ports import HOST, free_port

Phase = Literal["MAIL", "RCPT", "DATA"]
PHASES: tuple[Phase, ...] = ("MAIL", "RCPT", "DATA")


@dataclass(frozen=True)
class CapturedMessage:
    """One accepted envelope."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    mail_options: tuple[str, ...] = ()
    rcpt_options: tuple[str, ...] = ()
    auth_user: str | None = None
    peer: str = ""
    received_at: float = field(default_factory=time.time)

    def message(self) -> EmailMessage:
        """The data parsed with the modern email policy."""
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass(frozen=True)
class ForcedReply:
    reply: str | None  # None: answer normally (after ``delay``)
    delay: float = 0.0


@dataclass(frozen=True)
class Attempt:
    """Every MAIL/RCPT/DATA command seen, with the reply given (forced or normal)."""

    phase: Phase
    argument: str
    reply: str
    at: float = field(default_factory=time.time)


class _Handler:
    def __init__(self, owner: SmtpCapture) -> None:
        self.owner = owner

    async def _forced(self, phase: Phase, argument: str) -> str | None:
        forced = self.owner._pop_forced(phase)
        if forced is None:
            return None
        if forced.delay:
            await asyncio.sleep(forced.delay)
        if forced.reply is not None:
            self.owner._record(Attempt(phase, argument, forced.reply))
        return forced.reply

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        forced = await self._forced("MAIL", address)
        if forced is not None:
            return forced
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        self.owner._record(Attempt("MAIL", address, "250 OK"))
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        forced = await self._forced("RCPT", address)
        if forced is not None:
            return forced
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        self.owner._record(Attempt("RCPT", address, "250 OK"))
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        forced = await self._forced("DATA", envelope.mail_from or "")
        if forced is not None:
            return forced
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        auth = session.auth_data
        auth_user: str | None = None
        if isinstance(auth, LoginPassword):
            auth_user = auth.login.decode(errors="replace")
        peer = session.peer
        msg = CapturedMessage(
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            data=bytes(raw),
            mail_options=tuple(envelope.mail_options),
            rcpt_options=tuple(envelope.rcpt_options),
            auth_user=auth_user,
            peer=f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer),
        )
        self.owner._store(msg)
        self.owner._record(Attempt("DATA", envelope.mail_from or "", "250 OK"))
        return "250 Message accepted for delivery"


class _SMTP(SMTP):
    """Also accepts the RFC 4954 ``AUTH=`` MAIL parameter (Dovecot's trusted relay sends it)."""

    def _getparams(self, params: Sequence[str]) -> dict[str, str | bool] | None:
        result: dict[str, str | bool] | None = super()._getparams(params)
        if result is not None:
            result.pop("AUTH", None)
        return result


class _Controller(Controller):
    def factory(self) -> SMTP:
        return _SMTP(self.handler, **self.SMTP_kwargs)


class SmtpCapture:
    """SMTP capture server. ``users=None`` accepts any AUTH credentials."""

    def __init__(
        self,
        *,
        users: dict[str, str] | None = None,
        require_auth: bool = False,
        port: int | None = None,
    ) -> None:
        self.host: str = HOST
        self.port: int = port or 0
        self.users = users
        self.require_auth = require_auth
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._messages: list[CapturedMessage] = []
        self._attempts: list[Attempt] = []
        self._forced: dict[Phase, deque[ForcedReply]] = {p: deque() for p in PHASES}
        self._controller: Controller | None = None

    # ---- lifecycle ------------------------------------------------------------------------

    def start(self) -> SmtpCapture:
        last: Exception | None = None
        for _ in range(5):
            port = self.port or free_port()
            controller = _Controller(
                _Handler(self),
                hostname=self.host,
                port=port,
                auth_require_tls=False,
                auth_required=self.require_auth,
                authenticator=self._authenticate,
                data_size_limit=100 * 1024 * 1024,
                enable_SMTPUTF8=True,
            )
            try:
                controller.start()
            except Exception as exc:  # port taken meanwhile: try another
                last = exc
                if self.port:
                    break
                continue
            self._controller, self.port = controller, port
            return self
        raise RuntimeError(f"SMTP capture server did not start: {last!r}")

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        if self.users is None:
            return AuthResult(success=True, handled=False, auth_data=auth_data)
        login = auth_data.login.decode(errors="replace")
        ok = self.users.get(login) == auth_data.password.decode(errors="replace")
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    # ---- script ---------------------------------------------------------------------------

    def force_reply(self, phase: Phase, reply: str, *, times: int = 1, delay: float = 0.0) -> None:
        """Answer the next ``times`` commands of ``phase`` with ``reply`` (e.g. "451 4.3.0 Busy").

        Forced replies queue up in order; once used up the server answers normally again.
        """
        if phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}")
        if not reply[:3].isdigit():
            raise ValueError(f"reply must start with a 3-digit code: {reply!r}")
        with self._lock:
            self._forced[phase].extend([ForcedReply(reply, delay)] * times)

    def delay_next(self, phase: Phase, seconds: float, *, times: int = 1) -> None:
        """Answer the next ``times`` commands of ``phase`` normally, but only after ``seconds``."""
        with self._lock:
            self._forced[phase].extend([ForcedReply(None, seconds)] * times)

    def _pop_forced(self, phase: Phase) -> ForcedReply | None:
        with self._lock:
            queue = self._forced[phase]
            return queue.popleft() if queue else None

    def pending_replies(self, phase: Phase) -> int:
        with self._lock:
            return len(self._forced[phase])

    # ---- results --------------------------------------------------------------------------

    def _store(self, msg: CapturedMessage) -> None:
        with self._cond:
            self._messages.append(msg)
            self._cond.notify_all()

    def _record(self, attempt: Attempt) -> None:
        with self._cond:
            self._attempts.append(attempt)
            self._cond.notify_all()

    @property
    def messages(self) -> list[CapturedMessage]:
        """A copy of every accepted envelope, oldest first."""
        with self._lock:
            return list(self._messages)

    @property
    def attempts(self) -> list[Attempt]:
        """A copy of every MAIL/RCPT/DATA command with its reply, oldest first."""
        with self._lock:
            return list(self._attempts)

    def wait_for(
        self,
        count: int = 1,
        timeout: float = 10.0,
        predicate: Callable[[CapturedMessage], bool] | None = None,
    ) -> list[CapturedMessage]:
        """Wait until at least ``count`` (matching) messages arrived; return them.

        Raises AssertionError with what did arrive on timeout.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [m for m in self._messages if predicate is None or predicate(m)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"expected {count} message(s) at the SMTP capture within {timeout} s, "
                        f"got {len(found)}; all: "
                        f"{[(m.mail_from, m.rcpt_tos) for m in self._messages]}; "
                        f"attempts: {[(a.phase, a.reply) for a in self._attempts[-10:]]}"
                    )
                self._cond.wait(left)

    def clear(self) -> None:
        """Forget captured messages, attempts and forced replies."""
        with self._lock:
            self._messages.clear()
            self._attempts.clear()
            for queue in self._forced.values():
                queue.clear()

    def __enter__(self) -> SmtpCapture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_smtp_capture(
    *, users: dict[str, str] | None = None, require_auth: bool = False
) -> SmtpCapture:
    return SmtpCapture(users=users, require_auth=require_auth).start()
