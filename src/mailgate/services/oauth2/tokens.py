"""Access tokens of OAuth2 accounts: cached, refreshed shortly before expiry, one refresher.

:class:`TokenService` implements :class:`~mailgate.backends.oauth.TokenProvider`. A stored token
is handed out while more than :data:`REFRESH_MARGIN` seconds of its life remain; otherwise (or
when forced after a server refused it) it is refreshed under a per-account Redis lock, so two
processes never spend the same refresh token::

    read record ── fresh? ──yes──► token
         │no
         ▼
    SET lock NX PX ──won──► read again ── someone else refreshed? ──yes──► token
         │lost                 │no
         ▼                     ▼
    wait until the lock    token request ► save (rotated refresh token kept) ► release
    is gone, read again    (owner check in one script)
    (new token? use it; else try to take the lock)

Grants: ``refresh_token`` for consent providers, a signed JWT assertion (RFC 7523) for
``gmailService`` (domain-wide delegation: ``sub`` is the mailbox), ``client_credentials`` for
``outlookService``. A refused token request raises
:class:`~mailgate.backends.oauth.TokenRequestFailed`, which the runner reports once per streak as
``authenticationError`` with ``lastError.tokenRequest``.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey
from redis.asyncio import Redis

from mailgate.backends.oauth import TokenRequestFailed
from mailgate.domain.account import AccountRecord, Auth, SmtpConfig
from mailgate.domain.sync import parse_iso
from mailgate.errors import AuthenticationError, ConfigError, ConnectError, MailgateError, NotFound
from mailgate.services.oauth2 import providers
from mailgate.services.oauth2.apps import AppService, validate_app
from mailgate.services.oauth2.client import OAuth2Client, TokenResponse, token_request_facts
from mailgate.services.oauth2.providers import Grant, Provider
from mailgate.store import keys
from mailgate.store.accounts import AccountStore

REFRESH_MARGIN = 30.0  # seconds of remaining life below which a token is refreshed
LOCK_TTL_MS = 45_000  # the refresh lock outlives one token request with all its timeouts
LOCK_WAIT = 50.0  # seconds a process waits for another one's refresh
LOCK_POLL = 0.05  # seconds between looks at a held lock
JWT_LIFETIME = 3600  # seconds an assertion for the JWT bearer grant is valid

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


def iso_from_epoch(epoch: float) -> str:
    return (
        datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def expires_at(oauth2: Mapping[str, Any]) -> float | None:
    value = oauth2.get("expires")
    parsed = parse_iso(value) if isinstance(value, str) else None
    return parsed.timestamp() if parsed is not None else None


def is_fresh(oauth2: Mapping[str, Any], now: float, margin: float = REFRESH_MARGIN) -> bool:
    """A stored access token that may still be used (no expiry known counts as usable)."""
    if not oauth2.get("accessToken"):
        return False
    expiry = expires_at(oauth2)
    return expiry is None or expiry - now > margin


def usable_after_wait(oauth2: Mapping[str, Any], seen: str | None, now: float) -> bool:
    """After waiting for another refresher: take its token when it is new and fresh."""
    token = oauth2.get("accessToken")
    return bool(token) and token != seen and is_fresh(oauth2, now)


def login_user(oauth2: Mapping[str, Any]) -> str:
    """The IMAP/SMTP login: the shared mailbox for delegated access, else the user."""
    auth = oauth2.get("auth")
    if isinstance(auth, Mapping):
        for field in ("delegatedUser", "user"):
            value = auth.get(field)
            if isinstance(value, str) and value:
                return value
    raise ConfigError("The OAuth2 settings of this account have no auth.user")


def jwt_assertion(
    app: Mapping[str, Any], subject: str, scopes: list[str], token_url: str, now: float
) -> str:
    """An RS256-signed assertion for Google's JWT bearer grant with domain-wide delegation."""
    issuer = app.get("serviceClientEmail") or app.get("serviceClient")
    if not issuer:
        raise ConfigError("The service account application has no serviceClientEmail")
    try:
        key = RSAKey.import_key(str(app.get("serviceKey") or ""))
    except (JoseError, ValueError, TypeError) as exc:
        raise ConfigError("The service account key cannot be read") from exc
    issued = int(now)
    claims = {
        "iss": str(issuer),
        "sub": subject,
        "scope": " ".join(scopes),
        "aud": token_url,
        "iat": issued,
        "exp": issued + JWT_LIFETIME,
    }
    header = {"alg": "RS256", "typ": "JWT"}
    if app.get("serviceKeyId"):
        header["kid"] = str(app["serviceKeyId"])
    return jwt.encode(header, claims, key)


