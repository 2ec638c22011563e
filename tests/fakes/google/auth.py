"""Google's OAuth 2.0 endpoints and the bearer tokens every API route checks.

Follows "Using OAuth 2.0 for Web Server Applications"
(https://developers.google.com/identity/protocols/oauth2/web-server), "Using OAuth 2.0 for Server
to Server Applications" (https://developers.google.com/identity/protocols/oauth2/service-account)
and RFC 6749 / RFC 7523 / RFC 7636 / RFC 7009:

- ``GET /o/oauth2/v2/auth`` (also ``/o/oauth2/auth``) auto-approves for the consent user
  (``login_hint`` if it names a user, else ``FakeGoogle.set_consent_user``, else the first user)
  and redirects to ``redirect_uri`` with ``code``, ``state`` and ``scope``; a refresh token is
  issued only for ``access_type=offline``; PKCE (``plain``/``S256``) is checked at exchange.
- ``POST /token`` (also ``/o/oauth2/token``, ``/oauth2/v4/token``): ``authorization_code``,
  ``refresh_token`` (rotation optional), ``urn:ietf:params:oauth:grant-type:jwt-bearer`` with an
  RS256 assertion verified against the service account's registered public keys, ``sub`` for
  domain-wide delegation. Client authentication: ``client_secret_post`` or ``client_secret_basic``.
- ``GET /oauth2/v3/userinfo`` (and ``/oauth2/v2/userinfo``), ``GET /oauth2/v3/tokeninfo``,
  ``POST /revoke`` (also ``/o/oauth2/revoke``).

Errors are RFC 6749 bodies: ``{"error": "invalid_grant", "error_description": "..."}``.
Not modelled: ``id_token`` (OpenID Connect), device flow, incremental authorization.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from .errors import unauthenticated
from .util import Clock, IdSource, b64url_decode, b64url_nopad

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_TOKEN_URIS = {
    "https://oauth2.googleapis.com/token",
    "https://accounts.google.com/o/oauth2/token",
    "https://www.googleapis.com/oauth2/v4/token",
}
DEFAULT_CLIENT_ID = "fake-client-id.apps.googleusercontent.com"
DEFAULT_CLIENT_SECRET = "fake-client-secret"


class OAuthError(Exception):
    """An RFC 6749 error answer of the OAuth endpoints."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status

    def response(self) -> JSONResponse:
        """The JSON answer."""
        body = {"error": self.error, "error_description": self.description}
        return JSONResponse(body, status_code=self.status)


@dataclass
class Client:
    """A registered OAuth client (web application)."""

    client_id: str
    client_secret: str
    redirect_uris: list[str] = field(default_factory=list)


@dataclass
class ServiceAccount:
    """A service account: its public keys (by key id) and whether it may impersonate users."""

    client_email: str
    keys: dict[str, rsa.RSAPublicKey]
    delegation: bool = True


@dataclass
class Grant:
    """One consent: a refresh-token lineage (``refresh_token`` None for one-off tokens)."""

    subject: str
    scopes: frozenset[str]
    client_id: str
    refresh_token: str | None = None
    revoked: bool = False


@dataclass
class AccessToken:
    """An issued access token."""

    token: str
    subject: str
    scopes: frozenset[str]
    expires_at: float
    grant: Grant
    revoked: bool = False

    def has_any(self, scopes: list[str]) -> bool:
        """Whether one of ``scopes`` was granted."""
        return bool(self.scopes.intersection(scopes))


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    subject: str
    scopes: frozenset[str]
    offline: bool
    challenge: str | None
    challenge_method: str
    expires_at: float


