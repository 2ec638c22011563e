"""OAuth2 routes: ``/v1/oauth2`` (applications), ``/v1/account/{account}/oauth-token`` and
``/v1/authentication/form`` (signed links to the hosted sign-up page)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from mailgate.api.auth import ApiToken, InstanceToken
from mailgate.api.deps import ContainerDep
from mailgate.errors import ConfigError, Forbidden
from mailgate.runtime.container import Container
from mailgate.services.oauth2 import providers
from mailgate.services.oauth2.inputs import AppCreate, AppUpdate, AppVerifyIn, AuthFormIn
from mailgate.services.oauth2.wiring import OAuth2

router = APIRouter(prefix="/v1", tags=["OAuth2 Applications"])


def _oauth2(c: Container) -> OAuth2:
    if c.oauth2 is None:
        raise ConfigError("OAuth2 services are not configured in this process")
    return c.oauth2


@router.get("/oauth2", summary="List OAuth2 applications")
async def list_apps(
    c: ContainerDep,
    _token: InstanceToken,
    page: int = Query(0, ge=0),
    pageSize: int = Query(20, ge=1, le=1000),
) -> dict[str, Any]:
    return await _oauth2(c).apps.list_apps(page=page, page_size=pageSize)


@router.post("/oauth2", summary="Register OAuth2 application")
async def create_app(body: AppCreate, c: ContainerDep, _token: InstanceToken) -> dict[str, Any]:
    return await _oauth2(c).apps.create(body)


@router.get("/oauth2/{app}", summary="Get application info")
async def get_app(app: str, c: ContainerDep, _token: InstanceToken) -> dict[str, Any]:
    return await _oauth2(c).apps.get(app)


@router.put("/oauth2/{app}", summary="Update OAuth2 application")
async def update_app(
    app: str, body: AppUpdate, c: ContainerDep, _token: InstanceToken
) -> dict[str, Any]:
    return await _oauth2(c).apps.update(app, body)


@router.delete("/oauth2/{app}", summary="Remove OAuth2 application")
async def delete_app(app: str, c: ContainerDep, _token: InstanceToken) -> dict[str, Any]:
    return await _oauth2(c).apps.delete(app)


@router.post("/oauth2/{app}/verify", summary="Verify OAuth2 application setup")
async def verify_app(
    app: str, body: AppVerifyIn, c: ContainerDep, _token: InstanceToken
) -> dict[str, Any]:
    return await _oauth2(c).tokens.verify_app(app, body.account)


@router.get("/account/{account}/oauth-token", summary="Get OAuth2 access token", tags=["Account"])
async def oauth_token(account: str, c: ContainerDep, _token: ApiToken) -> dict[str, Any]:
    if not await c.settings.get("enableOAuthTokensApi"):
        raise Forbidden("The OAuth2 token API is disabled", "Disabled")
    record = await c.account_service.record(account)
    if not record.oauth2:
        raise Forbidden("This account does not use OAuth2", "NotOAuth2Account")
    info = await _oauth2(c).tokens.token(account)
    out: dict[str, Any] = {
        "account": account,
        "user": info.user,
        "accessToken": info.access_token,
        "provider": providers.provider_of(info.app).value,
        "app": info.app.get("id"),
        "cached": info.cached,
    }
    if info.scopes or info.app:
        out["registeredScopes"] = info.scopes or providers.scopes(info.app)
    if info.expires:
        out["expires"] = info.expires
    return out


@router.post("/authentication/form", summary="Generate authentication link", tags=["Account"])
async def authentication_form(body: AuthFormIn, c: ContainerDep, token: ApiToken) -> dict[str, Any]:
    if token.account is not None and body.account != token.account:
        raise Forbidden("This token is bound to another account", "AccountMismatch")
    form = _oauth2(c).form
    if form is None:
        raise ConfigError("The hosted form is not configured in this process")
    return await form.link(body)
