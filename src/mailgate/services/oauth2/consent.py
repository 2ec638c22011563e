"""User consent (authorization code with PKCE S256) and OAuth2 account preparation.

Flow::

    POST /v1/account {oauth2: {authorize: true, provider: APP}}      (or the hosted form)
        └► state (random, single-use, STATE_TTL) stored in Redis with the account fields and
           the PKCE verifier; reply {redirect: <provider authorization URL>}
    user consents at the provider ──► GET {serviceUrl}/oauth?code=…&state=…
        └► GETDEL state; exchange the code; read the user's address (userinfo, else id_token);
           check expectedEmail; register the account with its tokens;
           redirect to redirectUrl?account=…&state=new|existing

:class:`OAuth2Accounts` is also the hook :class:`~mailgate.services.accounts.AccountService`
calls for records with ``oauth2``: it checks the app and fills in the mail servers.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from redis.asyncio import Redis

from mailgate.domain.account import AccountRecord, ImapConfig, SmtpConfig
from mailgate.errors import BadRequest, NotFound
from mailgate.services.accounts import AccountService
from mailgate.services.inputs import AccountCreate
from mailgate.services.oauth2 import providers
from mailgate.services.oauth2.apps import AppService
from mailgate.services.oauth2.client import OAuth2Client, decode_id_token, identity_email
from mailgate.services.oauth2.providers import BaseScopes, Grant
from mailgate.services.oauth2.tokens import iso_from_epoch
from mailgate.services.settings import SettingsService
from mailgate.store import keys

STATE_TTL = 600  # seconds between the authorization redirect and the return to /oauth
STATE_BYTES = 24
VERIFIER_BYTES = 48  # 64 characters of PKCE code verifier (RFC 7636: 43..128)
CALLBACK_PATH = "/oauth"


class ConsentError(BadRequest):
    """The consent could not be completed; the message is shown to the end user."""

    default_code = "OAuthConsentFailed"


@dataclass(frozen=True)
class ConsentResult:
    account: str
    state: str  # "new" or "existing"
    redirect: str | None  # where to send the browser (None: show a page)


def with_query(url: str, **params: str) -> str:
    """``url`` with ``params`` added to its query string."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def authorization_url(
    app: dict[str, Any],
    *,
    redirect_uri: str,
    state: str,
    code_challenge: str,
    login_hint: str | None = None,
) -> str:
    endpoint = providers.endpoints(app).authorization_url
    if not endpoint:
        raise BadRequest("This OAuth2 application has no authorization URL", "InvalidApp")
    params = {
        "response_type": "code",
        "client_id": str(app.get("clientId") or ""),
        "redirect_uri": redirect_uri,
        "scope": " ".join(providers.scopes(app, consent=True)),
        "state": state,
        "code_challenge": code_challenge,
        "code_challenge_method": "S256",
        **providers.authorization_params(app),
    }
    if login_hint:
        params["login_hint"] = login_hint
    return with_query(endpoint, **params)