class TokenStore:
    """Clients, service accounts, codes and tokens. Thread-safe."""

    def __init__(
        self,
        clock: Clock,
        ids: IdSource,
        user_exists: Callable[[str], bool],
        *,
        token_lifetime: int = 3599,
        rotate_refresh_tokens: bool = False,
    ) -> None:
        self._clock = clock
        self._ids = ids
        self._user_exists = user_exists
        self.token_lifetime = token_lifetime
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.token_url = ""
        self.consent_user: str | None = None
        self.deny_consent = False
        self.clients: dict[str, Client] = {
            DEFAULT_CLIENT_ID: Client(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
        }
        self.service_accounts: dict[str, ServiceAccount] = {}
        self._codes: dict[str, _Code] = {}
        self._access: dict[str, AccessToken] = {}
        self._refresh: dict[str, Grant] = {}
        self._seen_jti: set[str] = set()
        self._users_order: list[str] = []
        self._lock = threading.RLock()

    # -- tokens ----------------------------------------------------------------------------
    def issue(
        self,
        subject: str,
        scopes: frozenset[str],
        grant: Grant | None = None,
        lifetime: int | None = None,
    ) -> AccessToken:
        """A new access token for ``subject``."""
        with self._lock:
            grant = grant or Grant(subject, scopes, DEFAULT_CLIENT_ID)
            token = AccessToken(
                "ya29.fake-" + self._ids.token(),
                subject,
                scopes,
                self._clock.now() + (self.token_lifetime if lifetime is None else lifetime),
                grant,
            )
            self._access[token.token] = token
            return token

    def new_refresh(self, grant: Grant) -> str:
        """Attach a new refresh token to ``grant``."""
        with self._lock:
            if grant.refresh_token:
                self._refresh.pop(grant.refresh_token, None)
            grant.refresh_token = "1//fake-" + self._ids.token()
            self._refresh[grant.refresh_token] = grant
            return grant.refresh_token

    def check_bearer(self, authorization: str | None) -> AccessToken:
        """The token of an ``Authorization: Bearer`` header, or the 401 GoogleError."""
        if not authorization or not authorization.lower().startswith("bearer "):
            raise unauthenticated(missing=True)
        value = authorization[7:].strip()
        with self._lock:
            token = self._access.get(value)
            if (
                token is None
                or token.revoked
                or token.grant.revoked
                or token.expires_at <= self._clock.now()
            ):
                raise unauthenticated(missing=False)
            return token

    def expire(self, subject: str | None = None, token: str | None = None) -> None:
        """Expire access tokens (of ``subject``, or one ``token``, or all)."""
        with self._lock:
            for item in self._access.values():
                if (token is None or item.token == token) and (
                    subject is None or item.subject.lower() == subject.lower()
                ):
                    item.expires_at = self._clock.now() - 1

    def revoke(self, value: str) -> bool:
        """Revoke an access or refresh token and its whole grant (RFC 7009)."""
        with self._lock:
            grant = self._refresh.get(value)
            if grant is None and value in self._access:
                grant = self._access[value].grant
                self._access[value].revoked = True
            if grant is None:
                return False
            grant.revoked = True
            return True

    def register_user(self, email: str) -> None:
        """Remember the order users were added (for the default consent user)."""
        with self._lock:
            self._users_order.append(email)

    # -- service accounts ------------------------------------------------------------------
    def add_service_account(
        self,
        client_email: str,
        public_key: rsa.RSAPublicKey | bytes | str,
        key_id: str | None = None,
        *,
        delegation: bool = True,
    ) -> None:
        """Register a public key (PEM, or an ``RSAPublicKey``) of a service account."""
        if isinstance(public_key, str):
            public_key = public_key.encode()
        if isinstance(public_key, bytes):
            loaded = serialization.load_pem_public_key(public_key)
            if not isinstance(loaded, rsa.RSAPublicKey):
                raise TypeError("service account keys must be RSA")
            public_key = loaded
        with self._lock:
            account = self.service_accounts.setdefault(
                client_email, ServiceAccount(client_email, {}, delegation)
            )
            account.delegation = delegation
            account.keys[key_id or f"key{len(account.keys) + 1}"] = public_key

    def _jwt_grant(self, assertion: str) -> dict[str, Any]:
        try:
            head_b64, body_b64, sig_b64 = assertion.split(".")
            header = json.loads(b64url_decode(head_b64))
            claims = json.loads(b64url_decode(body_b64))
            signature = b64url_decode(sig_b64)
        except (ValueError, json.JSONDecodeError):
            raise OAuthError("invalid_grant", "Invalid JWT: malformed") from None
        if header.get("alg") != "RS256":
            raise OAuthError("invalid_grant", "Invalid JWT: unsupported algorithm")
        account = self.service_accounts.get(str(claims.get("iss", "")))
        if account is None:
            raise OAuthError("invalid_client", "The OAuth client was not found.", 401)
        keys = (
            [account.keys[header["kid"]]]
            if header.get("kid") in account.keys
            else list(account.keys.values())
        )
        signed = f"{head_b64}.{body_b64}".encode()
        for key in keys:
            try:
                key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
                break
            except InvalidSignature:
                continue
        else:
            raise OAuthError("invalid_grant", "Invalid JWT Signature.")
        now = self._clock.now()
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, int | float) or not isinstance(iat, int | float):
            raise OAuthError("invalid_grant", "Invalid JWT: missing iat or exp")
        if exp < now - 30 or iat > now + 300 or exp - iat > 3600:
            raise OAuthError(
                "invalid_grant",
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a "
                "reasonable timeframe. Check your iat and exp values in the JWT claim.",
            )
        if claims.get("aud") not in GOOGLE_TOKEN_URIS | {self.token_url}:
            raise OAuthError("invalid_grant", "Invalid JWT: audience is not the token endpoint")
        scopes = frozenset(str(claims.get("scope", "")).split())
        if not scopes:
            raise OAuthError("invalid_scope", "Empty or missing scope not allowed.")
        subject = account.client_email
        if claims.get("sub") and claims["sub"] != account.client_email:
            if not account.delegation:
                raise OAuthError(
                    "unauthorized_client",
                    "Client is unauthorized to retrieve access tokens using this method, or "
                    "client not authorized for any of the scopes requested.",
                    401,
                )
            if not self._user_exists(str(claims["sub"])):
                raise OAuthError("invalid_grant", "Invalid email or User ID")
            subject = str(claims["sub"])
        token = self.issue(subject, scopes)
        return {
            "access_token": token.token,
            "expires_in": self.token_lifetime,
            "token_type": "Bearer",
        }

    # -- authorization code and refresh ----------------------------------------------------
    def _client(self, form: dict[str, str], authorization: str | None) -> Client:
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if authorization and authorization.lower().startswith("basic "):
            decoded = base64.b64decode(authorization[6:]).decode()
            user, _, password = decoded.partition(":")
            client_id, secret = urllib.parse.unquote(user), urllib.parse.unquote(password)
        client = self.clients.get(client_id or "")
        if client is None or client.client_secret != secret:
            raise OAuthError("invalid_client", "Unauthorized", 401)
        return client

    def _code_grant(self, form: dict[str, str], client: Client) -> dict[str, Any]:
        code = self._codes.pop(form.get("code", ""), None)
        if (
            code is None
            or code.expires_at < self._clock.now()
            or code.client_id != client.client_id
        ):
            raise OAuthError("invalid_grant", "Malformed auth code.")
        if form.get("redirect_uri") != code.redirect_uri:
            raise OAuthError("redirect_uri_mismatch", "Bad Request")
        if code.challenge is not None:
            verifier = form.get("code_verifier", "")
            if code.challenge_method == "S256":
                verifier = b64url_nopad(hashlib.sha256(verifier.encode()).digest())
            if verifier != code.challenge:
                raise OAuthError("invalid_grant", "Invalid code verifier.")
        grant = Grant(code.subject, code.scopes, client.client_id)
        token = self.issue(code.subject, code.scopes, grant)
        body: dict[str, Any] = {
            "access_token": token.token,
            "expires_in": self.token_lifetime,
            "scope": " ".join(sorted(code.scopes)),
            "token_type": "Bearer",
        }
        if code.offline:
            body["refresh_token"] = self.new_refresh(grant)
        return body

    def _refresh_grant(self, form: dict[str, str], client: Client) -> dict[str, Any]:
        grant = self._refresh.get(form.get("refresh_token", ""))
        if grant is None or grant.revoked or grant.client_id != client.client_id:
            raise OAuthError("invalid_grant", "Token has been expired or revoked.")
        scopes = grant.scopes
        if form.get("scope"):
            asked = frozenset(form["scope"].split())
            if not asked <= grant.scopes:
                raise OAuthError("invalid_scope", "Some requested scopes were invalid.")
            scopes = asked
        token = self.issue(grant.subject, scopes, grant)
        body: dict[str, Any] = {
            "access_token": token.token,
            "expires_in": self.token_lifetime,
            "scope": " ".join(sorted(scopes)),
            "token_type": "Bearer",
        }
        if self.rotate_refresh_tokens:
            body["refresh_token"] = self.new_refresh(grant)
        return body

    def token_endpoint(self, form: dict[str, str], authorization: str | None) -> dict[str, Any]:
        """Answer ``POST /token`` (raises ``OAuthError``)."""
        with self._lock:
            grant_type = form.get("grant_type")
            if grant_type == JWT_BEARER:
                return self._jwt_grant(form.get("assertion", ""))
            if grant_type == "authorization_code":
                return self._code_grant(form, self._client(form, authorization))
            if grant_type == "refresh_token":
                return self._refresh_grant(form, self._client(form, authorization))
            raise OAuthError("unsupported_grant_type", f"Invalid grant_type: {grant_type}")

    def authorize(self, params: dict[str, str]) -> str:
        """Answer ``GET /o/oauth2/v2/auth``: the redirect location."""
        with self._lock:
            client = self.clients.get(params.get("client_id", ""))
            if client is None:
                raise OAuthError("invalid_client", "The OAuth client was not found.", 401)
            redirect_uri = params.get("redirect_uri", "")
            if not redirect_uri or (
                client.redirect_uris and redirect_uri not in client.redirect_uris
            ):
                raise OAuthError("redirect_uri_mismatch", "Bad Request")
            query: dict[str, str] = {}
            if "state" in params:
                query["state"] = params["state"]
            hint = params.get("login_hint")
            subject = (
                hint
                if hint and self._user_exists(hint)
                else self.consent_user or (self._users_order[0] if self._users_order else None)
            )
            if params.get("response_type", "code") != "code":
                query["error"] = "unsupported_response_type"
            elif self.deny_consent or subject is None:
                query["error"] = "access_denied"
            else:
                scopes = frozenset(params.get("scope", "").split())
                code = "4/0fake-" + self._ids.token()
                self._codes[code] = _Code(
                    client.client_id,
                    redirect_uri,
                    subject,
                    scopes,
                    params.get("access_type") == "offline",
                    params.get("code_challenge"),
                    params.get("code_challenge_method", "plain"),
                    self._clock.now() + 600,
                )
                query["code"] = code
                query["scope"] = " ".join(sorted(scopes))
            separator = "&" if "?" in redirect_uri else "?"
            return redirect_uri + separator + urllib.parse.urlencode(query)

    def lookup(self, value: str) -> AccessToken | None:
        """A live access token, or None."""
        with self._lock:
            token = self._access.get(value)
            alive = token is not None and not token.revoked and not token.grant.revoked
            return token if alive and token.expires_at > self._clock.now() else None


