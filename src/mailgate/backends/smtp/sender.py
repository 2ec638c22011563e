"""Delivering one message: the :class:`Sender` protocol and its SMTP adapter.

The outbox talks to a :class:`Sender` only, so providers that send over HTTP (Gmail API, Microsoft
Graph) plug in without branches in the service. A sender keeps whatever connection it needs and
reuses it for the next message (one SMTP connection per account for a burst); the owner closes it
when the burst is over.

``send`` takes a ``commit`` callback that the sender awaits right before the point of no return
(for SMTP: after the envelope was accepted, before DATA). The outbox uses it to record that the
message may now reach the server, so a crash afterwards is never answered with a blind re-send.

Errors: every failure is a :class:`SendError` (a :class:`mailgate.errors.BackendError`) carrying
its *provenance* (see :mod:`mailgate.services.sending.retry`): a real server reply (with its
code), a network/TLS/timeout failure before commit, a failure after commit (``uncertain``), or a
configuration problem on our side. Foreign exceptions are mapped here and nowhere else.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

import aiosmtplib

from mailgate.domain.account import SmtpConfig
from mailgate.errors import BackendError

SMTP_CONNECT_TIMEOUT = 20.0  # seconds for TCP + TLS + greeting + EHLO (+ STARTTLS)
SMTP_COMMAND_TIMEOUT = 60.0  # seconds for each command's reply
SMTP_DATA_TIMEOUT = 300.0  # seconds for the final reply after the message data


class Provenance(StrEnum):
    """Where a failure came from (mirrors :class:`mailgate.services.sending.retry.Provenance`)."""

    REPLY = "reply"
    NETWORK = "network"
    UNCERTAIN = "uncertain"
    CONFIG = "config"


class Phase(StrEnum):
    CONNECT = "CONN"
    AUTH = "AUTH"
    MAIL = "MAIL FROM"
    RCPT = "RCPT TO"
    DATA = "DATA"


@dataclass(frozen=True)
class Envelope:
    mail_from: str
    rcpt_to: tuple[str, ...]


@dataclass(frozen=True)
class DsnOptions:
    """RFC 3461 delivery status notification parameters (used when the server offers DSN)."""

    envid: str | None = None
    ret: str | None = None  # "FULL" or "HDRS"
    notify: tuple[str, ...] = ()  # SUCCESS, FAILURE, DELAY or NEVER
    orcpt: str | None = None


@dataclass(frozen=True)
class SendResult:
    response: str
    code: int
    accepted: tuple[str, ...]
    rejected: tuple[tuple[str, int, str], ...] = field(default_factory=tuple)


class SendError(BackendError):
    """One failed delivery attempt, with the facts the retry rules need."""

    def __init__(
        self,
        message: str,
        *,
        provenance: Provenance,
        phase: Phase,
        code: int | None = None,
        server_response: str | None = None,
        error_code: str = "EPROTOCOL",
    ) -> None:
        super().__init__(message, server_response=server_response)
        self.provenance = provenance
        self.phase = phase
        self.code = code
        self.error_code = error_code


class Sender(Protocol):
    """Sends messages for one account (or gateway), reusing its connection between calls."""

    async def send(
        self,
        envelope: Envelope,
        message: bytes,
        *,
        commit: Callable[[], Awaitable[None]],
        dsn: DsnOptions | None = None,
    ) -> SendResult:
        """Deliver ``message``; awaits ``commit()`` right before the point of no return."""
        ...

    async def close(self) -> None:
        """Close the connection (politely when possible); the sender may be used again."""
        ...


def _reply_text(exc: aiosmtplib.SMTPResponseException) -> str:
    return f"{exc.code} {exc.message}".strip()


class SmtpSender:
    """:class:`Sender` over SMTP with aiosmtplib: implicit TLS or STARTTLS, AUTH PLAIN/LOGIN."""

    def __init__(
        self,
        cfg: SmtpConfig,
        *,
        ehlo_name: str | None = None,
        ignore_cert_errors: bool = False,
        connect_timeout: float = SMTP_CONNECT_TIMEOUT,
        command_timeout: float = SMTP_COMMAND_TIMEOUT,
        data_timeout: float = SMTP_DATA_TIMEOUT,
    ) -> None:
        self.cfg = cfg
        self.ehlo_name = ehlo_name
        self.ignore_cert_errors = ignore_cert_errors
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.data_timeout = data_timeout
        self._client: aiosmtplib.SMTP | None = None

    # -- connection -----------------------------------------------------------------------------

    def _new_client(self) -> aiosmtplib.SMTP:
        verify = (self.cfg.tls is None or self.cfg.tls.reject_unauthorized) and not (
            self.ignore_cert_errors
        )
        return aiosmtplib.SMTP(
            hostname=self.cfg.host,
            port=self.cfg.port,
            use_tls=self.cfg.secure,
            start_tls=None if not self.cfg.secure else False,
            validate_certs=verify,
            local_hostname=self.ehlo_name,
            timeout=self.connect_timeout,
        )

    async def _connect(self) -> aiosmtplib.SMTP:
        client = self._new_client()
        try:
            await client.connect()
            await self._authenticate(client)
        except BaseException:
            client.close()
            raise
        self._client = client
        return client

    async def _authenticate(self, client: aiosmtplib.SMTP) -> None:
        auth = self.cfg.auth
        if auth is None or not auth.user:
            return
        try:
            if auth.access_token:
                await client.auth_xoauth2(auth.user, auth.access_token)
            elif auth.pass_ is not None:
                methods = client.server_auth_methods
                if "plain" in methods:
                    await client.auth_plain(auth.user, auth.pass_)
                elif "login" in methods:
                    await client.auth_login(auth.user, auth.pass_)
                else:
                    await client.login(auth.user, auth.pass_)
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise SendError(
                f"Authentication failed: {exc.message}",
                provenance=Provenance.REPLY,
                phase=Phase.AUTH,
                code=exc.code,
                server_response=_reply_text(exc),
                error_code="EAUTH",
            ) from exc
        except aiosmtplib.SMTPResponseException:
            raise
        except aiosmtplib.SMTPException as exc:
            if isinstance(exc, aiosmtplib.SMTPServerDisconnected | aiosmtplib.SMTPTimeoutError):
                raise
            raise SendError(
                f"Cannot authenticate: {exc}",
                provenance=Provenance.CONFIG,
                phase=Phase.AUTH,
                error_code="EAUTH",
            ) from exc

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.is_connected

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        if client.is_connected:
            try:
                await client.quit(timeout=5.0)
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                client.close()

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    # -- one message ----------------------------------------------------------------------------

    async def send(
        self,
        envelope: Envelope,
        message: bytes,
        *,
        commit: Callable[[], Awaitable[None]],
        dsn: DsnOptions | None = None,
    ) -> SendResult:
        phase = Phase.CONNECT
        committed = False
        try:
            reused = self.connected
            client = self._client if reused and self._client is not None else await self._connect()
            phase = Phase.MAIL
            try:
                await self._mail(client, envelope, message, dsn)
            except (aiosmtplib.SMTPServerDisconnected, ConnectionError):
                if not reused:
                    raise
                # the server closed an idle connection we kept: one fresh connection
                self._drop()
                phase = Phase.CONNECT
                client = await self._connect()
                phase = Phase.MAIL
                await self._mail(client, envelope, message, dsn)
            phase = Phase.RCPT
            accepted, rejected = await self._recipients(client, envelope, dsn)
            phase = Phase.DATA
            await commit()
            committed = True
            response = await client.data(message, timeout=self.data_timeout)
            return SendResult(
                response=f"{response.code} {response.message}".strip(),
                code=response.code,
                accepted=tuple(accepted),
                rejected=tuple(rejected),
            )
        except SendError:
            await self._after_failure(phase, clean=False)
            raise
        except aiosmtplib.SMTPResponseException as exc:
            # a real reply: the server refused this transaction; the connection stays usable
            await self._after_failure(phase, clean=exc.code < 500 or phase is not Phase.CONNECT)
            error_code = {
                Phase.MAIL: "EENVELOPE",
                Phase.RCPT: "EENVELOPE",
                Phase.DATA: "EMESSAGE",
            }.get(phase, "EPROTOCOL")
            raise SendError(
                exc.message or f"Server replied {exc.code}",
                provenance=Provenance.REPLY,
                phase=phase,
                code=exc.code,
                server_response=_reply_text(exc),
                error_code=error_code,
            ) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError, ssl.SSLError) as exc:
            self._drop()
            timeout = isinstance(exc, TimeoutError | aiosmtplib.SMTPTimeoutError)
            raise SendError(
                f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
                provenance=Provenance.UNCERTAIN if committed else Provenance.NETWORK,
                phase=phase,
                error_code="ETIMEDOUT" if timeout else "ECONNECTION",
            ) from exc
        except BaseException:
            # cancelled or the commit callback failed: the transaction must not go on
            if committed:
                self._drop()
            else:
                await self._after_failure(phase, clean=True)
            raise

    async def _mail(
        self,
        client: aiosmtplib.SMTP,
        envelope: Envelope,
        message: bytes,
        dsn: DsnOptions | None,
    ) -> None:
        options: list[str] = []
        utf8 = not (envelope.mail_from.isascii() and all(r.isascii() for r in envelope.rcpt_to))
        if utf8 and client.supports_extension("smtputf8"):
            options.append("SMTPUTF8")
        if not message.isascii() and client.supports_extension("8bitmime"):
            options.append("BODY=8BITMIME")
        if dsn is not None and client.supports_extension("dsn"):
            if dsn.ret:
                options.append(f"RET={dsn.ret}")
            if dsn.envid:
                options.append(f"ENVID={_xtext(dsn.envid)}")
        await client.mail(
            envelope.mail_from,
            options=options,
            encoding="utf-8" if utf8 else "ascii",
            timeout=self.command_timeout,
        )

    async def _recipients(
        self, client: aiosmtplib.SMTP, envelope: Envelope, dsn: DsnOptions | None
    ) -> tuple[list[str], list[tuple[str, int, str]]]:
        options: list[str] = []
        if dsn is not None and client.supports_extension("dsn"):
            if dsn.notify:
                options.append("NOTIFY=" + ",".join(dsn.notify))
            if dsn.orcpt:
                options.append(f"ORCPT=rfc822;{_xtext(dsn.orcpt)}")
        accepted: list[str] = []
        rejected: list[tuple[str, int, str]] = []
        last: aiosmtplib.SMTPRecipientRefused | None = None
        for rcpt in envelope.rcpt_to:
            try:
                await client.rcpt(
                    rcpt,
                    options=options,
                    encoding="ascii" if rcpt.isascii() else "utf-8",
                    timeout=self.command_timeout,
                )
                accepted.append(rcpt)
            except aiosmtplib.SMTPRecipientRefused as exc:
                rejected.append((rcpt, exc.code, exc.message))
                last = exc
        if not accepted and last is not None:
            raise last
        return accepted, rejected

    async def _after_failure(self, phase: Phase, *, clean: bool) -> None:
        """Reset the transaction (RSET) when the connection is still sound, else drop it."""
        client = self._client
        if client is None:
            return
        if not clean or phase in (Phase.CONNECT, Phase.AUTH) or not client.is_connected:
            self._drop()
            return
        try:
            await client.rset(timeout=self.command_timeout)
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            self._drop()


def _xtext(value: str) -> str:
    """RFC 3461 xtext: ``+XX`` for '+', '=' and anything outside printable ASCII."""
    out: list[str] = []
    for ch in value:
        if ch in "+=" or not (33 <= ord(ch) <= 126):
            out.extend(f"+{b:02X}" for b in ch.encode())
        else:
            out.append(ch)
    return "".join(out)


def sender_key(account: str, gateway: str | None) -> str:
    """Deliveries sharing this key share one sender (connection)."""
    return f"gw:{gateway}" if gateway else f"acct:{account}"


SenderFactory = Callable[[SmtpConfig], Sender]