class OAuth2Accounts:
    """Consent flow plus the account-service hook for OAuth2 records."""

    def __init__(
        self,
        redis: Redis,
        apps: AppService,
        settings: SettingsService,
        accounts: AccountService,
        client: OAuth2Client | None = None,
    ) -> None:
        self.redis = redis
        self.apps = apps
        self.settings = settings
        self.accounts = accounts
        self.client = client or OAuth2Client()

    async def callback_url(self, app: dict[str, Any]) -> str:
        redirect = app.get("redirectUrl")
        if isinstance(redirect, str) and redirect:
            return redirect
        base = str(await self.settings.get("serviceUrl") or "").rstrip("/")
        return base + CALLBACK_PATH

    async def _app(self, app_id: str | None) -> dict[str, Any]:
        if not app_id:
            raise BadRequest('"oauth2.provider" must name an OAuth2 application', "InvalidApp")
        try:
            return await self.apps.load(app_id)
        except NotFound as exc:
            raise BadRequest(f"OAuth2 application {app_id} does not exist", "InvalidApp") from exc

    # --- AccountService hook --------------------------------------------------------------------
    async def prepare(self, record: AccountRecord) -> AccountRecord:
        """Check the app of an OAuth2 record and fill in its mail servers when not given."""
        oauth2 = record.oauth2 or {}
        app = await self._app(str(oauth2.get("provider") or ""))
        auth = oauth2.get("auth")
        if not isinstance(auth, dict) or not auth.get("user"):
            raise BadRequest('"oauth2.auth.user" is required', "InputValidationError")
        if providers.base_scopes_of(app) is not BaseScopes.IMAP:
            return record  # API backends take their endpoints from the app
        imap, smtp = providers.mail_servers(app)
        try:
            if record.imap is None and imap is not None:
                record = msgspec.structs.replace(record, imap=msgspec.convert(imap, ImapConfig))
            if record.smtp is None and smtp is not None:
                record = msgspec.structs.replace(record, smtp=msgspec.convert(smtp, SmtpConfig))
        except msgspec.ValidationError as exc:
            raise BadRequest(f"Invalid mail server settings of the app: {exc}") from exc
        return record

    async def authorize(self, body: AccountCreate) -> dict[str, Any]:
        """``POST /v1/account`` with ``oauth2.authorize``: the provider URL to send the user to."""
        assert body.oauth2 is not None and body.oauth2 is not False
        fields = body.model_dump(by_alias=True, exclude_none=True, exclude={"oauth2"})
        auth = body.oauth2.auth
        if auth is not None:
            fields["oauth2auth"] = auth.model_dump(exclude_none=True)
        url = await self.start(body.oauth2.provider, fields, redirect_url=body.oauth2.redirectUrl)
        return {"redirect": url}

    async def start(
        self, app_id: str | None, account_fields: dict[str, Any], *, redirect_url: str | None
    ) -> str:
        """Store a pending consent and return the provider's authorization URL."""
        app = await self._app(app_id)
        if not app.get("enabled"):
            raise BadRequest("This OAuth2 application is not enabled", "AppDisabled")
        if providers.grant_of(providers.provider_of(app)) is not Grant.AUTHORIZATION_CODE:
            raise BadRequest("Service account applications need no user consent", "InvalidApp")
        if redirect_url:
            providers.check_redirect(redirect_url, "redirectUrl")
        state = secrets.token_urlsafe(STATE_BYTES)
        verifier = secrets.token_urlsafe(VERIFIER_BYTES)
        redirect_uri = await self.callback_url(app)
        pending = {
            "app": app["id"],
            "account": account_fields,
            "redirectUrl": redirect_url,
            "verifier": verifier,
            "redirectUri": redirect_uri,
            "created": int(time.time()),
        }
        await self.redis.set(keys.oauth_state(state), json.dumps(pending), ex=STATE_TTL)
        hint = account_fields.get("expectedEmail") or account_fields.get("email")
        return authorization_url(
            app,
            redirect_uri=redirect_uri,
            state=state,
            code_challenge=create_s256_code_challenge(verifier),
            login_hint=str(hint) if hint else None,
        )

    async def finish(
        self,
        *,
        state: str | None,
        code: str | None,
        error: str | None = None,
        error_description: str | None = None,
    ) -> ConsentResult:
        """The redirect back from the provider: exchange the code and register the account."""
        if not state:
            raise ConsentError("The sign-in request has no state parameter")
        raw = await self.redis.getdel(keys.oauth_state(state))
        if raw is None:
            raise ConsentError("This sign-in link has expired or was already used")
        pending: dict[str, Any] = json.loads(raw)
        if error:
            raise ConsentError(f"The provider did not grant access: {error_description or error}")
        if not code:
            raise ConsentError("The provider returned no authorization code")
        app = await self._app(pending["app"])
        tokens = await self.client.token(
            app,
            Grant.AUTHORIZATION_CODE.value,
            {
                "code": code,
                "redirect_uri": pending["redirectUri"],
                "code_verifier": pending["verifier"],
            },
            scopes=providers.scopes(app, consent=True),
        )
        fields: dict[str, Any] = dict(pending["account"])
        auth: dict[str, Any] = fields.pop("oauth2auth", None) or {}
        email = await self._identity(app, tokens.access_token, tokens.id_token)
        if email is None:
            email = auth.get("user")
        if not email:
            raise ConsentError("The provider did not tell which account was signed in")
        expected = fields.get("expectedEmail")
        if expected and str(expected).lower() != email.lower():
            raise ConsentError(
                f"You signed in as {email}, but this sign-up expects {expected}. "
                "Please start again and sign in with the expected account."
            )
        auth["user"] = email
        fields.setdefault("email", email)
        fields.setdefault("name", email)
        oauth2: dict[str, Any] = {
            "provider": app["id"],
            "auth": auth,
            "accessToken": tokens.access_token,
            "expires": iso_from_epoch(time.time() + tokens.expires_in),
        }
        if tokens.refresh_token:
            oauth2["refreshToken"] = tokens.refresh_token
        try:
            body = AccountCreate.model_validate({**fields, "oauth2": oauth2})
        except ValueError as exc:
            raise ConsentError(f"The account settings are not valid: {exc}") from exc
        result = await self.accounts.create(body)
        target = pending.get("redirectUrl")
        redirect = (
            with_query(target, account=result["account"], state=result["state"])
            if isinstance(target, str) and target
            else None
        )
        return ConsentResult(result["account"], result["state"], redirect)

    async def _identity(
        self, app: dict[str, Any], access_token: str, id_token: str | None
    ) -> str | None:
        if id_token:
            email = identity_email(decode_id_token(id_token))
            if email:
                return email
        return identity_email(await self.client.userinfo(app, access_token))
