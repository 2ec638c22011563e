"""OAuth2 applications: ``/v1/oauth2`` create, read, update, delete, list.

An app is stored as one JSON string per id (``keys.oauth_app``) plus its place in the
``keys.OAUTH_APPS`` zset. Secrets (``clientSecret``, ``serviceKey``, ``externalAccount``) are
encrypted at rest with the instance's :class:`~mailgate.store.crypto.SecretBox` and shown as
``******`` in every reply.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import RSAKey
from redis.asyncio import Redis

from mailgate.errors import BadRequest, NotFound
from mailgate.services.oauth2 import providers
from mailgate.services.oauth2.inputs import AppCreate, AppUpdate
from mailgate.services.oauth2.providers import Provider
from mailgate.store import keys
from mailgate.store.accounts import AccountStore
from mailgate.store.crypto import SecretBox
from mailgate.store.events import iso_now
from mailgate.store.redis import text

MASK = "******"
SECRET_FIELDS = ("clientSecret", "serviceKey", "externalAccount", "accessToken")
URL_FIELDS = (
    "authorizationUrl",
    "tokenUrl",
    "userInfoUrl",
    "revocationUrl",
    "apiUrl",
    "pubSubUrl",
    "redirectUrl",
)
MAX_PAGE_SIZE = 1000
APP_ID_BYTES = 12
GENERIC_AUTHORITIES = frozenset({"common", "organizations", "consumers"})


def new_app_id() -> str:
    return secrets.token_urlsafe(APP_ID_BYTES)


def validate_app(app: Mapping[str, Any]) -> None:
    """Refuse an app that could never obtain a token (checked on the merged record)."""
    provider = providers.provider_of(app)
    for field in URL_FIELDS:
        value = app.get(field)
        if isinstance(value, str) and value:
            providers.check_url(value, field)
    providers.cloud_of(app)
    providers.authority_of(app)

    def need(*fields: str) -> None:
        missing = [f for f in fields if not app.get(f)]
        if missing:
            raise BadRequest(
                f'"{missing[0]}" is required for {provider.value} applications',
                "InputValidationError",
            )

    if provider is Provider.GMAIL_SERVICE:
        need("serviceKey")
        if not (app.get("serviceClientEmail") or app.get("serviceClient")):
            need("serviceClientEmail")
        try:
            RSAKey.import_key(str(app["serviceKey"]))
        except (JoseError, ValueError, TypeError) as exc:
            raise BadRequest(
                '"serviceKey" must be a PEM encoded RSA private key', "InputValidationError"
            ) from exc
    elif provider is Provider.OUTLOOK_SERVICE:
        need("clientId", "clientSecret", "authority")
        if str(app.get("authority")) in GENERIC_AUTHORITIES:
            raise BadRequest(
                '"authority" must be a tenant id for outlookService applications',
                "InputValidationError",
            )
    else:
        need("clientId", "clientSecret")
        if provider is Provider.GENERIC:
            need("authorizationUrl", "tokenUrl")


def app_view(app: Mapping[str, Any]) -> dict[str, Any]:
    """The app as the API shows it: secrets masked, defaults filled."""
    out = {k: v for k, v in app.items() if v is not None}
    for field in SECRET_FIELDS:
        if out.get(field):
            out[field] = MASK
    out.setdefault("enabled", False)
    out.setdefault("baseScopes", providers.BaseScopes.IMAP.value)
    if out.get("provider") in (Provider.OUTLOOK, Provider.OUTLOOK_SERVICE):
        out.setdefault("authority", "common")
        out.setdefault("cloud", providers.Cloud.GLOBAL.value)
    return out


class AppService:
    def __init__(self, redis: Redis, box: SecretBox, accounts: AccountStore) -> None:
        self.redis = redis
        self.box = box
        self.accounts = accounts

    # --- storage ------------------------------------------------------------------------------
    def _seal(self, app: dict[str, Any]) -> str:
        sealed = dict(app)
        for field in SECRET_FIELDS:
            value = sealed.get(field)
            if isinstance(value, str) and value:
                sealed[field] = self.box.encrypt(value)
        return json.dumps(sealed, separators=(",", ":"))

    def _open(self, raw: bytes | str) -> dict[str, Any]:
        app: dict[str, Any] = json.loads(raw)
        for field in SECRET_FIELDS:
            value = app.get(field)
            if isinstance(value, str) and value:
                app[field] = self.box.decrypt(value)
        return app

    async def load(self, app_id: str) -> dict[str, Any]:
        """The app with its secrets in the clear (for the token and consent services)."""
        raw = await self.redis.get(keys.oauth_app(app_id))
        if raw is None:
            raise NotFound("OAuth2 application was not found", "AppNotFound")
        return self._open(raw)

    async def _save(self, app: dict[str, Any], *, new: bool) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.oauth_app(app["id"]), self._seal(app))
            if new:
                pipe.zadd(keys.OAUTH_APPS, {app["id"]: int(time.time() * 1000)})
            await pipe.execute()

    # --- use cases ----------------------------------------------------------------------------
    async def create(self, body: AppCreate) -> dict[str, Any]:
        app = body.model_dump(exclude_none=True, mode="json")
        app = {k: v for k, v in app.items() if v is not False}
        now = iso_now()
        app.update(id=new_app_id(), created=now, updated=now)
        app.setdefault("enabled", False)
        app.setdefault("baseScopes", providers.BaseScopes.IMAP.value)
        validate_app(app)
        await self._save(app, new=True)
        return {"id": app["id"], "created": True}

    async def update(self, app_id: str, body: AppUpdate) -> dict[str, Any]:
        app = await self.load(app_id)
        changes = body.model_dump(exclude_unset=True, mode="json")
        for key, value in changes.items():
            if value is None or (value is False and key not in ("enabled", "includeInListing")):
                app.pop(key, None)  # ``false`` clears an optional field
            else:
                app[key] = value
        app["updated"] = iso_now()
        validate_app(app)
        await self._save(app, new=False)
        return {"id": app_id, "updated": True}

    async def get(self, app_id: str) -> dict[str, Any]:
        view = app_view(await self.load(app_id))
        view["accounts"] = await self.count_accounts(app_id)
        return view

    async def delete(self, app_id: str) -> dict[str, Any]:
        await self.load(app_id)
        accounts = await self.count_accounts(app_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.oauth_app(app_id))
            pipe.zrem(keys.OAUTH_APPS, app_id)
            await pipe.execute()
        return {"id": app_id, "deleted": True, "accounts": accounts}

    async def list_apps(self, *, page: int, page_size: int) -> dict[str, Any]:
        page_size = max(1, min(page_size, MAX_PAGE_SIZE))
        total = int(await self.redis.zcard(keys.OAUTH_APPS))
        ids = [
            text(r)
            for r in await self.redis.zrange(
                keys.OAUTH_APPS, page * page_size, (page + 1) * page_size - 1
            )
        ]
        apps = await self._many(ids)
        return {
            "total": total,
            "page": page,
            "pages": max(1, -(-total // page_size)),
            "apps": [app_view(a) for a in apps],
        }

    async def _many(self, ids: list[str]) -> list[dict[str, Any]]:
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for app_id in ids:
                pipe.get(keys.oauth_app(app_id))
            raws = await pipe.execute()
        return [self._open(raw) for raw in raws if raw is not None]

    async def listed(self) -> list[dict[str, Any]]:
        """Enabled apps offered on the hosted sign-up page (user consent providers only)."""
        ids = [text(r) for r in await self.redis.zrange(keys.OAUTH_APPS, 0, -1)]
        return [
            app
            for app in await self._many(ids)
            if app.get("enabled")
            and app.get("includeInListing", True)
            and providers.grant_of(providers.provider_of(app)) is providers.Grant.AUTHORIZATION_CODE
        ]

    async def count_accounts(self, app_id: str) -> int:
        ids = await self.accounts.ids()
        records = await self.accounts.get_many(ids)
        return sum(
            1 for r in records if r is not None and r.oauth2 and r.oauth2.get("provider") == app_id
        )