def user_sub(email: str) -> str:
    """A stable numeric ``sub`` for an address."""
    return str(int(hashlib.sha256(email.lower().encode()).hexdigest()[:15], 16))


async def _form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (no python-multipart needed)."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return dict(urllib.parse.parse_qsl(body, keep_blank_values=True))


def routes(store: TokenStore) -> list[Route]:
    """The OAuth 2.0 routes."""

    async def token(request: Request) -> Response:
        form = await _form(request)
        try:
            body = store.token_endpoint(form, request.headers.get("authorization"))
        except OAuthError as exc:
            return exc.response()
        return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    async def authorize(request: Request) -> Response:
        try:
            location = store.authorize(dict(request.query_params))
        except OAuthError as exc:
            return exc.response()
        return RedirectResponse(location, status_code=302)

    async def userinfo(request: Request) -> Response:
        header = request.headers.get("authorization", "")
        found = store.lookup(header[7:].strip()) if header.lower().startswith("bearer ") else None
        if found is None:
            return JSONResponse(
                {"error": "invalid_request", "error_description": "Invalid Credentials"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        email = found.subject
        return JSONResponse(
            {
                "sub": user_sub(email),
                "email": email,
                "email_verified": True,
                "name": email.split("@")[0].title(),
                "hd": email.split("@")[-1],
            }
        )

    async def tokeninfo(request: Request) -> Response:
        value = request.query_params.get("access_token", "")
        found = store.lookup(value)
        if found is None:
            return JSONResponse({"error_description": "Invalid Value"}, status_code=400)
        expires_in = int(found.expires_at - store._clock.now())
        return JSONResponse(
            {
                "azp": found.grant.client_id,
                "aud": found.grant.client_id,
                "sub": user_sub(found.subject),
                "scope": " ".join(sorted(found.scopes)),
                "exp": str(int(found.expires_at)),
                "expires_in": str(expires_in),
                "email": found.subject,
                "email_verified": "true",
                "access_type": "offline" if found.grant.refresh_token else "online",
            }
        )

    async def revoke(request: Request) -> Response:
        form = await _form(request)
        value = form.get("token") or request.query_params.get("token") or ""
        if not store.revoke(value):
            return JSONResponse(
                {"error": "invalid_token", "error_description": "Token expired or revoked"},
                status_code=400,
            )
        return JSONResponse({})

    return [
        Route("/token", token, methods=["POST"]),
        Route("/o/oauth2/token", token, methods=["POST"]),
        Route("/oauth2/v4/token", token, methods=["POST"]),
        Route("/o/oauth2/v2/auth", authorize, methods=["GET"]),
        Route("/o/oauth2/auth", authorize, methods=["GET"]),
        Route("/oauth2/v3/userinfo", userinfo, methods=["GET", "POST"]),
        Route("/oauth2/v2/userinfo", userinfo, methods=["GET"]),
        Route("/oauth2/v3/tokeninfo", tokeninfo, methods=["GET", "POST"]),
        Route("/revoke", revoke, methods=["POST"]),
        Route("/o/oauth2/revoke", revoke, methods=["POST", "GET"]),
    ]
