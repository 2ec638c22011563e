"""A small OAuth2 authorization server for the tests, on a free loopback port, in a thread.

Access tokens are issued through a :class:`~tests.servers.dovecot.TokenIntrospection`, the same
registry Dovecot's ``passdb oauth2`` asks, so XOAUTH2/OAUTHBEARER logins with them are checked
for real (and fail once the token expired or was revoked).

    auth = OAuth2Server(introspection).start()
    client_id, secret = auth.register_client()
    refresh = auth.issue_refresh_token("alice", client_id)
    auth.stop()

Endpoints (``auth.url`` + path):

``GET /authorize``   auto-approves as ``approve_as`` (else ``login_hint``); PKCE S256 required;
                     redirects to ``redirect_uri`` with ``code`` and ``state`` (or ``error``
                     when ``deny`` is set)
``POST /token``      ``authorization_code`` (PKCE checked), ``refresh_token`` (rotated: the old
                     one dies), ``client_credentials``, JWT bearer (RFC 7523, RS256 assertion
                     verified with the service account's public key; ``sub`` is the user)
``GET /userinfo``    ``{sub, email}`` for a valid bearer token
``POST /revoke``     RFC 7009 for refresh and access tokens

Every token request is recorded in ``token_requests`` (grant, client, user, outcome).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from tests.servers.dovecot import TokenIntrospection
from tests.servers.ports import HOST

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CODE_TTL = 120.0


@dataclass
class Client:
    client_id: str
    secret: str | None
    public_key: RSAKey | None = None  # service accounts (JWT bearer)


@dataclass
class PendingCode:
    client_id: str
    redirect_uri: str
    challenge: str
    user: str
    scope: str
    expires: float


@dataclass
class TokenRecord:
    grant: str
    client_id: str | None
    user: str | None
    status: int
    error: str | None = None
    form: dict[str, str] = field(default_factory=dict)


class OAuth2Server:
    def __init__(self, introspection: TokenIntrospection, *, access_ttl: float = 60.0) -> None:
        self.introspection = introspection
        self.access_ttl = access_ttl
        self.approve_as: str | None = None
        self.deny = False
        self.app_only_user = "app-only"
        self._lock = threading.Lock()
        self._clients: dict[str, Client] = {}
        self._codes: dict[str, PendingCode] = {}
        self._refresh: dict[str, tuple[str, str]] = {}  # refresh token -> (client id, user)
        self.token_requests: list[TokenRecord] = []
        self.grants: Counter[str] = Counter()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(data)

            def _redirect(self, location: str) -> None:
                self.send_response(302)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                if parts.path == "/authorize":
                    self._redirect(owner._authorize(query))
                elif parts.path == "/userinfo":
                    header = self.headers.get("Authorization", "")
                    token = (
                        header[7:]
                        if header.startswith("Bearer ")
                        else query.get("access_token", "")
                    )
                    user = owner.introspection.lookup(token)
                    if user is None:
                        self._reply(401, {"error": "invalid_token"})
                    else:
                        self._reply(200, {"sub": user, "email": user, "email_verified": True})
                else:
                    self._reply(404, {"error": "not_found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode(errors="replace")
                form = {k: v[0] for k, v in parse_qs(raw).items()}
                path = urlsplit(self.path).path
                if path == "/token":
                    status, body = owner._token(form, self.headers.get("Authorization", ""))
                    self._reply(status, body)
                elif path == "/revoke":
                    owner.revoke(form.get("token", ""))
                    self._reply(200, {})
                else:
                    self._reply(404, {"error": "not_found"})

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self.url: str = f"http://{HOST}:{self.port}"
        self.authorize_url = f"{self.url}/authorize"
        self.token_url = f"{self.url}/token"
        self.userinfo_url = f"{self.url}/userinfo"
        self.revoke_url = f"{self.url}/revoke"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # ---- lifecycle --------------------------------------------------------------------------

    def start(self) -> OAuth2Server:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ---- test controls ----------------------------------------------------------------------

    def endpoints(self) -> dict[str, str]:
        """The endpoint overrides of an OAuth2 app pointing here."""
        return {
            "authorizationUrl": self.authorize_url,
            "tokenUrl": self.token_url,
            "userInfoUrl": self.userinfo_url,
            "revocationUrl": self.revoke_url,
        }

    def register_client(self) -> tuple[str, str]:
        client_id = "client-" + secrets.token_hex(6)
        secret = "secret-" + secrets.token_hex(12)
        with self._lock:
            self._clients[client_id] = Client(client_id, secret)
        return client_id, secret

    def register_service_account(self) -> tuple[str, str]:
        """``(service account email, PEM private key)`` for the JWT bearer grant."""
        key = RSAKey.generate_key(2048)
        email = f"svc-{secrets.token_hex(4)}@project.iam.example.test"
        public = RSAKey.import_key(key.as_pem(private=False))
        with self._lock:
            self._clients[email] = Client(email, None, public_key=public)
        return email, key.as_pem(private=True).decode()

    def issue_refresh_token(self, user: str, client_id: str) -> str:
        token = "rt-" + secrets.token_hex(16)
        with self._lock:
            self._refresh[token] = (client_id, user)
        return token

    def issue_access_token(self, user: str, ttl: float | None = None) -> str:
        return self.introspection.issue(user, ttl if ttl is not None else self.access_ttl)

    def revoke(self, token: str) -> None:
        with self._lock:
            self._refresh.pop(token, None)
        self.introspection.revoke(token)

    def revoke_user(self, user: str) -> None:
        """Revoke every refresh token of ``user`` (the grant is gone)."""
        with self._lock:
            for token in [t for t, (_, u) in self._refresh.items() if u == user]:
                del self._refresh[token]

    def refresh_count(self, user: str | None = None) -> int:
        with self._lock:
            return sum(
                1
                for r in self.token_requests
                if r.grant == "refresh_token"
                and r.status == 200
                and (user is None or r.user == user)
            )

    # ---- endpoints --------------------------------------------------------------------------

    def _authorize(self, query: dict[str, str]) -> str:
        redirect_uri = query.get("redirect_uri", "")
        parts = urlsplit(redirect_uri)

        def back(**params: str) -> str:
            extra = urlencode(params)
            q = f"{parts.query}&{extra}" if parts.query else extra
            return urlunsplit(parts._replace(query=q))

        state = query.get("state", "")
        with self._lock:
            client = self._clients.get(query.get("client_id", ""))
        if client is None:
            return back(error="unauthorized_client", state=state)
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            return back(
                error="invalid_request", error_description="PKCE S256 required", state=state
            )
        if self.deny:
            return back(error="access_denied", state=state)
        user = self.approve_as or query.get("login_hint") or ""
        code = "code-" + secrets.token_hex(12)
        with self._lock:
            self._codes[code] = PendingCode(
                client.client_id,
                redirect_uri,
                query["code_challenge"],
                user,
                query.get("scope", ""),
                time.time() + CODE_TTL,
            )
        return back(code=code, state=state)

    def _client_auth(self, form: dict[str, str], header: str) -> Client | None:
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if header.startswith("Basic "):
            decoded = base64.b64decode(header[6:]).decode()
            client_id, _, secret = decoded.partition(":")
        with self._lock:
            client = self._clients.get(client_id or "")
        if client is None or client.secret is None or client.secret != secret:
            return None
        return client

    def _issue(self, user: str, *, refresh_for: str | None, scope: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "access_token": self.issue_access_token(user),
            "token_type": "Bearer",
            "expires_in": int(self.access_ttl),
            "scope": scope,
        }
        if refresh_for is not None:
            body["refresh_token"] = self.issue_refresh_token(user, refresh_for)
        return body

    def _token(self, form: dict[str, str], header: str) -> tuple[int, dict[str, Any]]:
        grant = form.get("grant_type", "")
        record = TokenRecord(grant, form.get("client_id"), None, 400, form=dict(form))
        try:
            status, body = self._grant(grant, form, header, record)
        except Exception as exc:  # a broken request must not kill the handler thread
            status, body = 400, {"error": "invalid_request", "error_description": repr(exc)}
        record.status = status
        record.error = body.get("error")
        with self._lock:
            self.token_requests.append(record)
            if status == 200:
                self.grants[grant] += 1
        return status, body

    def _grant(
        self, grant: str, form: dict[str, str], header: str, record: TokenRecord
    ) -> tuple[int, dict[str, Any]]:
        if grant == JWT_BEARER:
            return self._jwt_bearer(form, record)
        client = self._client_auth(form, header)
        if client is None:
            return 401, {"error": "invalid_client", "error_description": "Unknown client"}
        record.client_id = client.client_id
        if grant == "authorization_code":
            with self._lock:
                pending = self._codes.pop(form.get("code", ""), None)
            if pending is None or pending.expires < time.time():
                return 400, {"error": "invalid_grant", "error_description": "Unknown code"}
            if pending.client_id != client.client_id or pending.redirect_uri != form.get(
                "redirect_uri"
            ):
                return 400, {"error": "invalid_grant", "error_description": "Code mismatch"}
            verifier = form.get("code_verifier", "")
            digest = hashlib.sha256(verifier.encode()).digest()
            challenge = base64.urlsafe_b64encode(digest).decode().rstrip("=")
            if challenge != pending.challenge:
                return 400, {"error": "invalid_grant", "error_description": "PKCE mismatch"}
            record.user = pending.user
            return 200, self._issue(pending.user, refresh_for=client.client_id, scope=pending.scope)
        if grant == "refresh_token":
            with self._lock:
                owner = self._refresh.pop(form.get("refresh_token", ""), None)  # rotation
            if owner is None or owner[0] != client.client_id:
                return 400, {
                    "error": "invalid_grant",
                    "error_description": "Token has been expired or revoked.",
                }
            record.user = owner[1]
            return 200, self._issue(
                owner[1], refresh_for=client.client_id, scope=form.get("scope", "")
            )
        if grant == "client_credentials":
            record.user = self.app_only_user
            return 200, self._issue(
                self.app_only_user, refresh_for=None, scope=form.get("scope", "")
            )
        return 400, {"error": "unsupported_grant_type"}

    def _jwt_bearer(self, form: dict[str, str], record: TokenRecord) -> tuple[int, dict[str, Any]]:
        assertion = form.get("assertion", "")
        try:
            unverified = json.loads(
                base64.urlsafe_b64decode(assertion.split(".")[1] + "==").decode()
            )
            with self._lock:
                client = self._clients.get(str(unverified.get("iss")))
            if client is None or client.public_key is None:
                return 401, {"error": "invalid_client", "error_description": "Unknown issuer"}
            token = jwt.decode(assertion, client.public_key, algorithms=["RS256"])
        except (JoseError, ValueError, IndexError) as exc:
            return 400, {"error": "invalid_grant", "error_description": f"Bad assertion: {exc}"}
        claims = token.claims
        now = time.time()
        if claims.get("aud") != self.token_url or not (
            claims.get("iat", 0) - 60 <= now < claims.get("exp", 0)
        ):
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT claims"}
        user = str(claims.get("sub") or "")
        if not user:
            return 400, {"error": "invalid_grant", "error_description": "No subject"}
        record.client_id = client.client_id
        record.user = user
        return 200, self._issue(user, refresh_for=None, scope=str(claims.get("scope", "")))
