"""Opening an authenticated IMAP session for an account: connect, TLS, login, ENABLE, ID."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Literal, Protocol

import structlog

from mailgate import __version__
from mailgate.backends.imap.client import ImapClient, ImapTimeouts
from mailgate.backends.imap.pacing import pacer
from mailgate.domain.account import ImapConfig
from mailgate.errors import AuthenticationError, CommandError, ConfigError

ENABLE_EXTENSIONS = ("CONDSTORE", "QRESYNC")


@dataclass(frozen=True)
class Credentials:
    user: str
    secret: str
    kind: Literal["password", "oauth2"] = "password"


class CredentialSource(Protocol):
    """Where a session gets its login secret (a stored password, or a fresh OAuth2 token)."""

    async def __call__(self) -> Credentials: ...


class StaticPassword:
    def __init__(self, user: str, password: str) -> None:
        self._creds = Credentials(user, password)

    async def __call__(self) -> Credentials:
        return self._creds


def password_source(cfg: ImapConfig) -> CredentialSource:
    if cfg.auth is None or not cfg.auth.user:
        raise ConfigError("IMAP settings have no auth.user")
    if cfg.auth.pass_ is None:
        raise ConfigError("IMAP settings have no auth.pass")
    return StaticPassword(cfg.auth.user, cfg.auth.pass_)


async def _login_oauth2(client: ImapClient, cfg: ImapConfig, creds: Credentials) -> None:
    """OAUTHBEARER when the server advertises it, else XOAUTH2."""
    if client.has_capability("AUTH=OAUTHBEARER"):
        await client.authenticate_oauthbearer(creds.user, creds.secret, cfg.host, cfg.port)
    else:
        await client.authenticate_xoauth2(creds.user, creds.secret)


async def open_session(
    cfg: ImapConfig,
    credentials: CredentialSource,
    *,
    timeouts: ImapTimeouts | None = None,
    client_name: str = "mailgate",
    ignore_cert_errors: bool = False,
    log: structlog.typing.FilteringBoundLogger | None = None,
) -> ImapClient:
    """An authenticated client with CONDSTORE/QRESYNC enabled where the server offers them."""
    verify = not ignore_cert_errors and (cfg.tls is None or cfg.tls.reject_unauthorized)
    await pacer().wait(cfg.host)
    client = await ImapClient.connect(
        cfg.host,
        cfg.port,
        secure=cfg.secure,
        starttls=True,
        tls_verify=verify,
        timeouts=timeouts or ImapTimeouts(),
        log=log,
    )
    try:
        creds = await credentials()
        if creds.kind == "oauth2":
            try:
                await _login_oauth2(client, cfg, creds)
            except AuthenticationError:
                # OAuth2 sources (backends/oauth.py) can force one refresh: the token may have
                # been revoked or expired early; a second refusal is final
                refreshed = getattr(credentials, "refreshed", None)
                if refreshed is None:
                    raise
                await _login_oauth2(client, cfg, await refreshed())
        elif client.has_capability("LOGINDISABLED") and client.has_capability("AUTH=PLAIN"):
            await client.authenticate_plain(creds.user, creds.secret)
        else:
            await client.login(creds.user, creds.secret)
        if client.has_capability("ID"):
            with contextlib.suppress(CommandError):
                await client.id({"name": client_name, "version": __version__})
        wanted = [ext for ext in ENABLE_EXTENSIONS if client.has_capability(ext)]
        if wanted and client.has_capability("ENABLE"):
            await client.enable(*wanted)
    except BaseException:
        await client.close()
        raise
    return client