def apply_tokens(oauth2: Mapping[str, Any], tokens: TokenResponse, now: float) -> dict[str, Any]:
    """The account's ``oauth2`` settings with a new token (a rotated refresh token replaces the
    old one; a response without one keeps it)."""
    out = dict(oauth2)
    out["accessToken"] = tokens.access_token
    if tokens.refresh_token:
        out["refreshToken"] = tokens.refresh_token
    out["expires"] = iso_from_epoch(now + tokens.expires_in)
    if tokens.scopes:
        out["scopes"] = tokens.scopes
    return out


@dataclass(frozen=True)
class TokenInfo:
    user: str
    access_token: str
    expires: str | None
    cached: bool
    app: dict[str, Any]
    scopes: list[str] | None


class TokenService:
    """Valid access tokens for OAuth2 accounts (the backends' :class:`TokenProvider`)."""

    def __init__(
        self,
        redis: Redis,
        accounts: AccountStore,
        apps: AppService,
        client: OAuth2Client | None = None,
    ) -> None:
        self.redis = redis
        self.accounts = accounts
        self.apps = apps
        self.client = client or OAuth2Client()

    async def access_token(self, account: str, *, refused: str | None = None) -> tuple[str, str]:
        info = await self.token(account, refused=refused)
        return info.user, info.access_token

    async def token(self, account: str, *, refused: str | None = None) -> TokenInfo:
        """A usable token; with ``refused`` (a token a server turned down) one other than it.

        Comparing with the refused token, not with whatever is stored when the call starts, is
        what lets two processes that were refused the same token at once spend one refresh: the
        later one finds a different token stored and takes it.
        """
        record = await self._record(account)
        oauth2 = record.oauth2 or {}
        app = await self._app(oauth2)
        if usable_after_wait(oauth2, refused, time.time()):
            return self._info(oauth2, app, cached=True)
        if not self._can_refresh(app, oauth2):
            if refused is not None or not oauth2.get("accessToken"):
                raise AuthenticationError(
                    "The access token was refused and there is no refresh token"
                )
            return self._info(oauth2, app, cached=True)  # let the server judge it
        if refused is None:
            stored = oauth2.get("accessToken")
            refused = stored if isinstance(stored, str) else None
        return await self._refresh_locked(account, app, refused)

    # --- internals ----------------------------------------------------------------------------
    async def _record(self, account: str) -> AccountRecord:
        record = await self.accounts.get(account)
        if record is None:
            raise ConfigError(f"Account {account} was deleted")
        if not record.oauth2:
            raise ConfigError(f"Account {account} has no OAuth2 settings")
        return record

    async def _app(self, oauth2: Mapping[str, Any]) -> dict[str, Any]:
        app_id = oauth2.get("provider")
        if not isinstance(app_id, str) or not app_id:
            raise ConfigError("The OAuth2 settings of this account name no application")
        try:
            return await self.apps.load(app_id)
        except NotFound as exc:
            raise ConfigError(f"OAuth2 application {app_id} does not exist") from exc

    @staticmethod
    def _can_refresh(app: Mapping[str, Any], oauth2: Mapping[str, Any]) -> bool:
        grant = providers.grant_of(providers.provider_of(app))
        return grant is not Grant.AUTHORIZATION_CODE or bool(oauth2.get("refreshToken"))

    @staticmethod
    def _info(oauth2: Mapping[str, Any], app: dict[str, Any], *, cached: bool) -> TokenInfo:
        expires = oauth2.get("expires")
        scopes = oauth2.get("scopes")
        return TokenInfo(
            user=login_user(oauth2),
            access_token=str(oauth2.get("accessToken") or ""),
            expires=expires if isinstance(expires, str) else None,
            cached=cached,
            app=app,
            scopes=[str(s) for s in scopes] if isinstance(scopes, list) else None,
        )

    async def _refresh_locked(
        self, account: str, app: dict[str, Any], seen: str | None
    ) -> TokenInfo:
        key = keys.oauth_lock(account)
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            owner = secrets.token_hex(16)
            if await self.redis.set(key, owner, nx=True, px=LOCK_TTL_MS):
                try:
                    record = await self._record(account)
                    oauth2 = record.oauth2 or {}
                    if usable_after_wait(oauth2, seen, time.time()):
                        return self._info(oauth2, app, cached=True)
                    return await self._refresh(record, app)
                finally:
                    await self.redis.eval(_RELEASE, 1, key, owner)
            # the holder may be another process: poll the key (no cross-process event to await)
            while await self.redis.exists(key) and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(LOCK_POLL)
            oauth2 = (await self._record(account)).oauth2 or {}
            if usable_after_wait(oauth2, seen, time.time()):
                return self._info(oauth2, app, cached=True)
            if time.monotonic() >= deadline:
                raise ConnectError("Timed out waiting for another process to refresh the token")

    async def _refresh(self, record: AccountRecord, app: dict[str, Any]) -> TokenInfo:
        oauth2 = record.oauth2 or {}
        tokens = await self.request_token(app, oauth2)
        updated = apply_tokens(oauth2, tokens, time.time())
        fresh = await self.accounts.get(record.account)
        if fresh is not None:  # not deleted meanwhile: keep other changes made since
            merged = {**(fresh.oauth2 or {}), **{k: updated[k] for k in updated if k != "auth"}}
            await self.accounts.save(msgspec.structs.replace(fresh, oauth2=merged))
        return self._info(updated, app, cached=False)

    async def request_token(
        self, app: Mapping[str, Any], oauth2: Mapping[str, Any]
    ) -> TokenResponse:
        """One token request with the grant of the app's provider."""
        provider = providers.provider_of(app)
        scopes = providers.scopes(app)
        grant = providers.grant_of(provider)
        if grant is Grant.JWT_BEARER:
            token_url = providers.endpoints(app).token_url or ""
            assertion = jwt_assertion(app, login_user(oauth2), scopes, token_url, time.time())
            return await self.client.token(
                app, grant.value, {"assertion": assertion}, scopes=scopes, client_auth=False
            )
        if grant is Grant.CLIENT_CREDENTIALS:
            return await self.client.token(
                app, grant.value, {"scope": " ".join(scopes)}, scopes=scopes
            )
        refresh = oauth2.get("refreshToken")
        if not isinstance(refresh, str) or not refresh:
            url = providers.endpoints(app).token_url or ""
            raise TokenRequestFailed(
                "No refresh token is stored for this account",
                token_request=token_request_facts(app, url, "refresh_token", scopes),
            )
        form = {"refresh_token": refresh}
        if provider is Provider.OUTLOOK:
            form["scope"] = " ".join(scopes)
        return await self.client.token(app, "refresh_token", form, scopes=scopes)

    async def smtp_config(self, record: AccountRecord, cfg: SmtpConfig) -> SmtpConfig:
        """``cfg`` with a fresh token for XOAUTH2 (``SmtpSender`` uses ``auth.access_token``).

        For the outbox: an OAuth2 account's SMTP settings carry no secret of their own.
        """
        if not record.oauth2:
            return cfg
        user, token = await self.access_token(record.account)
        return msgspec.structs.replace(cfg, auth=Auth(user=user, access_token=token))

    async def verify_app(self, app_id: str, account: str | None) -> dict[str, Any]:
        """``POST /v1/oauth2/{app}/verify``: check the setup step by step."""
        app = await self.apps.load(app_id)
        provider = providers.provider_of(app)
        steps: list[dict[str, str]] = []

        def step(step_id: str, label: str, status: str, message: str) -> None:
            steps.append({"id": step_id, "label": label, "status": status, "message": message})

        try:
            validate_app(app)
            step("config", "Application settings", "ok", "Settings are complete")
        except MailgateError as exc:
            step("config", "Application settings", "fail", str(exc))
        ends = providers.endpoints(app)
        grant = providers.grant_of(provider)
        if grant is Grant.AUTHORIZATION_CODE:
            ok = bool(ends.authorization_url and ends.token_url)
            step(
                "endpoints",
                "Authorization and token endpoints",
                "ok" if ok else "fail",
                f"{ends.authorization_url} / {ends.token_url}",
            )
            step("token", "Token request", "skip", "Needs a user's consent")
        elif grant is Grant.CLIENT_CREDENTIALS or account:
            try:
                oauth2: dict[str, Any] = {"auth": {"user": account or ""}}
                await self.request_token(app, oauth2)
                step("token", "Token request", "ok", "The provider issued an access token")
            except MailgateError as exc:
                step("token", "Token request", "fail", str(exc))
        else:
            step("token", "Token request", "skip", "Give an account to test delegation")
        out: dict[str, Any] = {
            "app": app_id,
            "provider": provider.value,
            "ok": all(s["status"] != "fail" for s in steps),
            "steps": steps,
        }
        if provider is Provider.GMAIL_SERVICE:
            out["authMethod"] = app.get("authMethod") or "serviceKey"
        if account:
            out["account"] = account
        return out
