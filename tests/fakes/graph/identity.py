"""Microsoft identity platform, just enough for Graph: apps, users' consent, tokens.

Follows:
- authorization code flow: https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-auth-code-flow
  (``/{tenant}/oauth2/v2.0/authorize`` redirects with ``code`` and ``state``; ``/token`` with
  ``grant_type=authorization_code`` or ``refresh_token``; a refresh returns a new refresh token)
- client credentials: https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-client-creds-grant-flow
  (``scope=https://graph.microsoft.com/.default``; the token carries the app's roles)
- token errors: ``{"error", "error_description": "AADSTS…", "error_codes", "timestamp",
  "trace_id", "correlation_id"}``
- Graph's 401: ``InvalidAuthenticationToken`` (https://learn.microsoft.com/en-us/graph/resolve-auth-errors)

Access tokens are opaque random strings here (real ones are JWTs the client must not parse).
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.graph.errors import GraphError

GRAPH_RESOURCE = "https://graph.microsoft.com/"
DEFAULT_USER_SCOPES: frozenset[str] = frozenset(
    {
        "openid",
        "profile",
        "email",
        "offline_access",
        "User.Read",
        "Mail.ReadWrite",
        "Mail.Send",
        "Mail.ReadWrite.Shared",
        "Mail.Send.Shared",
    }
)
TOKEN_LIFETIME = 3599


@dataclass
class Token:
    """An access token: delegated (``user_id`` set, ``scopes``) or app-only (``roles``)."""

    value: str
    client_id: str
    user_id: str | None
    scopes: frozenset[str]
    expires_at: float

    @property
    def app_only(self) -> bool:
        return self.user_id is None


@dataclass
class App:
    """A registered application (client id, secret, application permissions)."""

    client_id: str
    secret: str
    roles: frozenset[str]


@dataclass
class Grant:
    """What an authorization code or refresh token stands for."""

    client_id: str
    user_id: str
    scopes: frozenset[str]
    redirect_uri: str | None = None
    expires_at: float = 0.0


class TokenError(Exception):
    """An OAuth error answer of the token endpoint."""

    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.body: dict[str, Any] = {
            "error": error,
            "error_description": f"AADSTS{code}: {description}",
            "error_codes": [code],
            "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
            "trace_id": str(uuid.uuid4()),
            "correlation_id": str(uuid.uuid4()),
        }


def normalize_scopes(value: str) -> list[str]:
    """``https://graph.microsoft.com/Mail.Read offline_access`` -> ``["Mail.Read", "offline_access"]``."""
    out = []
    for s in value.split():
        out.append(s[len(GRAPH_RESOURCE) :] if s.lower().startswith(GRAPH_RESOURCE) else s)
    return out


