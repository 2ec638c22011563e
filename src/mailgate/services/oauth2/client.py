"""HTTP calls to a provider's OAuth2 endpoints: token, userinfo, revocation.

Failures are mapped here and nowhere else:

- network trouble, timeouts, HTTP 429 and 5xx → :class:`~mailgate.errors.ConnectError`
  (transient: the runner backs off and tries again);
- any other refusal of the token endpoint (``invalid_grant``, ``invalid_client``, ...) →
  :class:`~mailgate.backends.oauth.TokenRequestFailed` with the request's facts
  (``token_request``) for ``lastError.tokenRequest``;
- a failed userinfo request → :class:`~mailgate.errors.BackendError`.

Client authentication is ``client_secret_post`` (every supported provider accepts it).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from mailgate.backends.oauth import TokenRequestFailed
from mailgate.errors import BackendError, ConnectError
from mailgate.services.oauth2 import providers
from mailgate.services.oauth2.providers import Provider

#: a timeout for every network phase of a provider request
HTTP_TIMEOUT = httpx.Timeout(connect=10.0, read=20.0, write=10.0, pool=10.0)
MAX_RESPONSE_TEXT = 4096  # characters of a non-JSON error body kept in reports
DEFAULT_EXPIRES_IN = 3600.0  # seconds, when the token response has no expires_in
IDENTITY_FIELDS = ("email", "mail", "preferred_username", "userPrincipalName", "upn")

GRANT_LABELS = {
    providers.Grant.AUTHORIZATION_CODE.value: "authorization_code",
    "refresh_token": "refresh_token",
    providers.Grant.JWT_BEARER.value: "jwt_bearer",
    providers.Grant.CLIENT_CREDENTIALS.value: "client_credentials",
}


@dataclass(frozen=True)
class TokenResponse:
    access_token: str
    refresh_token: str | None
    expires_in: float
    scopes: list[str] | None
    id_token: str | None


def _parse_body(resp: httpx.Response) -> object:
    try:
        return resp.json()
    except ValueError:
        return resp.text[:MAX_RESPONSE_TEXT]


def token_request_facts(
    app: Mapping[str, Any], url: str, grant: str, scopes: list[str] | None
) -> dict[str, object]:
    """What ``lastError.tokenRequest`` reports about a request (secrets partially masked)."""
    provider = providers.provider_of(app)
    facts: dict[str, object] = {
        "url": url,
        "method": "post",
        "grant": GRANT_LABELS.get(grant, grant),
        "provider": provider.value,
    }
    if app.get("clientId"):
        facts["clientId"] = app["clientId"]
    if app.get("clientSecret"):
        facts["clientSecret"] = providers.mask_secret(str(app["clientSecret"]))
    if provider in (Provider.OUTLOOK, Provider.OUTLOOK_SERVICE):
        facts["authority"] = app.get("authority") or "common"
    if provider is Provider.GMAIL_SERVICE:
        for field in ("serviceClient", "serviceClientEmail", "googleProjectId"):
            if app.get(field):
                facts[field] = app[field]
        facts["signer"] = "serviceKey"
    if scopes:
        facts["scopes"] = scopes
    return facts


def _flags(error: str) -> dict[str, object]:
    if error == "invalid_grant":
        return {"userFlag": {"message": "The grant for this account has expired or was revoked"}}
    if error in ("invalid_client", "unauthorized_client"):
        return {
            "flag": {
                "message": "Please verify the OAuth2 application credentials",
                "code": "INVALID_CLIENT_SECRET",
            }
        }
    return {}


def decode_id_token(id_token: str) -> dict[str, Any]:
    """Claims of an ID token received straight from the token endpoint over TLS.

    OpenID Connect Core §3.1.3.7 lets a client that got the token directly from the token
    endpoint rely on TLS instead of checking the signature.
    """
    try:
        payload = id_token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError) as exc:
        raise BackendError("The provider returned an unreadable id_token") from exc
    return claims if isinstance(claims, dict) else {}


def identity_email(claims: Mapping[str, Any]) -> str | None:
    for field in IDENTITY_FIELDS:
        value = claims.get(field)
        if isinstance(value, str) and "@" in value:
            return value
    for field in IDENTITY_FIELDS:
        value = claims.get(field)
        if isinstance(value, str) and value:
            return value
    return None


class OAuth2Client:
    """Talks to token, userinfo and revocation endpoints (one short-lived connection each)."""

    def __init__(self, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._transport = transport

    def _http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=HTTP_TIMEOUT, transport=self._transport)

    async def token(
        self,
        app: Mapping[str, Any],
        grant: str,
        form: dict[str, str],
        *,
        scopes: list[str] | None = None,
        client_auth: bool = True,
    ) -> TokenResponse:
        url = providers.endpoints(app).token_url
        if not url:
            raise BackendError("The OAuth2 application has no token URL")
        body = {"grant_type": grant, **form}
        if client_auth:
            if app.get("clientId"):
                body["client_id"] = str(app["clientId"])
            if app.get("clientSecret"):
                body["client_secret"] = str(app["clientSecret"])
        facts = token_request_facts(app, url, grant, scopes)
        try:
            async with self._http() as http:
                resp = await http.post(url, data=body, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise ConnectError(f"Token request to {url} failed: {exc!r}") from exc
        parsed = _parse_body(resp)
        if resp.status_code == 429 or resp.status_code >= 500:
            raise ConnectError(
                f"Token request to {url} failed with HTTP {resp.status_code}",
                server_response=json.dumps(parsed) if not isinstance(parsed, str) else parsed,
            )
        data = parsed if isinstance(parsed, dict) else {}
        access = data.get("access_token")
        if resp.status_code != 200 or not isinstance(access, str) or not access:
            facts["status"] = resp.status_code
            facts["response"] = parsed
            facts.update(_flags(str(data.get("error") or "")))
            label = facts["grant"]
            message = (
                f"Token request failed for {facts['provider']} ({label}, HTTP {resp.status_code})"
            )
            raise TokenRequestFailed(
                message,
                token_request=facts,
                server_response=json.dumps(parsed) if not isinstance(parsed, str) else parsed,
            )
        scope = data.get("scope")
        try:
            expires_in = float(data.get("expires_in") or DEFAULT_EXPIRES_IN)
        except (TypeError, ValueError):
            expires_in = DEFAULT_EXPIRES_IN
        refresh = data.get("refresh_token")
        id_token = data.get("id_token")
        return TokenResponse(
            access_token=access,
            refresh_token=refresh if isinstance(refresh, str) and refresh else None,
            expires_in=expires_in,
            scopes=scope.split() if isinstance(scope, str) else None,
            id_token=id_token if isinstance(id_token, str) else None,
        )

    async def userinfo(self, app: Mapping[str, Any], access_token: str) -> dict[str, Any]:
        url = providers.endpoints(app).userinfo_url
        if not url:
            return {}
        params = {"access_token": access_token} if app.get("provider") == Provider.MAIL_RU else {}
        try:
            async with self._http() as http:
                resp = await http.get(
                    url,
                    params=params,
                    headers={
                        "Authorization": f"Bearer {access_token}",
                        "Accept": "application/json",
                    },
                )
        except httpx.HTTPError as exc:
            raise ConnectError(f"Userinfo request to {url} failed: {exc!r}") from exc
        parsed = _parse_body(resp)
        if resp.status_code != 200 or not isinstance(parsed, dict):
            raise BackendError(
                f"Userinfo request failed with HTTP {resp.status_code}",
                server_response=json.dumps(parsed) if not isinstance(parsed, str) else parsed,
            )
        return parsed

    async def revoke(self, app: Mapping[str, Any], token: str) -> None:
        """Best effort revocation (RFC 7009); errors are the caller's to ignore."""
        url = providers.endpoints(app).revocation_url
        if not url:
            return
        body = {"token": token}
        if app.get("clientId"):
            body["client_id"] = str(app["clientId"])
        if app.get("clientSecret"):
            body["client_secret"] = str(app["clientSecret"])
        try:
            async with self._http() as http:
                await http.post(url, data=body)
        except httpx.HTTPError as exc:
            raise ConnectError(f"Revocation request to {url} failed: {exc!r}") from exc