@dataclass
class Identity:
    """Apps, tokens, codes and refresh tokens of the fake tenant."""

    tenant_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    apps: dict[str, App] = field(default_factory=dict)
    tokens: dict[str, Token] = field(default_factory=dict)
    codes: dict[str, Grant] = field(default_factory=dict)
    refresh_tokens: dict[str, Grant] = field(default_factory=dict)

    def issue(self, client_id: str, user_id: str | None, scopes: frozenset[str]) -> Token:
        tok = Token(
            secrets.token_urlsafe(32), client_id, user_id, scopes, time.time() + TOKEN_LIFETIME
        )
        self.tokens[tok.value] = tok
        return tok

    def authenticate(self, authorization: str | None) -> Token:
        """The bearer token of a Graph request, else 401 ``InvalidAuthenticationToken``."""
        if not authorization or not authorization.lower().startswith("bearer "):
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
        tok = self.tokens.get(authorization[7:].strip())
        if tok is None:
            raise GraphError(
                401,
                "InvalidAuthenticationToken",
                "IDX14100: JWT is not well formed, there are no dots (.).",
            )
        if tok.expires_at < time.time():
            raise GraphError(
                401,
                "InvalidAuthenticationToken",
                "Lifetime validation failed, the token is expired.",
            )
        return tok

    def _client(self, form: dict[str, str]) -> App:
        app = self.apps.get(form.get("client_id", ""))
        if app is None:
            raise TokenError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{form.get('client_id')}' was not found in the directory.",
            )
        return app

    def _secret(self, app: App, form: dict[str, str]) -> None:
        if form.get("client_secret") != app.secret:
            raise TokenError(401, "invalid_client", 7000215, "Invalid client secret provided.")

    def token_response(self, tok: Token, refresh: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": " ".join(sorted(tok.scopes))
            if not tok.app_only
            else f"{GRAPH_RESOURCE}.default",
            "expires_in": TOKEN_LIFETIME,
            "ext_expires_in": TOKEN_LIFETIME,
            "access_token": tok.value,
        }
        if refresh:
            body["refresh_token"] = refresh
        return body

    def exchange(
        self, form: dict[str, str], user_scopes: dict[str, frozenset[str]]
    ) -> dict[str, Any]:
        """The ``/token`` endpoint: authorization_code, refresh_token, client_credentials."""
        grant_type = form.get("grant_type", "")
        app = self._client(form)
        if grant_type == "client_credentials":
            self._secret(app, form)
            if normalize_scopes(form.get("scope", "")) != [".default"]:
                raise TokenError(
                    400,
                    "invalid_scope",
                    1002012,
                    "The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).",
                )
            return self.token_response(self.issue(app.client_id, None, app.roles), None)
        if grant_type == "authorization_code":
            self._secret(app, form)
            grant = self.codes.pop(form.get("code", ""), None)
            if grant is None or grant.expires_at < time.time() or grant.client_id != app.client_id:
                raise TokenError(
                    400,
                    "invalid_grant",
                    70000,
                    "The provided authorization code or refresh token has expired due to inactivity.",
                )
            if grant.redirect_uri and form.get("redirect_uri") != grant.redirect_uri:
                raise TokenError(
                    400,
                    "invalid_grant",
                    50148,
                    "The redirect URI specified in the request does not match the redirect URI used in the authorization request.",
                )
        elif grant_type == "refresh_token":
            self._secret(app, form)
            grant = self.refresh_tokens.get(form.get("refresh_token", ""))  # type: ignore[assignment]
            if grant is None or grant.client_id != app.client_id:
                raise TokenError(
                    400,
                    "invalid_grant",
                    9002313,
                    "Invalid request. Request is malformed or invalid.",
                )
        else:
            raise TokenError(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant_type}'.",
            )
        scopes = grant.scopes
        requested = normalize_scopes(form.get("scope", ""))
        if requested and requested != [".default"]:
            scopes = frozenset(
                s for s in requested if s in user_scopes.get(grant.user_id, frozenset())
            )
        tok = self.issue(app.client_id, grant.user_id, scopes)
        refresh = None
        if "offline_access" in scopes or grant_type == "refresh_token":
            refresh = secrets.token_urlsafe(40)
            self.refresh_tokens[refresh] = Grant(app.client_id, grant.user_id, grant.scopes)
        return self.token_response(tok, refresh)

    def authorize(self, params: dict[str, str], user_id: str, consented: frozenset[str]) -> str:
        """Auto-approve for ``user_id``: the code to put in the redirect."""
        app = self.apps.get(params.get("client_id", ""))
        if app is None:
            raise TokenError(
                400, "unauthorized_client", 700016, "Application was not found in the directory."
            )
        requested = normalize_scopes(params.get("scope", ""))
        scopes = (
            consented
            if requested in ([], [".default"])
            else frozenset(s for s in requested if s in consented)
        )
        code = secrets.token_urlsafe(24)
        self.codes[code] = Grant(
            app.client_id, user_id, scopes, params.get("redirect_uri"), time.time() + 600
        )
        return code
